"""The one discrete-event loop every policy runs in.

Events are job arrivals (logged submit time) and job ends (start + logged
run time). After the events of one instant, every partition whose state
changed gets a scheduling pass: the policy orders that partition's queue
and jobs start in that order; with backfilling
(:mod:`policies.simulator.backfill`) lower jobs may jump ahead without
delaying the top job's reservation; without it each partition stops at its
first job that does not fit (Slurm's ``sched/builtin``). Policies that define
``preemption_class`` (LAS) may also preempt running jobs of a worse class.

A partition gets a pass after one of its jobs ends, and after an arrival
when the arriving job could start in the resources free right now
(otherwise nothing can change) or when the policy preempts. Cost per pass is O(queue) NumPy work
plus Python work only for the jobs that fit, so memory is linear in jobs.

Two optional plug-ins change what the loop models, never how it runs:

* an :class:`OnlinePredictor` (``predictor=``) predicts each arriving job
  from the history of the simulation so far, hears every end, and re-scores
  the whole pending queue every ``predictor.interval`` simulated seconds
  (a *tick*: one more event kind; passes follow for partitions with waiting jobs);
* a :class:`~policies.simulator.colocation.Colocation` (``colocation=``)
  makes jobs sharing a node progress at their co-located speed: each job's
  end event is rescheduled whenever a co-runner starts or ends on its node,
  and placement may follow interference hints.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from policies.base import Policy
from policies.simulator.backfill import Reservation, expected_ends, reserve
from policies.simulator.cluster import ClusterConfig
from policies.simulator.colocation import Colocation
from policies.simulator.nodes import NodePool, choose_nodes
from policies.simulator.workload import Workload, prediction_estimates


class OnlinePredictor(Protocol):
    """Predictions made inside the replay from what has happened in it so far."""

    #: simulated seconds between re-scorings of the pending queue (inf: never)
    interval: float

    def submitted(self, rows: np.ndarray, now: float) -> np.ndarray:
        """Predicted run times (s) of the jobs ``rows`` arriving at ``now``."""
        ...

    def ended(self, j: int, now: float) -> None:
        """Job ``j`` ended at ``now`` (its run time is now history)."""
        ...

    def rescore(self, rows: np.ndarray, now: float) -> np.ndarray:
        """New predicted run times (s) of the waiting jobs ``rows`` at ``now``."""
        ...

    # Optional: ``refresh(now) -> (rows, predictions)``, polled after the events of
    # each instant: jobs whose prediction changed since the last call (e.g. because
    # a sibling ended); those still waiting take the new values (no tick needed).
    # Optional: ``started(j, now)``, told when job ``j`` starts.


@dataclass
class SimResult:
    """What happened to each replayed job (arrays aligned with ``workload.jobs``)."""

    policy: str
    backfill: bool
    workload: Workload
    cluster: ClusterConfig
    start: np.ndarray  # first start
    end: np.ndarray
    preemptions: int
    queue_times: np.ndarray  # instants of scheduling passes
    queue_lengths: np.ndarray  # jobs waiting after each pass
    passes: int
    held: np.ndarray | None = None  # wall seconds each job held its resources (co-location)
    predicted: np.ndarray | None = None  # last prediction each job was scheduled with (online)


class _QueueView(Mapping):
    """Policy snapshot of some jobs: canonical columns sliced, derived ones computed on demand."""

    DERIVED = ("wait", "attained_service")

    def __init__(self, sim: Simulator, rows: np.ndarray, now: float) -> None:
        self._sim, self._rows, self._now = sim, rows, now

    def __getitem__(self, key: str) -> np.ndarray:
        sim, rows = self._sim, self._rows
        if key == "wait":
            return self._now - sim.w.submit[rows]
        if key == "attained_service":
            seconds = sim.done[rows].copy()
            running = rows[sim.is_running[rows]]
            seconds[sim.is_running[rows]] += sim._work_in_run(running, self._now)
            return seconds * sim.size[rows]
        return sim.columns[key][rows]

    def __iter__(self) -> Iterator[str]:
        yield from self._sim.columns
        yield from self.DERIVED

    def __len__(self) -> int:
        return len(self._sim.columns) + len(self.DERIVED)

    def __contains__(self, key: object) -> bool:
        return key in self._sim.columns or key in self.DERIVED


class Simulator:
    """Replays one :class:`Workload` on one cluster under one policy."""

    def __init__(
        self,
        workload: Workload,
        cluster: ClusterConfig,
        policy: Policy,
        *,
        backfill: bool = True,
        progress: Callable[[int], None] | None = None,
        predictor: OnlinePredictor | None = None,
        colocation: Colocation | None = None,
    ) -> None:
        self.w, self.cluster, self.policy, self.backfill = workload, cluster, policy, backfill
        self.progress = progress
        self.predictor, self.colo = predictor, colocation
        self.pool = NodePool(cluster)
        n = len(workload)
        if n and np.any(np.diff(workload.submit) < 0):
            raise ValueError("workload must be sorted by submit time (use build_workload)")
        if colocation is not None and colocation.profile.shape != (n,):
            raise ValueError(f"colocation has {colocation.profile.size} job profiles for {n} jobs")
        predicted = workload.predicted.copy()
        if predictor is not None:  # set at each arrival
            predicted[:] = np.nan
            self.est = workload.estimates("oracle" if policy.estimate == "prediction" else
                                          policy.estimate)  # fmt: skip
        else:
            self.est = workload.estimates(policy.estimate)
        self.preemptive = hasattr(policy, "preemption_class")
        size = np.where(workload.gpus > 0, workload.gpus, np.maximum(workload.cpus, 1))
        self.size = size.astype(np.float64)
        multi = workload.whole_nodes > 1
        self.per_c = np.where(multi, self.pool.cpn[workload.part], workload.cpus)
        self.per_g = np.where(multi, self.pool.gpn[workload.part], workload.gpus)
        capacity_g = (self.pool.gpn * (self.pool.hi - self.pool.lo)).astype(np.float64)
        capacity_c = (self.pool.cpn * (self.pool.hi - self.pool.lo)).astype(np.float64)
        cluster_size = np.where(
            workload.gpus > 0, capacity_g[workload.part], capacity_c[workload.part]
        )
        self.columns: dict[str, np.ndarray] = {
            "submit_time": workload.submit,
            "run_time": workload.run_time,
            "time_limit": workload.time_limit,
            "predicted_runtime": predicted,
            "cpus": workload.cpus.astype(np.float64),
            "gpus": workload.gpus.astype(np.float64),
            "cluster_size": cluster_size,
        }
        self.start = np.full(n, np.nan)
        self.end = np.full(n, np.nan)
        self.run_start = np.full(n, np.nan)
        self.done = np.zeros(n)  # seconds of work finished before the current run
        # the current run progresses at ``rate`` work-seconds per second since ``seg_start``,
        # after ``seg_work`` work-seconds done in it before (rate < 1 only when co-located)
        self.rate = np.ones(n)
        self.seg_start = np.full(n, np.nan)
        self.seg_work = np.zeros(n)
        self.held = np.zeros(n) if colocation is not None else None
        self.node_jobs: list[list[int]] = [[] for _ in range(len(self.pool.free_c))]
        self.epoch = np.zeros(n, dtype=np.int64)
        self.is_running = np.zeros(n, dtype=bool)
        self.nodes: list[np.ndarray | None] = [None] * n
        self.part_of: list[int] = workload.part.tolist()
        self.lo: list[int] = self.pool.lo.tolist()
        self.hi: list[int] = self.pool.hi.tolist()
        self.queues: list[dict[int, None]] = [{} for _ in cluster.partitions]
        self.waiting = 0
        self.reported = 0
        self.running: list[dict[int, None]] = [{} for _ in cluster.partitions]
        self.heap: list[tuple[float, int, int]] = []
        self.preemptions = 0
        self.passes = 0
        self.q_times: list[float] = []
        self.q_lens: list[int] = []

    # -- the event loop -------------------------------------------------------------------
    def run(self) -> SimResult:
        w = self.w
        n = len(w)
        part_of = self.part_of
        submit = w.submit.tolist()
        nxt = 0
        finished = 0
        heap = self.heap
        predictor = self.predictor
        interval = predictor.interval if predictor is not None else math.inf
        tick = math.inf
        refresh = getattr(predictor, "refresh", None)
        while nxt < n or heap:
            now = min(submit[nxt] if nxt < n else math.inf, heap[0][0] if heap else math.inf)
            if tick < now and self.waiting:
                now = tick
            dirty: set[int] = set()
            while heap and heap[0][0] <= now:
                _, epoch, j = heapq.heappop(heap)
                if epoch != self.epoch[j]:
                    continue
                self._finish(j, now)
                finished += 1
                dirty.add(part_of[j])
            first = nxt
            while nxt < n and submit[nxt] <= now:
                nxt += 1
            if predictor is not None and nxt > first:
                self._set_predictions(np.arange(first, nxt), predictor.submitted, now)
            for j in range(first, nxt):
                p = part_of[j]
                self.queues[p][j] = None
                self.waiting += 1
                if p not in dirty and (self.preemptive or self._fits_now(j)):
                    dirty.add(p)
            if refresh is not None and self.waiting:
                self._refresh(refresh, now, dirty)
            if tick <= now:
                if self.waiting:
                    self._rescore(now, dirty)
                tick = math.inf
            if tick == math.inf and math.isfinite(interval) and self.waiting:
                tick = (math.floor(now / interval) + 1) * interval
            if dirty:
                self.passes += 1
                for p in sorted(dirty):
                    self._schedule(p, now)
                self.q_times.append(now)
                self.q_lens.append(self.waiting)
            if self.progress is not None and finished - self.reported >= 1024:
                self.progress(finished)
                self.reported = finished
            if nxt >= n and not heap and self.waiting:
                raise RuntimeError(f"{self.waiting} jobs can never start (nothing runs or arrives)")
        if self.progress is not None:
            self.progress(finished)
        return SimResult(
            policy=self.policy.name,
            backfill=self.backfill,
            workload=w,
            cluster=self.cluster,
            start=self.start,
            end=self.end,
            preemptions=self.preemptions,
            queue_times=np.asarray(self.q_times),
            queue_lengths=np.asarray(self.q_lens, dtype=np.int64),
            passes=self.passes,
            held=self.held,
            predicted=self.columns["predicted_runtime"] if predictor is not None else None,
        )

    # -- online predictions -----------------------------------------------------------------
    def _set_predictions(
        self, rows: np.ndarray, predict: Callable[[np.ndarray, float], np.ndarray], now: float
    ) -> None:
        self._apply_predictions(rows, np.asarray(predict(rows, now), dtype=np.float64))

    def _apply_predictions(self, rows: np.ndarray, pred: np.ndarray) -> None:
        if pred.shape != rows.shape or not np.all(np.isfinite(pred)):
            raise ValueError(f"online predictor gave {pred.shape} values for {rows.size} jobs "
                             "(need one finite prediction each)")  # fmt: skip
        self.columns["predicted_runtime"][rows] = pred
        if self.policy.estimate == "prediction":
            self.est[rows] = prediction_estimates(pred, self.w.time_limit[rows])

    def _refresh(
        self,
        refresh: Callable[[float], tuple[np.ndarray, np.ndarray]],
        now: float,
        dirty: set[int],
    ) -> None:
        """Apply the predictor's changed predictions to the jobs still waiting."""
        rows, pred = refresh(now)
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        pred = np.asarray(pred, dtype=np.float64)
        if pred.shape != rows.shape:
            raise ValueError(f"online predictor refreshed {rows.size} jobs with {pred.shape} "
                             "values")  # fmt: skip
        waiting = ~self.is_running[rows] & np.isnan(self.end[rows])
        rows, pred = rows[waiting], pred[waiting]
        if rows.size:
            self._apply_predictions(rows, pred)
            dirty.update(self.w.part[rows].tolist())

    def _rescore(self, now: float, dirty: set[int]) -> None:
        """Re-predict every waiting job (a tick); their partitions get a pass."""
        assert self.predictor is not None
        waiting = [p for p, q in enumerate(self.queues) if q]
        rows = np.fromiter((j for p in waiting for j in self.queues[p]), dtype=np.int64)
        self._set_predictions(rows, self.predictor.rescore, now)
        dirty.update(waiting)

    def _fits_now(self, j: int) -> bool:
        """Whether job ``j`` would fit in its partition's free resources right now."""
        p = self.part_of[j]
        lo, hi = self.lo[p], self.hi[p]
        pool = self.pool
        if self.w.whole_nodes[j] > 1:
            idle = (pool.free_c[lo:hi] == pool.cap_c[lo:hi]) & (
                pool.free_g[lo:hi] == pool.cap_g[lo:hi]
            )
            return int(idle.sum()) >= self.w.whole_nodes[j]
        return bool(
            ((pool.free_c[lo:hi] >= self.w.cpus[j]) & (pool.free_g[lo:hi] >= self.w.gpus[j])).any()
        )

    # -- job state changes ----------------------------------------------------------------
    def _start(self, j: int, offsets: np.ndarray, now: float) -> None:
        pool = self.pool
        p = self.part_of[j]
        nodes = offsets + self.lo[p]
        c, g = self._per_node(j)
        pool.free_c[nodes] -= c
        pool.free_g[nodes] -= g
        self.nodes[j] = nodes
        self.is_running[j] = True
        del self.queues[p][j]
        self.waiting -= 1
        self.running[p][j] = None
        if np.isnan(self.start[j]):
            self.start[j] = now
        self.run_start[j] = self.seg_start[j] = now
        self.seg_work[j] = 0.0
        self.rate[j] = 1.0
        if self.colo is not None and nodes.size == 1:
            node = int(nodes[0])
            others = self.node_jobs[node]
            self.rate[j] = self.colo.rate(j, others)
            others.append(j)
            for k in others[:-1]:
                self._rerate(k, now)
        heapq.heappush(self.heap, (self._end_of(j, now), int(self.epoch[j]), j))
        started = getattr(self.predictor, "started", None)
        if started is not None:
            started(j, now)

    def _work_in_run(self, j: int | np.ndarray, now: float) -> np.ndarray:
        """Work-seconds done in the current run of running job(s) ``j`` by ``now``."""
        return self.seg_work[j] + (now - self.seg_start[j]) * self.rate[j]

    def _end_of(self, j: int, now: float) -> float:
        """When running job ``j`` ends at its current rate (from a segment starting ``now``)."""
        return now + (self.w.run_time[j] - self.done[j] - self.seg_work[j]) / self.rate[j]

    def _rerate(self, j: int, now: float) -> None:
        """Co-location: job ``j``'s co-runners changed; reschedule its end at its new rate."""
        assert self.colo is not None
        node = int(self.nodes[j][0])  # type: ignore[index]
        rate = self.colo.rate(j, [k for k in self.node_jobs[node] if k != j])
        if rate == self.rate[j]:
            return
        self.seg_work[j] = float(self._work_in_run(j, now))
        self.seg_start[j] = now
        self.rate[j] = rate
        self.epoch[j] += 1
        heapq.heappush(self.heap, (self._end_of(j, now), int(self.epoch[j]), j))

    def _release(self, j: int, now: float) -> None:
        c, g = self._per_node(j)
        nodes = self.nodes[j]
        self.pool.free_c[nodes] += c
        self.pool.free_g[nodes] += g
        self.nodes[j] = None
        self.is_running[j] = False
        del self.running[self.part_of[j]][j]
        if self.colo is not None:
            assert self.held is not None and nodes is not None
            self.held[j] += now - self.run_start[j]
            if nodes.size == 1:
                others = self.node_jobs[int(nodes[0])]
                others.remove(j)
                for k in others:
                    self._rerate(k, now)

    def _finish(self, j: int, now: float) -> None:
        self._release(j, now)
        self.end[j] = now
        if self.predictor is not None:
            self.predictor.ended(j, now)

    def _preempt(self, j: int, now: float) -> None:
        self.done[j] += float(self._work_in_run(j, now))
        self._release(j, now)
        self.epoch[j] += 1
        self.queues[self.part_of[j]][j] = None
        self.waiting += 1
        self.preemptions += 1

    def _per_node(self, j: int) -> tuple[int, int]:
        """CPUs and GPUs the job holds on each of its nodes."""
        return int(self.per_c[j]), int(self.per_g[j])

    # -- scheduling -----------------------------------------------------------------------
    def _view(self, rows: np.ndarray, now: float) -> _QueueView:
        return _QueueView(self, rows, now)

    def _order(self, rows: np.ndarray, now: float) -> np.ndarray:
        prio = np.asarray(self.policy(self._view(rows, now), now), dtype=np.float64)
        if prio.shape != rows.shape:
            raise ValueError(f"policy {self.policy.name} returned {prio.shape} priorities")
        return rows[np.lexsort((self.w.submit[rows], -prio))]

    def _schedule(self, p: int, now: float) -> None:
        """One scheduling pass over partition ``p``'s queue."""
        queue = self.queues[p]
        if not queue:
            return
        rows = np.fromiter(queue, dtype=np.int64, count=len(queue))
        order = self._order(rows, now)
        w, pool = self.w, self.pool
        lo, hi = self.lo[p], self.hi[p]
        free_c, free_g = pool.free_c[lo:hi], pool.free_g[lo:hi]
        idle = int(((free_c == pool.cap_c[lo:hi]) & (free_g == pool.cap_g[lo:hi])).sum())
        nodes = w.whole_nodes[order]
        fit = np.where(
            nodes > 1,
            nodes <= idle,
            (w.cpus[order] <= free_c.max()) & (w.gpus[order] <= free_g.max()),
        )
        cand = np.flatnonzero(fit)
        if cand.size:
            first_unfit = order.size if fit.all() else int(np.argmin(fit))
            self._start_partition(order, cand, p, first_unfit, now)
        if self.preemptive and queue:
            self._preempt_for(order, p, now)

    def _start_partition(
        self, order: np.ndarray, pos: np.ndarray, p: int, first_unfit: int, now: float
    ) -> None:
        """Start what fits among ``order[pos]`` (one partition's candidates, by priority).

        ``first_unfit`` is the position in ``order`` of the partition's first job
        that cannot fit now. Once a job fails to place, later jobs asking at
        least as much (per node, nodes, and lateness vs the shadow time) are
        skipped without trying: within a pass free resources only shrink.
        """
        if not self.backfill:
            pos = pos[pos < first_unfit]
            if pos.size == 0:
                return
        jobs = order[pos]
        n = jobs.size
        per_c, per_g, nodes = self.per_c[jobs], self.per_g[jobs], self.w.whole_nodes[jobs]
        alive = np.ones(n, dtype=bool)
        lo, hi = int(self.pool.lo[p]), int(self.pool.hi[p])
        res: Reservation | None = None
        top = int(order[first_unfit]) if first_unfit < order.size else -1
        late = np.zeros(n, dtype=bool)
        i = 0
        while i < n:
            if not alive[i]:
                i += int(np.argmax(alive[i:]))
                if not alive[i]:
                    break
            j = int(jobs[i])
            if res is None and top >= 0 and first_unfit < pos[i]:
                if not self.backfill:
                    return
                res = self._reserve(top, now)
                late = now + self._est_left(jobs) > res.shadow
            if res is None:
                spot = self._place(j, lo, hi, None)
                if spot is not None:
                    self._start(j, spot, now)
                elif not self.backfill:
                    return
                else:  # j is now the top job; reserve for it when a later job asks
                    top, first_unfit = j, int(pos[i])
                i += 1
                continue
            end = now + float(self._est_left(j))
            c, g = int(per_c[i]), int(per_g[i])
            spot = self._place(j, lo, hi, res.allowed(end, c, g))
            if spot is None:
                doomed = (per_c >= c) & (per_g >= g) & (nodes >= nodes[i])
                if late[i]:
                    doomed &= late
                doomed[: i + 1] = False
                alive &= ~doomed
            else:
                self._start(j, spot, now)
                res.commit(end, spot, c, g)
            i += 1

    def _place(self, j: int, lo: int, hi: int, allowed: np.ndarray | None) -> np.ndarray | None:
        pool, w = self.pool, self.w
        args = (pool.free_c[lo:hi], pool.free_g[lo:hi], pool.cap_c[lo:hi], pool.cap_g[lo:hi],
                int(w.cpus[j]), int(w.gpus[j]), int(w.whole_nodes[j]))  # fmt: skip
        if self.colo is not None and self.colo.hints and w.whole_nodes[j] == 1:
            ok = ~self.colo.avoided(j, self.node_jobs[lo:hi])
            spot = choose_nodes(*args, ok if allowed is None else ok & allowed)
            if spot is not None:
                return spot
        return choose_nodes(*args, allowed)

    def _est_left(self, j: int | np.ndarray) -> np.ndarray:
        """Estimated seconds of work left (>= 1)."""
        return np.maximum(self.est[j] - self.done[j], 1.0)

    def _reserve(self, top: int, now: float) -> Reservation:
        pool, w = self.pool, self.w
        p = self.part_of[top]
        lo, hi = self.lo[p], self.hi[p]
        run = np.fromiter(self.running[p], dtype=np.int64, count=len(self.running[p]))
        ends = expected_ends(self.run_start[run], self._est_left(run), now)
        by_end = np.argsort(ends, kind="stable")
        releases = (
            (end, self.nodes[j] - lo, self.per_c[j], self.per_g[j])
            for end, j in zip(ends[by_end].tolist(), run[by_end].tolist(), strict=True)
        )
        return reserve(
            pool.free_c[lo:hi],
            pool.free_g[lo:hi],
            pool.cap_c[lo:hi],
            pool.cap_g[lo:hi],
            (int(w.cpus[top]), int(w.gpus[top]), int(w.whole_nodes[top])),
            releases,
        )

    def _preempt_for(self, order: np.ndarray, p: int, now: float) -> None:
        """Let waiting jobs of a better preemption class displace running ones in ``p``."""
        pool, w = self.pool, self.w
        waiting = order[~self.is_running[order]]  # those of the pass not started by it
        run = np.fromiter(self.running[p], dtype=np.int64, count=len(self.running[p]))
        if waiting.size == 0 or run.size == 0:
            return
        view = self._view(run, now)
        klass_run = np.asarray(self.policy.preemption_class(view, now))
        klass_wait = np.asarray(self.policy.preemption_class(self._view(waiting, now), now))
        if klass_run.max() <= klass_wait.min():
            return
        prio_run = np.asarray(self.policy(view, now), dtype=np.float64)
        worst_first = np.lexsort((prio_run, -klass_run))
        run, klass_run = run[worst_first], klass_run[worst_first]
        alive = np.ones(run.size, dtype=bool)
        lo, hi = self.lo[p], self.hi[p]
        for j, kw in zip(waiting.tolist(), klass_wait.tolist(), strict=True):
            victims = np.flatnonzero(alive & (klass_run > kw))
            if victims.size == 0:
                break
            free_c, free_g = pool.free_c[lo:hi].copy(), pool.free_g[lo:hi].copy()
            chosen: list[int] = []
            spot = None
            for k in victims.tolist():
                v = int(run[k])
                free_c[self.nodes[v] - lo] += self.per_c[v]
                free_g[self.nodes[v] - lo] += self.per_g[v]
                chosen.append(k)
                spot = choose_nodes(
                    free_c,
                    free_g,
                    pool.cap_c[lo:hi],
                    pool.cap_g[lo:hi],
                    int(w.cpus[j]),
                    int(w.gpus[j]),
                    int(w.whole_nodes[j]),
                )
                if spot is not None:
                    break
            if spot is None:
                break
            for k in chosen:
                self._preempt(int(run[k]), now)
                alive[k] = False
            spot = self._place(j, lo, hi, None)
            if spot is not None:
                self._start(j, spot, now)


def simulate(
    workload: Workload,
    cluster: ClusterConfig,
    policy: Policy,
    *,
    backfill: bool = True,
    progress: Callable[[int], None] | None = None,
    predictor: OnlinePredictor | None = None,
    colocation: Colocation | None = None,
) -> SimResult:
    """Replay ``workload`` on ``cluster`` under ``policy``; see :class:`Simulator`."""
    return Simulator(workload, cluster, policy, backfill=backfill, progress=progress,
                     predictor=predictor, colocation=colocation).run()  # fmt: skip
