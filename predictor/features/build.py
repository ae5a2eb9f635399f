"""THE feature pipeline: one job + the history state -> one feature vector.

``build_feature_row`` is the single place features are made. Everything
calls it: ``build_features`` (a frame of jobs against a live
:class:`~predictor.history.HistoryStore`: training, the service) and
``causal_features`` (an offline, event-ordered sweep over a whole log that
gives each job the features it would have had at its submit time: the
evaluation and the simulator).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from predictor.features.request import REQUEST_FEATURE_NAMES, request_features
from predictor.history import HISTORY_FEATURE_NAMES, HistoryStore, effective_end, job_keys

#: Bump when the meaning or order of features changes: models trained on another
#: schema version refuse to load.
FEATURE_SCHEMA_VERSION = 1

_DERIVED_NAMES: tuple[str, ...] = ("user_limit_scaled",)
FEATURE_NAMES: tuple[str, ...] = (*REQUEST_FEATURE_NAMES, *HISTORY_FEATURE_NAMES, *_DERIVED_NAMES)
_USER_RATIO = HISTORY_FEATURE_NAMES.index("user_limit_ratio")
_REQ_LIMIT = REQUEST_FEATURE_NAMES.index("req_limit")


def build_feature_row(
    job: Mapping[str, Any],
    history: HistoryStore,
    *,
    now: float | None = None,
    keys: Mapping[str, str] | None = None,
) -> list[float]:
    """The :data:`FEATURE_NAMES` values of one job (a canonical-row mapping).

    ``now`` defaults to the job's ``submit_time``. The history is read as it
    is: for causal features it must hold only jobs ended by ``now``.
    """
    if now is None:
        now = float(job.get("submit_time", math.nan))
    keys = keys if keys is not None else job_keys(job)
    request = request_features(job)
    hist = history.history_features(job, now, keys)
    scaled = request[_REQ_LIMIT] - 1.0 + hist[_USER_RATIO]  # ~ log(limit) + log(run/limit)
    return [*request, *hist, scaled]


def build_features(
    jobs: pd.DataFrame, history: HistoryStore, *, record_submit: bool = True
) -> pd.DataFrame:
    """Feature frame (columns :data:`FEATURE_NAMES`, index of ``jobs``) for canonical rows.

    With ``record_submit`` each job's submission is recorded in ``history``
    after its features are built (idempotent per ``job_id``), which feeds the
    running-jobs features of later jobs exactly as the offline sweep does.
    """
    rows = []
    for job in jobs.to_dict("records"):
        keys = job_keys(job)
        rows.append(build_feature_row(job, history, keys=keys))
        if record_submit:
            history.record_submitted(job)
    return pd.DataFrame(rows, index=jobs.index, columns=list(FEATURE_NAMES), dtype=np.float64)


@dataclass
class CausalFeatures:
    """Output of :func:`causal_features`, aligned with the input frame's rows."""

    X: np.ndarray  # (n_jobs, n_features) float32
    end_time: np.ndarray  # effective end time of each job
    last2: np.ndarray  # Tsafrir baseline (NaN where the user has no ended job)
    helios: np.ndarray  # Helios naive baseline (NaN where nothing matched)
    feature_names: tuple[str, ...] = FEATURE_NAMES


def causal_features(jobs: pd.DataFrame, history: HistoryStore | None = None) -> CausalFeatures:
    """Sweep ``jobs`` in time order; each job's features use only jobs ended by its submit.

    End events at or before a submit are folded in first (a job ending exactly
    at ``t`` counts as history for a job submitted at ``t``, but never for
    itself). ``history`` (default: a fresh in-memory store) ends up holding
    the whole log. O(n log n), a few microseconds per job and key.
    """
    history = history if history is not None else HistoryStore()
    n = len(jobs)
    end = effective_end(jobs).to_numpy(np.float64)
    run = jobs["run_time"].to_numpy(np.float64)
    submit = jobs["submit_time"].to_numpy(np.float64)
    records = jobs.to_dict("records")
    for rec, e in zip(records, end, strict=True):
        rec["end_time"] = e
    can_end = np.isfinite(end) & np.isfinite(run) & (run > 0)
    by_submit = np.argsort(submit, kind="stable")
    ended_order = [int(i) for i in np.argsort(end, kind="stable") if can_end[i]]
    X = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    last2 = np.full(n, np.nan)
    helios = np.full(n, np.nan)
    keys_of: list[Mapping[str, str] | None] = [None] * n
    submitted = np.zeros(n, dtype=bool)
    pending: list[int] = []  # ended by now but not yet submitted (zero-length ties)
    ptr = 0
    for i in by_submit:
        t = submit[i]
        if pending:
            still = []
            for j in pending:
                if submitted[j]:
                    history._fold_ended(records[j], keys_of[j])
                else:
                    still.append(j)
            pending = still
        while ptr < len(ended_order) and end[ended_order[ptr]] <= t:
            j = ended_order[ptr]
            ptr += 1
            if submitted[j]:
                history._fold_ended(records[j], keys_of[j])
            else:
                pending.append(j)
        job = records[i]
        keys = keys_of[i] = job_keys(job)
        X[i] = build_feature_row(job, history, now=t, keys=keys)
        last2[i] = history.last2(job, keys)
        helios[i] = history.helios(job, keys)
        history._fold_submitted(job, keys)
        submitted[i] = True
    return CausalFeatures(X=X, end_time=end, last2=last2, helios=helios)
