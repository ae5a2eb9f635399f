"""HistoryStore: causality of the offline sweep, idempotent updates, SQLite persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from predictor.features import FEATURE_NAMES, causal_features
from predictor.history import HistoryStore, log_runtime
from predictor.logs.schema import to_canonical


def _jobs(rows: list[dict]) -> pd.DataFrame:
    return to_canonical(pd.DataFrame(rows))


def _job(job_id: str, user: str, submit: float, run: float, **extra) -> dict:
    return {"job_id": job_id, "user": user, "submit_time": submit, "start_time": submit,
            "end_time": submit + run, "run_time": run, **extra}


def test_add_completed_is_idempotent_per_job_id(tmp_path: Path) -> None:
    jobs = _jobs([_job("1", "u", 0, 100), _job("2", "u", 10, 300)])
    store = HistoryStore(tmp_path / "history.sqlite")
    assert store.add_completed(jobs) == 2
    assert store.add_completed(jobs) == 0  # replay: nothing new
    assert store.add_completed(_jobs([_job("2", "u", 10, 300), _job("3", "u", 20, 50)])) == 1
    stats = store.stats("user", "u")
    assert stats is not None and stats.n == 3
    store.close()
    reopened = HistoryStore(tmp_path / "history.sqlite")
    assert len(reopened) == 3 and reopened.stats("user", "u").n == 3
    assert reopened.add_completed(jobs) == 0


def test_a_reused_job_id_with_a_new_submit_time_is_a_new_job(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    assert store.add_completed(_jobs([_job("26", "u", 0, 100)])) == 1
    # Slurm restarted its id counter (or another log's ids overlap): job 26 again, later
    assert store.add_completed(_jobs([_job("26", "u", 5000, 40)])) == 1
    assert store.add_completed(_jobs([_job("26", "u", 5000, 40)])) == 0  # a true replay
    store.close()
    assert len(HistoryStore(tmp_path / "history.sqlite")) == 2


def test_last2_is_mean_of_two_latest_ended(tmp_path: Path) -> None:
    store = HistoryStore()
    store.add_completed(_jobs([_job("1", "u", 0, 100), _job("2", "u", 200, 300),
                               _job("3", "u", 600, 500)]))
    assert store.last2({"user": "u"}) == 400.0
    assert np.isnan(store.last2({"user": "nobody"}))
    assert np.isnan(store.last2({"user": ""}))


def test_sweep_never_uses_a_job_that_ended_after_the_submit() -> None:
    # job a ends at 1000; b is submitted at 500 (a still running), c at 1000 (a just ended)
    jobs = _jobs([
        _job("a", "u", 0, 1000),
        _job("b", "u", 500, 10),
        _job("c", "u", 1000, 20),
        _job("d", "v", 1000, 0.5),
    ])
    feats = causal_features(jobs)
    last1 = FEATURE_NAMES.index("user_last1")
    running = FEATURE_NAMES.index("user_running")
    assert np.isnan(feats.X[0, last1])  # nothing before a
    assert np.isnan(feats.X[1, last1])  # a had not ended at 500
    assert feats.X[1, running] == 1.0  # but a was running
    assert np.isclose(feats.X[2, last1], log_runtime(1000))  # b ended at 510, a at 1000: a newest
    assert np.isnan(feats.last2[1]) and feats.last2[2] == (1000 + 10) / 2


def test_sweep_matches_incremental_store_at_each_submit() -> None:
    rng = np.random.default_rng(0)
    n = 300
    submit = np.sort(rng.uniform(0, 10_000, n))
    run = rng.lognormal(5, 1.5, n)
    users = rng.choice(["a", "b", "c", ""], n)
    jobs = _jobs([_job(str(i), users[i], submit[i], run[i], job_name=f"n{i % 7}", cpus=2)
                  for i in range(n)])
    feats = causal_features(jobs)
    # brute force: a fresh store holding exactly the jobs ended by each submit
    for i in rng.choice(n, 25, replace=False):
        store = HistoryStore()
        ended = jobs[jobs["end_time"] <= submit[i]]
        ended = ended[ended.index != i]
        store.add_completed(ended)
        store.add_submitted(jobs.iloc[:i])
        from predictor.features import build_feature_row

        expected = np.asarray(build_feature_row(jobs.iloc[i].to_dict(), store), dtype=np.float32)
        np.testing.assert_allclose(feats.X[i], expected, rtol=1e-5, equal_nan=True)


def test_missing_user_and_name_still_give_features() -> None:
    jobs = _jobs([_job(str(i), "", i * 10.0, 5.0 + i) for i in range(20)])
    feats = causal_features(jobs)
    assert feats.X.shape == (20, len(FEATURE_NAMES))
    assert np.isnan(feats.X[:, FEATURE_NAMES.index("user_last1")]).all()
    assert np.isfinite(feats.X[5:, FEATURE_NAMES.index("all_last1")]).all()


def test_duration_only_logs_end_at_submit_plus_run_time() -> None:
    # Philly-style rows: no start/end, only submit and duration
    jobs = _jobs([{"job_id": "1", "user": "vc1", "submit_time": 0.0, "run_time": 100.0},
                  {"job_id": "2", "user": "vc1", "submit_time": 50.0, "run_time": 10.0}])
    store = HistoryStore()
    assert store.add_completed(jobs) == 2
    assert store.stats("user", "vc1").last_end == 100.0
    feats = causal_features(jobs)
    assert np.isnan(feats.X[1, FEATURE_NAMES.index("user_last1")])  # job 1 ends at 100 > 50


def test_template_key_is_user_shape_and_limit() -> None:
    from predictor.history import job_keys

    job = {"user": "u", "cpus": 4.0, "gpus": 0.0, "time_limit": 3600.0}
    assert job_keys(job)["template"] == job_keys({**job, "job_name": "x"})["template"]
    assert job_keys(job)["template"] != job_keys({**job, "time_limit": 7200.0})["template"]
    for no_limit in (np.nan, 0.0, None):
        assert "template" not in job_keys({**job, "time_limit": no_limit})
    assert "template" not in job_keys({**job, "user": ""})
