"""Online predictions inside a replay, as the live service makes them.

:class:`ReplayPredictor` is the simulator's :class:`~policies.simulator.engine.OnlinePredictor`:

* its history (:class:`~predictor.history.HistoryStore`) holds the jobs that
  have ended *in the simulation* (simulated end times), plus the log's jobs
  from before the replay window (their logged end times);
* an arriving job is predicted from that history with the product's one
  feature function (:func:`predictor.features.build_feature_row`) and the
  current model;
* the model (:class:`~predictor.models.duration.DurationModel`) is retrained
  every ``retrain_interval`` simulated seconds (weekly by default) on the
  jobs ended by then, each with the features it had at its submission;
  before the first fit, predictions are the model's recency anchor;
* with a finite ``interval`` every waiting job is re-predicted from the
  history as it stands at each tick (``now`` = the tick), as the live
  priority daemon re-scores the pending queue every cycle. ``train_on_last``
  fits the model on the feature rows jobs were last scored with instead of
  their submit-time rows (measured worse on Philly: docs/simulator.md);
  ``refeaturize=False`` re-predicts the submit-time rows with the current
  model instead (only a retrain changes them).

History look-ups are shared by jobs with the same history keys at the same
tick, so a re-scoring costs one look-up per distinct key set plus one model
call for the whole queue.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from predictor.features import FEATURE_NAMES, build_feature_row
from predictor.history import HistoryStore, effective_end, job_keys
from predictor.models.duration import DurationConfig, DurationModel, anchor_log

WEEK_S = 7 * 86400.0
MIN_PREDICTION_S = 1.0


class _SharedLookups:
    """A :class:`HistoryStore` view that answers each (keys, now) look-up once."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store
        self._memo: dict[tuple[float, tuple[tuple[str, str], ...]], list[float]] = {}

    def history_features(
        self, job: Mapping[str, Any], now: float, keys: Mapping[str, str] | None = None
    ) -> list[float]:
        keys = keys if keys is not None else job_keys(job)
        ident = (now, tuple(sorted(keys.items())))
        hit = self._memo.get(ident)
        if hit is None:
            hit = self._memo[ident] = self._store.history_features(job, now, keys)
        return hit


class ReplayPredictor:
    """Causal run-time predictions made from the simulation's own history (see module doc)."""

    def __init__(
        self,
        jobs: pd.DataFrame,
        prior: pd.DataFrame | None = None,
        *,
        interval: float = math.inf,
        train_on_last: bool = False,
        refeaturize: bool = True,
        retrain_interval: float = WEEK_S,
        config: DurationConfig | None = None,
        min_train: int = 200,
        window: int = 100_000,
    ) -> None:
        """``jobs``: the workload's rows (canonical columns, in submit order);
        ``prior``: the log's jobs submitted before the replay window (history only)."""
        if not interval > 0:
            raise ValueError(f"re-scoring interval must be > 0 s (inf: never), got {interval}")
        if not retrain_interval > 0:
            raise ValueError(f"retrain interval must be > 0 seconds, got {retrain_interval}")
        self.interval = float(interval)
        self.train_on_last = train_on_last
        self.refeaturize = refeaturize
        self.retrain_interval = float(retrain_interval)
        self.config = config or DurationConfig()
        self.min_train, self.window = min_train, window
        prior = prior if prior is not None else jobs.iloc[:0]
        prior = prior.sort_values("submit_time", kind="stable")
        frame = pd.concat([prior, jobs], ignore_index=True)
        self.offset = len(prior)  # workload job j is row offset + j
        self.records: list[dict[str, Any]] = frame.to_dict("records")
        self.keys = [job_keys(r) for r in self.records]
        self.run = frame["run_time"].to_numpy(np.float64)
        self.submit = frame["submit_time"].to_numpy(np.float64)
        self.X = np.full((len(frame), len(FEATURE_NAMES)), np.nan, dtype=np.float32)
        self.ended_at = np.full(len(frame), np.inf)  # when each row's run time became history
        self.history = HistoryStore()
        self.model: DurationModel | None = None
        self.next_fit = -math.inf
        self.fits = 0
        # prior jobs: submissions and (logged) ends are replayed as events before/along the run
        prior_end = effective_end(prior).to_numpy(np.float64) if len(prior) else np.empty(0)
        usable = np.isfinite(prior_end) & (self.run[: self.offset] > 0)
        self._prior_submits = 0
        self._prior_ends = [(float(prior_end[i]), int(i)) for i in np.flatnonzero(usable)]
        self._prior_ends.sort()
        self._prior_ptr = 0

    # -- history ----------------------------------------------------------------------------
    def _fold_end(self, row: int, end: float) -> None:
        rec = self.records[row]
        rec["end_time"] = end
        self.ended_at[row] = end
        if self.run[row] > 0:
            self.history.record_completed(rec, self.keys[row])

    def _advance(self, now: float) -> None:
        """Fold in the prior (pre-window) submissions and ends up to ``now``, in time order."""
        ends, submits = self._prior_ends, self.submit
        while True:
            next_end = ends[self._prior_ptr][0] if self._prior_ptr < len(ends) else math.inf
            i = self._prior_submits
            next_submit = submits[i] if i < self.offset else math.inf
            if min(next_end, next_submit) > now:
                break
            if next_end <= next_submit:
                self._fold_end(ends[self._prior_ptr][1], next_end)
                self._prior_ptr += 1
            else:
                self._submit_row(i, next_submit)
                self._prior_submits += 1

    def _submit_row(self, row: int, now: float) -> None:
        rec, keys = self.records[row], self.keys[row]
        self.X[row] = build_feature_row(rec, self.history, now=now, keys=keys)
        self.history.record_submitted(rec)

    # -- model ------------------------------------------------------------------------------
    def _refit(self, now: float) -> None:
        if now < self.next_fit:
            return
        self.next_fit = now + self.retrain_interval
        done = np.flatnonzero((self.ended_at <= now) & (self.run > 0))[-self.window :]
        if done.size >= self.min_train:  # rows are in submit order, as the model expects
            self.model = DurationModel(self.config).fit(self.X[done], self.run[done])
            self.fits += 1

    def _predict(self, X: np.ndarray) -> np.ndarray:
        center = self.model.predict_log(X) if self.model is not None else anchor_log(X)
        return np.maximum(np.exp(center), MIN_PREDICTION_S)

    # -- the OnlinePredictor protocol -------------------------------------------------------
    def submitted(self, rows: np.ndarray, now: float) -> np.ndarray:
        self._advance(now)
        self._refit(now)
        at = rows + self.offset
        for row in at.tolist():
            self._submit_row(row, now)
        return self._predict(self.X[at])

    def ended(self, j: int, now: float) -> None:
        self._advance(now)
        self._fold_end(j + self.offset, now)

    def rescore(self, rows: np.ndarray, now: float) -> np.ndarray:
        self._advance(now)
        self._refit(now)
        if not self.refeaturize:
            return self._predict(self.X[rows + self.offset])
        shared = _SharedLookups(self.history)
        X = np.array(
            [build_feature_row(self.records[r], shared, now=now, keys=self.keys[r])  # type: ignore[arg-type]
             for r in (rows + self.offset).tolist()],
            dtype=np.float32,
        ).reshape(len(rows), len(FEATURE_NAMES))  # fmt: skip
        if self.train_on_last:  # a job is learnt from with the row it was last scheduled by
            self.X[rows + self.offset] = X
        return self._predict(X)
