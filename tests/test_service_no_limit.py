"""Jobs without a time limit (Slurm's UNLIMITED): what the served model predicts for them.

The priority daemon scoring them through the real service is in test_hooks_daemons.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictor.features import causal_features
from predictor.logs.schema import to_canonical
from predictor.models.duration import (
    MIN_NO_LIMIT_ROWS,
    DurationModel,
    anchor_log,
    recency_log,
)


def _log(n: int, no_limit_every: int = 0, seed: int = 0) -> pd.DataFrame:
    """Users with their own run-time level; limits 4x that level (every ``no_limit_every``-th
    job, if given, without one)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 20, n)
    base = np.exp(rng.normal(6, 1.5, 20))[users]
    run = base * np.exp(rng.normal(0, 0.3, n))
    limit = base * 4 * np.exp(rng.normal(0, 0.5, n))
    if no_limit_every:
        limit[::no_limit_every] = np.nan
    submit = np.sort(rng.uniform(0, 3e6, n))
    return to_canonical(pd.DataFrame({
        "job_id": np.arange(n).astype(str), "user": users.astype(str), "cpus": 1 + users % 4,
        "time_limit": limit, "submit_time": submit, "start_time": submit,
        "end_time": submit + run, "run_time": run,
    }))  # fmt: skip


def test_a_model_fit_on_limited_jobs_predicts_limitless_ones_by_recency() -> None:
    """Its correction was never checked on a job without a limit: the recency anchor."""
    jobs = _log(1500)
    model = DurationModel().fit(causal_features(jobs).X, jobs["run_time"].to_numpy())
    assert model.shrink_no_limit == 0.0
    X = causal_features(jobs.assign(time_limit=np.nan)).X[-200:]
    pred = model.predict(X)
    assert np.isfinite(pred.to_numpy()).all()
    assert np.allclose(np.log(pred["runtime_s"]), recency_log(X), atol=1e-6)
    lo_off, hi_off = model.interval_no_limit
    assert np.allclose(np.log(pred["runtime_lo_s"]), recency_log(X) + lo_off, atol=1e-6)
    assert np.allclose(np.log(pred["runtime_hi_s"]), recency_log(X) + hi_off, atol=1e-6)
    for row, expected in zip(X[:20], pred.to_numpy()[:20], strict=True):
        assert model.predict_one(row) == pytest.approx(tuple(expected), rel=1e-5)


def test_limitless_jobs_seen_in_validation_share_the_correction() -> None:
    """Enough checked rows without a limit: their jobs get every job's weight and interval
    (so a log without any limit is served exactly as before)."""
    jobs = _log(3000, no_limit_every=3)
    X = causal_features(jobs).X
    no_limit = np.isnan(jobs["time_limit"].to_numpy())
    assert no_limit[-int(len(jobs) * 0.15) :].sum() >= MIN_NO_LIMIT_ROWS
    model = DurationModel().fit(X, jobs["run_time"].to_numpy())
    assert model.shrink_no_limit is None and model.interval_no_limit is None
    pred = model.predict(X[no_limit])
    expected = anchor_log(X[no_limit]) + model.shrink * model._raw(X[no_limit])
    assert np.allclose(np.log(pred["runtime_s"]), expected, atol=1e-5)
    assert np.allclose(np.log(pred["runtime_hi_s"]), expected + model.interval[1], atol=1e-5)
    bare = jobs.assign(time_limit=np.nan)
    plain = DurationModel().fit(causal_features(bare).X, bare["run_time"].to_numpy())
    assert plain.shrink_no_limit is None
