"""The one discrete-event loop every policy runs in.

Events are job arrivals (logged submit time) and job ends (start + logged
run time). After the events of one instant, a scheduling pass orders the
queue with the policy and starts jobs in that order; with backfilling
(:mod:`policies.simulator.backfill`) lower jobs may jump ahead without
delaying the top job's reservation; without it each partition stops at its
first job that does not fit (Slurm's ``sched/builtin``). Policies that define
``preemption_class`` (LAS) may also preempt running jobs of a worse class.

A pass runs after any job ends, and after arrivals when one of the arriving
jobs could start in the resources free right now (otherwise nothing can
change) or when the policy preempts. Cost per pass is O(queue) NumPy work
plus Python work only for the jobs that fit, so memory is linear in jobs.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Policy
from policies.simulator.backfill import Reservation, expected_ends, reserve
from policies.simulator.cluster import ClusterConfig
from policies.simulator.nodes import NodePool, choose_nodes
from policies.simulator.workload import Workload


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


class _QueueView(Mapping):
    """Policy snapshot: the canonical columns of the queued jobs, sliced lazily."""

    def __init__(self, columns: dict[str, np.ndarray], rows: np.ndarray, extra: dict) -> None:
        self._columns, self._rows, self._extra = columns, rows, extra

    def __getitem__(self, key: str) -> np.ndarray:
        if key in self._extra:
            return self._extra[key]
        return self._columns[key][self._rows]

    def __iter__(self) -> Iterator[str]:
        yield from self._columns
        yield from self._extra

    def __len__(self) -> int:
        return len(self._columns) + len(self._extra)

    def __contains__(self, key: object) -> bool:
        return key in self._columns or key in self._extra


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
    ) -> None:
        self.w, self.cluster, self.policy, self.backfill = workload, cluster, policy, backfill
        self.progress = progress
        self.pool = NodePool(cluster)
        n = len(workload)
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
            "predicted_runtime": workload.predicted,
            "cpus": workload.cpus.astype(np.float64),
            "gpus": workload.gpus.astype(np.float64),
            "cluster_size": cluster_size,
        }
        self.start = np.full(n, np.nan)
        self.end = np.full(n, np.nan)
        self.run_start = np.full(n, np.nan)
        self.done = np.zeros(n)  # seconds of work finished before the current run
        self.epoch = np.zeros(n, dtype=np.int64)
        self.is_running = np.zeros(n, dtype=bool)
        self.nodes: list[np.ndarray | None] = [None] * n
        self.queue: dict[int, None] = {}
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
        arrivals = np.argsort(w.submit, kind="stable")
        nxt = 0
        finished = 0
        while nxt < n or self.heap:
            t_arr = w.submit[arrivals[nxt]] if nxt < n else math.inf
            t_end = self.heap[0][0] if self.heap else math.inf
            now = min(t_arr, t_end)
            freed = False
            while self.heap and self.heap[0][0] <= now:
                _, epoch, j = heapq.heappop(self.heap)
                if epoch != self.epoch[j]:
                    continue
                self._finish(j, now)
                finished += 1
                freed = True
            new: list[int] = []
            while nxt < n and w.submit[arrivals[nxt]] <= now:
                j = int(arrivals[nxt])
                self.queue[j] = None
                new.append(j)
                nxt += 1
            if freed or self.preemptive or self._could_start(new):
                self._schedule(now)
            if self.progress is not None and (finished & 1023) == 0 and freed:
                self.progress(finished)
            if nxt >= n and not self.heap and self.queue:
                raise RuntimeError(
                    f"{len(self.queue)} jobs can never start (nothing runs, none arrives)"
                )
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
        )

    def _could_start(self, new: list[int]) -> bool:
        if not new:
            return False
        max_c, max_g, idle = self.pool.headroom()
        w = self.w
        for j in new:
            p = w.part[j]
            if w.whole_nodes[j] > 1:
                if w.whole_nodes[j] <= idle[p]:
                    return True
            elif w.cpus[j] <= max_c[p] and w.gpus[j] <= max_g[p]:
                return True
        return False

    # -- job state changes ----------------------------------------------------------------
    def _start(self, j: int, offsets: np.ndarray, now: float) -> None:
        w, pool = self.w, self.pool
        p = int(w.part[j])
        nodes = offsets + pool.lo[p]
        c, g = self._per_node(j)
        pool.free_c[nodes] -= c
        pool.free_g[nodes] -= g
        self.nodes[j] = nodes
        self.is_running[j] = True
        del self.queue[j]
        self.running[p][j] = None
        if np.isnan(self.start[j]):
            self.start[j] = now
        self.run_start[j] = now
        heapq.heappush(self.heap, (now + (w.run_time[j] - self.done[j]), int(self.epoch[j]), j))

    def _release(self, j: int) -> None:
        c, g = self._per_node(j)
        nodes = self.nodes[j]
        self.pool.free_c[nodes] += c
        self.pool.free_g[nodes] += g
        self.nodes[j] = None
        self.is_running[j] = False
        del self.running[int(self.w.part[j])][j]

    def _finish(self, j: int, now: float) -> None:
        self._release(j)
        self.end[j] = now

    def _preempt(self, j: int, now: float) -> None:
        self._release(j)
        self.done[j] += now - self.run_start[j]
        self.epoch[j] += 1
        self.queue[j] = None
        self.preemptions += 1

    def _per_node(self, j: int) -> tuple[int, int]:
        """CPUs and GPUs the job holds on each of its nodes."""
        return int(self.per_c[j]), int(self.per_g[j])

    # -- scheduling -----------------------------------------------------------------------
    def _view(self, rows: np.ndarray, now: float) -> _QueueView:
        attained = self.done[rows].copy()
        running = self.is_running[rows]
        attained[running] += now - self.run_start[rows[running]]
        extra = {
            "wait": now - self.w.submit[rows],
            "attained_service": attained * self.size[rows],
        }
        return _QueueView(self.columns, rows, extra)

    def _order(self, rows: np.ndarray, now: float) -> np.ndarray:
        prio = np.asarray(self.policy(self._view(rows, now), now), dtype=np.float64)
        if prio.shape != rows.shape:
            raise ValueError(f"policy {self.policy.name} returned {prio.shape} priorities")
        return rows[np.lexsort((self.w.submit[rows], -prio))]

    def _schedule(self, now: float) -> None:
        self.passes += 1
        if self.queue:
            rows = np.fromiter(self.queue, dtype=np.int64, count=len(self.queue))
            order = self._order(rows, now)
            self._start_in_order(order, now)
            if self.preemptive and self.queue:
                self._preempt_for(order, now)
        self.q_times.append(now)
        self.q_lens.append(len(self.queue))

    def _start_in_order(self, order: np.ndarray, now: float) -> None:
        w, pool = self.w, self.pool
        max_c, max_g, idle = pool.headroom()
        part = w.part[order]
        fit = np.where(
            w.whole_nodes[order] > 1,
            w.whole_nodes[order] <= idle[part],
            (w.cpus[order] <= max_c[part]) & (w.gpus[order] <= max_g[part]),
        )
        cand = np.flatnonzero(fit)
        if cand.size == 0:
            return
        first_unfit = np.full(len(pool.lo), np.iinfo(np.int64).max)
        unfit = np.flatnonzero(~fit)
        if unfit.size:
            parts_u, first = np.unique(part[unfit], return_index=True)
            first_unfit[parts_u] = unfit[first]
        cand = cand[np.argsort(part[cand], kind="stable")]  # by partition, priority order kept
        parts, begins = np.unique(part[cand], return_index=True)
        ends = [*begins[1:].tolist(), cand.size]
        for p, a, b in zip(parts.tolist(), begins.tolist(), ends, strict=True):
            self._start_partition(order, cand[a:b], p, int(first_unfit[p]), now)

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
        jobs = order[pos]
        n = jobs.size
        per_c, per_g, nodes = self.per_c[jobs], self.per_g[jobs], self.w.whole_nodes[jobs]
        alive = np.ones(n, dtype=bool)
        lo, hi = int(self.pool.lo[p]), int(self.pool.hi[p])
        res: Reservation | None = None
        late = np.zeros(n, dtype=bool)
        i = 0
        while i < n:
            if not alive[i]:
                i += int(np.argmax(alive[i:]))
                if not alive[i]:
                    break
            j = int(jobs[i])
            if self.backfill and res is None and first_unfit < pos[i]:
                res = self._reserve(int(order[first_unfit]), now)
                late = now + self._est_left(jobs) > res.shadow
            if res is None:
                spot = self._place(j, lo, hi, None)
                if spot is not None:
                    self._start(j, spot, now)
                elif not self.backfill:
                    return
                else:
                    res = self._reserve(j, now)
                    late = now + self._est_left(jobs) > res.shadow
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
        return choose_nodes(
            pool.free_c[lo:hi],
            pool.free_g[lo:hi],
            pool.cap_c[lo:hi],
            pool.cap_g[lo:hi],
            int(w.cpus[j]),
            int(w.gpus[j]),
            int(w.whole_nodes[j]),
            allowed,
        )

    def _est_left(self, j: int | np.ndarray) -> np.ndarray:
        """Estimated seconds of work left (>= 1)."""
        return np.maximum(self.est[j] - self.done[j], 1.0)

    def _reserve(self, top: int, now: float) -> Reservation:
        pool, w = self.pool, self.w
        p = int(w.part[top])
        lo, hi = pool.lo[p], pool.hi[p]
        run = np.fromiter(self.running[p], dtype=np.int64, count=len(self.running[p]))
        est_left = np.maximum(self.est[run] - self.done[run], 1.0)
        ends = expected_ends(self.run_start[run], est_left, now)
        releases = []
        for k in np.argsort(ends, kind="stable"):
            j = int(run[k])
            c, g = self._per_node(j)
            releases.append((float(ends[k]), self.nodes[j] - lo, c, g))
        return reserve(
            pool.free_c[lo:hi],
            pool.free_g[lo:hi],
            pool.cap_c[lo:hi],
            pool.cap_g[lo:hi],
            (int(w.cpus[top]), int(w.gpus[top]), int(w.whole_nodes[top])),
            releases,
        )

    def _preempt_for(self, order: np.ndarray, now: float) -> None:
        """Let waiting jobs of a better preemption class displace running ones."""
        pool, w = self.pool, self.w
        waiting = np.array([j for j in order if j in self.queue], dtype=np.int64)
        if waiting.size == 0:
            return
        klass_wait = np.asarray(self.policy.preemption_class(self._view(waiting, now), now))
        for p in np.unique(w.part[waiting]):
            run = np.fromiter(self.running[p], dtype=np.int64, count=len(self.running[p]))
            if run.size == 0:
                continue
            view = self._view(run, now)
            klass_run = np.asarray(self.policy.preemption_class(view, now))
            prio_run = np.asarray(self.policy(view, now), dtype=np.float64)
            victims_order = np.lexsort((prio_run, -klass_run))  # worst class, lowest first
            run, klass_run = run[victims_order], klass_run[victims_order]
            alive = np.ones(run.size, dtype=bool)
            lo, hi = pool.lo[p], pool.hi[p]
            for j, kw in zip(waiting, klass_wait, strict=True):
                if w.part[j] != p:
                    continue
                cand = np.flatnonzero(alive & (klass_run > kw))
                if cand.size == 0:
                    break
                fc, fg = pool.free_c[lo:hi].copy(), pool.free_g[lo:hi].copy()
                chosen: list[int] = []
                spot = None
                for k in cand:
                    v = int(run[k])
                    c, g = self._per_node(v)
                    fc[self.nodes[v] - lo] += c
                    fg[self.nodes[v] - lo] += g
                    chosen.append(k)
                    spot = choose_nodes(
                        fc, fg, pool.cap_c[lo:hi], pool.cap_g[lo:hi],
                        int(w.cpus[j]), int(w.gpus[j]), int(w.whole_nodes[j]),
                    )
                    if spot is not None:
                        break
                if spot is None:
                    break
                for k in chosen:
                    self._preempt(int(run[k]), now)
                    alive[k] = False
                spot = self._place(int(j), lo, hi, None)
                if spot is not None:
                    self._start(int(j), spot, now)


def simulate(
    workload: Workload,
    cluster: ClusterConfig,
    policy: Policy,
    *,
    backfill: bool = True,
    progress: Callable[[int], None] | None = None,
) -> SimResult:
    """Replay ``workload`` on ``cluster`` under ``policy``; see :class:`Simulator`."""
    return Simulator(workload, cluster, policy, backfill=backfill, progress=progress).run()
