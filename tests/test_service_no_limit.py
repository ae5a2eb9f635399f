"""Jobs without a time limit (Slurm's UNLIMITED): what the served model predicts for them,
and the priority daemon scoring them through the real service."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient
from service_support import make_home, trained_home_dir

from predictor.config import load_config
from predictor.features import causal_features
from predictor.logs.schema import to_canonical
from predictor.models.duration import (
    MIN_NO_LIMIT_ROWS,
    DurationModel,
    anchor_log,
    recency_log,
)
from predictor.service import create_app
from slurm_hooks.priority_daemon import PriorityDaemon
from slurm_hooks.service_client import ServiceClient


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


class _FlaskSession:
    """``requests.Session.post`` answered by a Flask test client (no socket)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.headers: dict[str, str] = {}

    def post(self, url: str, json: Any, timeout: float) -> SimpleNamespace:
        resp = self.client.post(url.removeprefix("http://svc"), json=json)
        return SimpleNamespace(status_code=resp.status_code, text=resp.get_data(as_text=True),
                               json=lambda: resp.json)  # fmt: skip


class _Queue:
    """A Slurm adapter holding a pending queue and recording site-factor updates."""

    def __init__(self, pending: pd.DataFrame) -> None:
        self.pending = pending
        self.updates: dict[str, int] = {}

    def queue(self, states: tuple[str, ...] = ("PENDING", "RUNNING")) -> pd.DataFrame:
        return self.pending

    def update_job(self, job_id: str, site_factor: int | None = None, **_: Any) -> None:
        self.updates[str(job_id)] = int(site_factor or 0)


def test_daemon_scores_limitless_pending_jobs_through_the_service(
    data: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    home = make_home(trained_home_dir(data, tmp_path_factory), tmp_path / "home")
    app = create_app(load_config(environ={}, state_dir=home), watch=False)
    client = ServiceClient("http://svc")
    client._session = _FlaskSession(app.test_client())  # type: ignore[assignment]
    now = time.time()  # fresh submissions: below QSSF's ageing promotion
    rows = [{"job_id": str(i), "user": str(i % 3), "cpus": 2 ** i,
             "time_limit": [np.nan, 0.0, 3600.0][i % 3], "submit_time": now - i,
             "state": "PENDING"} for i in range(6)]  # fmt: skip
    pending = to_canonical(pd.DataFrame(rows)).assign(site_factor=np.nan)
    slurm = _Queue(pending)
    report = PriorityDaemon(slurm, client, siblings=False).cycle()  # type: ignore[arg-type]
    assert report.error is None, report.error
    assert (report.scored, report.no_limit, report.updated) == (6, 4, 6)
    factors = [slurm.updates[str(i)] for i in range(6)]
    assert all(0 < f < 1_000_000 for f in factors)
    assert len(set(factors)) > 1  # bigger jobs (more CPUs) rank lower under QSSF
