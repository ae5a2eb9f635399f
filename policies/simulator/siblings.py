"""Sibling re-scoring: a waiting job's prediction follows its burst's ended siblings.

:class:`SiblingRescorer` is an :class:`~policies.simulator.engine.OnlinePredictor`
over predictions made before the replay (``--predictions causal``). Each
arriving job joins a burst (:class:`~predictor.history.bursts.BurstTracker`:
same user/account and shape, arriving within ``gap`` seconds of the previous
one). When a job ends, its burst's still-waiting siblings are re-predicted at
once from the ended siblings' run times (their mean log run time, blended
with the job's own prediction by ``weight``); every other job keeps its
prediction, so the order inside a history key does not collapse the way
re-scoring with rebuilt features does (docs/simulator.md). Causal: only
siblings that ended in the simulation by that instant count. A live
priority daemon has the same information from the completion feed.

Two options, measured and left off by default (docs/simulator.md):

* ``censored_interval``: every that many seconds (a tick), a waiting job's
  prediction is raised to the time its longest-running sibling has run so
  far (siblings run alike, so a sibling still running after ``e`` seconds
  says the rest take at least about ``e``);
* ``optimistic`` (e.g. the interval's low end): while two or more siblings
  of a burst wait and none has run yet, the burst's first job is ranked by
  its optimistic prediction, so one sibling runs early and its end informs
  the others (a probe).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from predictor.history.bursts import BURST_GAP_S, BURST_KEY_COLUMNS, BurstTracker, burst_key


class SiblingRescorer:
    """Predictions ``predicted`` (one per row of ``jobs``, in submit order), re-scored by
    ended burst siblings (see module doc)."""

    interval = math.inf  # no periodic ticks: re-scoring follows ends (``refresh``)

    def __init__(
        self,
        jobs: pd.DataFrame,
        predicted: np.ndarray,
        *,
        gap: float = BURST_GAP_S,
        weight: float = 1.0,
        censored_interval: float = math.inf,
        optimistic: np.ndarray | None = None,
    ) -> None:
        base = np.asarray(predicted, dtype=np.float64)
        if base.shape != (len(jobs),) or not np.all(np.isfinite(base)):
            raise ValueError(f"sibling re-scoring needs one finite prediction per job "
                             f"({len(jobs)} jobs, got {base.shape})")  # fmt: skip
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"sibling weight must be in [0, 1], got {weight}")
        self.base = np.maximum(base, 1.0)
        # probing: the first job of a burst whose siblings wait with nothing ended or running
        # is ranked by its optimistic (low-quantile) prediction, so one sibling runs first
        # and its end informs the rest
        self.optimistic = None
        if optimistic is not None:
            low = np.asarray(optimistic, dtype=np.float64)
            if low.shape != base.shape:
                raise ValueError(f"{low.shape} optimistic predictions for {len(jobs)} jobs")
            # NaN (no interval yet, e.g. before the first fit): the prediction itself
            self.optimistic = np.maximum(np.fmin(low, self.base), 1.0)
        self._probe: dict[int, int] = {}  # burst -> its probing job
        self.weight = float(weight)
        # with a finite interval, ticks also raise waiting jobs' predictions to the time
        # their longest-running sibling has run so far (a censored observation)
        self.censored = math.isfinite(censored_interval)
        self.interval = float(censored_interval)
        present = [c for c in BURST_KEY_COLUMNS if c in jobs.columns]
        self.keys = [burst_key(r) for r in jobs[present].to_dict("records")]
        self.submit = jobs["submit_time"].to_numpy(np.float64)
        self.run = jobs["run_time"].to_numpy(np.float64)
        self.tracker = BurstTracker(gap)
        self.burst = np.full(len(jobs), -1, dtype=np.int64)
        self.members: dict[int, set[int]] = {}  # burst -> its submitted, not yet ended jobs
        self.started_at: dict[int, dict[int, float]] = {}  # burst -> running job -> start
        self._changed: set[int] = set()
        self.rescored = 0  # rows re-predicted by refresh, summed over calls

    def _estimate(self, j: int, now: float = -math.inf) -> float:
        b = int(self.burst[j])
        if self.optimistic is not None and self._probe.get(b) == j:
            return float(self.optimistic[j])
        est = self.tracker.estimate(b, float(self.base[j]), self.weight)
        if self.censored and self.started_at.get(b):
            # a sibling still running after e seconds: siblings run alike, so >= e
            est = max(est, now - min(self.started_at[b].values()))
        return est

    def submitted(self, rows: np.ndarray, now: float) -> np.ndarray:
        out = np.empty(rows.size)
        for i, j in enumerate(rows.tolist()):
            b = self.burst[j] = self.tracker.submitted(self.keys[j], float(self.submit[j]))
            self.members.setdefault(b, set()).add(j)
            if self.optimistic is not None:
                self._changed.add(b)  # a second waiting sibling may make the first a probe
            out[i] = self._estimate(j, now)
        return out

    def started(self, j: int, now: float) -> None:
        b = int(self.burst[j])
        self.started_at.setdefault(b, {})[j] = now
        if b in self._probe:
            self._changed.add(b)  # a sibling runs: no more probing

    def ended(self, j: int, now: float) -> None:
        b = int(self.burst[j])
        self.started_at[b].pop(j, None)
        self.tracker.ended(b, float(self.run[j]))
        self.members[b].discard(j)
        self._changed.add(b)

    def rescore(self, rows: np.ndarray, now: float) -> np.ndarray:
        return np.array([self._estimate(j, now) for j in rows.tolist()], dtype=np.float64)

    def refresh(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Jobs (not ended) of the bursts that had an end since the last call, and their
        new predictions; the engine applies them to the ones still waiting."""
        if self.optimistic is not None:
            for b in self._changed:
                self._update_probe(b)
        rows = [j for b in self._changed for j in self.members[b]]
        self._changed.clear()
        idx = np.asarray(rows, dtype=np.int64)
        self.rescored += idx.size
        return idx, self.rescore(idx, now)

    def _update_probe(self, b: int) -> None:
        """Burst ``b`` probes (its first job) while >= 2 siblings wait and none ran yet."""
        idle = self.tracker.ended_count(b) == 0 and not self.started_at.get(b)
        if idle and len(self.members[b]) >= 2:
            self._probe[b] = min(self.members[b])
        else:
            self._probe.pop(b, None)
