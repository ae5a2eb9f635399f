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

from predictor.features.request import REQUEST_FEATURE_NAMES, request_features, request_matrix
from predictor.history import (
    ALL_KINDS,
    FEATURE_KINDS,
    HISTORY_FEATURE_NAMES,
    STAT_FEATURES,
    HistoryStore,
    effective_end,
    job_keys,
)
from predictor.history.batch import Events, JobValues, bucket_features
from predictor.history.keys import combined_codes, key_codes

#: Bump when the meaning or order of features changes: models trained on another
#: schema version refuse to load.
FEATURE_SCHEMA_VERSION = 2  # 2: + the template kind

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
    itself). Without ``history`` the sweep is vectorised (:func:`_sweep_events`
    + :func:`predictor.history.batch.bucket_features`: a few array passes per
    key kind, O(n log n)). Given a ``history`` (which may already hold jobs),
    it steps event by event through :func:`build_feature_row` and that store,
    which ends up holding the whole log; the two agree up to float rounding.
    """
    if history is not None:
        return _causal_features_stepwise(jobs, history)
    n = len(jobs)
    end = effective_end(jobs).to_numpy(np.float64)
    run = jobs["run_time"].to_numpy(np.float64)
    submit = jobs["submit_time"].to_numpy(np.float64)
    can_end = np.isfinite(end) & np.isfinite(run) & (run > 0)
    events = _sweep_events(submit, end, can_end, _identity_codes(jobs, submit))
    limit = (
        jobs["time_limit"].to_numpy(np.float64) if "time_limit" in jobs else np.full(n, np.nan)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        log_run = np.log(np.maximum(run, 1.0))
        log_ratio = np.where(limit > 0, log_run - np.log(np.maximum(limit, 1.0)), np.nan)
    values = JobValues(now=submit, log_run=log_run, run=run, log_ratio=log_ratio, end=end)
    codes = key_codes(jobs)
    per_kind = {kind: bucket_features(codes[kind], events, values) for kind in ALL_KINDS}
    request = request_matrix(jobs)
    X = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    q = events.queries
    X[:, : request.shape[1]] = request
    col = request.shape[1]
    for kind in FEATURE_KINDS:
        stats = per_kind[kind][0]
        if kind == "all":  # all_n is no feature (see HISTORY_FEATURE_NAMES)
            stats = np.delete(stats, STAT_FEATURES.index("n"), axis=1)
        X[q, col : col + stats.shape[1]] = stats
        col += stats.shape[1]
    user_ratio = np.empty(n)
    user_ratio[q] = per_kind["user"][0][:, STAT_FEATURES.index("limit_ratio")]
    X[:, -1] = request[:, _REQ_LIMIT] - 1.0 + user_ratio
    last2 = np.full(n, np.nan)
    last2[q] = per_kind["user"][2]
    helios = np.full(n, np.nan)
    helios[q] = _helios(per_kind)
    return CausalFeatures(X=X, end_time=end, last2=last2, helios=helios)


def _helios(per_kind: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """:meth:`HistoryStore.helios` from per-kind mean run times (NaN: no history)."""
    mean = {kind: per_kind[kind][1] for kind in ("name", "user_name_gpus", "user_name",
                                                  "user", "all")}
    named = np.where(np.isnan(mean["user_name_gpus"]), mean["user_name"], mean["user_name_gpus"])
    named = np.where(np.isnan(named), mean["name"], named)
    unnamed = np.where(np.isnan(mean["user"]), mean["all"], mean["user"])
    return np.where(np.isnan(mean["name"]), unnamed, named)


def _identity_codes(jobs: pd.DataFrame, submit: np.ndarray) -> np.ndarray:
    """Int ids, equal for rows of the same :func:`~predictor.history.store.job_identity`."""
    ids = jobs["job_id"].astype(str).to_numpy(object) if "job_id" in jobs else np.full(
        len(jobs), "", dtype=object)
    rounded = np.where(np.isfinite(submit), np.round(submit), -1.0)
    return combined_codes(pd.factorize(ids)[0], pd.factorize(rounded)[0])


def _first_occurrence(values: np.ndarray) -> np.ndarray:
    """Boolean mask: the element is the first with its value."""
    mask = np.zeros(values.size, dtype=bool)
    mask[np.unique(values, return_index=True)[1]] = True
    return mask


def _sweep_events(
    submit: np.ndarray, end: np.ndarray, can_end: np.ndarray, identity: np.ndarray
) -> Events:
    """The order in which the stepwise sweep folds ended jobs and reads submissions.

    Step ``p`` submits the ``p``-th job by submit time. An ended job is
    *reached* at the first step whose submit time is >= its end; it is folded
    then if it was submitted at an earlier step, else (a zero-length tie)
    pending until the step after its own submission, where pending jobs go
    first. A job identity (id, submit second) is folded and counted once.
    """
    n = submit.size
    by_submit = np.argsort(submit, kind="stable")
    pos = np.empty(n, dtype=np.int64)
    pos[by_submit] = np.arange(n)
    t = submit[by_submit]
    n_clock = int(np.count_nonzero(~np.isnan(t)))  # NaN submits sort last and reach nothing
    ended = np.argsort(end, kind="stable")
    ended = ended[can_end[ended]]
    reach = np.searchsorted(t[:n_clock], end[ended], side="left")
    step = np.maximum(reach, pos[ended] + 1)
    pending = step > reach
    keep = (reach < n_clock) & (step < n)
    ended, step, pending = ended[keep], step[keep], pending[keep]
    order = np.lexsort((np.arange(ended.size), ~pending, step))
    folds, fold_step = ended[order], step[order]
    once = _first_occurrence(identity[folds])
    return Events(
        queries=by_submit,
        counted_submit=_first_occurrence(identity[by_submit]),
        folds=folds[once],
        fold_step=fold_step[once],
    )


def _causal_features_stepwise(jobs: pd.DataFrame, history: HistoryStore) -> CausalFeatures:
    """The event-by-event sweep through ``build_feature_row`` (see :func:`causal_features`)."""
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
