"""Logs without user ids: the validation step never loses to the plain time limit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictor.evaluation import runtime_metrics
from predictor.features import causal_features
from predictor.logs.schema import to_canonical
from predictor.models.duration import CausalSchedule, DurationModel, causal_predictions


def _no_user_log(
    n: int, block: int, level_sd: float, noise_sd: float, killed: float = 0.0
) -> pd.DataFrame:
    """Jobs without user ids: run = limit x exp(ratio); the ratio's level changes every
    ``block`` jobs (one user dominating a stretch) plus per-job noise; a ``killed``
    share of the jobs (at random) runs to its limit."""
    rng = np.random.default_rng(7)
    limit = rng.choice([600.0, 3600.0, 14400.0], n)
    level = np.repeat(rng.normal(-2.5, level_sd, n // block + 1), block)[:n]
    run = np.minimum(limit * np.exp(level + rng.normal(0.0, noise_sd, n)), limit)
    run = np.where(rng.random(n) < killed, limit, run)
    submit = np.arange(n) * 5000.0  # each job ends before the next is submitted
    return to_canonical(pd.DataFrame({
        "job_id": np.arange(n).astype(str), "cpus": 1, "time_limit": limit,
        "submit_time": submit, "start_time": submit, "end_time": submit + run,
        "run_time": run,
    }))


def _fit(jobs: pd.DataFrame) -> DurationModel:
    feats = causal_features(jobs)
    return DurationModel().fit(feats.X, jobs["run_time"].to_numpy())


def test_unrelated_jobs_fall_back_to_the_limit_not_to_the_last_jobs() -> None:
    # half the jobs run to their limit, the rest far shorter: the cluster's recent
    # run/limit ratios (other users' jobs) say nothing about the next job
    jobs = _no_user_log(1500, block=1, level_sd=0.0, noise_sd=0.0, killed=0.55)
    model = _fit(jobs.iloc[:1000])
    assert model.use_limit and model.metadata()["use_limit"]
    pred = causal_predictions(jobs, schedule=CausalSchedule(first_fit=1000))
    actual = jobs["run_time"].to_numpy()[1000:]
    ours = runtime_metrics(pred["runtime_s"].to_numpy()[1000:], actual)
    limit = runtime_metrics(pred["requested_s"].to_numpy()[1000:], actual)
    assert ours["accuracy"] >= limit["accuracy"] - 0.01
    feats = causal_features(jobs.iloc[1000:1010])
    for row in feats.X:  # the one-row fast path uses the same fitted cluster level
        expected = model.predict(row[None])["runtime_s"][0]
        assert model.predict_one(row)[0] == pytest.approx(expected, rel=1e-5)


def test_runs_of_similar_jobs_keep_the_recency_anchor() -> None:
    jobs = _no_user_log(1500, block=60, level_sd=1.5, noise_sd=0.1)
    model = _fit(jobs.iloc[:1000])
    assert not model.use_limit  # recent jobs predict the next: the anchor beats the limit
