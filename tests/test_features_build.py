"""The one feature pipeline: names, request features, live build vs offline sweep."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from predictor.features import (
    FEATURE_NAMES,
    build_feature_row,
    build_features,
    causal_features,
    request_features,
)
from predictor.history import HistoryStore
from predictor.logs.schema import to_canonical


def test_feature_names_are_unique_and_match_rows() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    row = build_feature_row({"job_id": "1", "submit_time": 0.0}, HistoryStore())
    assert len(row) == len(FEATURE_NAMES)


def test_request_and_calendar_features() -> None:
    # 1970-01-05 was a Monday; 13:30 UTC
    job = {"cpus": 7, "gpus": 0, "time_limit": 3600, "submit_time": 4 * 86400 + 13.5 * 3600,
           "partition": "gpu"}
    values = dict(zip(["req_cpus", "req_gpus", "req_nodes", "req_mem", "req_limit",
                       "req_partition", "req_qos", "req_vc", "cal_hour", "cal_weekday"],
                      request_features(job), strict=True))
    assert values["req_cpus"] == math.log1p(7)
    assert values["req_limit"] == math.log1p(3600)
    assert values["cal_hour"] == 13.5 and values["cal_weekday"] == 0.0
    assert math.isnan(values["req_nodes"]) and math.isnan(values["req_qos"])
    assert not math.isnan(values["req_partition"])


def test_live_build_equals_offline_sweep_for_the_next_job() -> None:
    jobs = to_canonical(pd.DataFrame({
        "job_id": ["1", "2", "3"], "user": ["u", "u", "u"], "job_name": ["x", "x", "y"],
        "submit_time": [0.0, 10.0, 500.0], "start_time": [0.0, 10.0, 500.0],
        "end_time": [100.0, 300.0, 900.0], "run_time": [100.0, 290.0, 400.0], "cpus": [4, 4, 8],
    }))
    offline = causal_features(jobs).X[2]
    store = HistoryStore()
    build_features(jobs.iloc[:2], store)  # records the two submissions
    store.add_completed(jobs.iloc[:2])
    live = build_features(jobs.iloc[2:], store).to_numpy(np.float32)[0]
    np.testing.assert_allclose(live, offline, rtol=1e-6, equal_nan=True)


def _messy_log(n: int, seed: int) -> pd.DataFrame:
    """Jobs with every tie and gap the sweep must order like the stepwise one."""
    rng = np.random.default_rng(seed)
    submit = np.sort(rng.integers(0, n * 3, n)).astype(float)  # many equal submit times
    run = rng.choice([0.0, 0.4, 1.0, 5.0, 60.0, 3600.0], n) * rng.integers(1, 4, n)
    wait = rng.choice([0.0, 0.0, 2.0, 30.0], n)
    end = submit + wait + run
    end[rng.random(n) < 0.03] = np.nan  # never ended
    end[rng.random(n) < 0.02] -= 50.0  # inconsistent: ends before its submit
    ids = [str(i) for i in range(n)]
    for i in rng.choice(n, n // 20, replace=False):
        ids[i] = ids[max(i - 1, 0)]  # a reused id, sometimes in the same second
    return to_canonical(pd.DataFrame({
        "job_id": ids,
        "user": rng.choice(["a", "b", "c", ""], n),
        "account": rng.choice(["g1", "g2", ""], n),
        "job_name": rng.choice(["x", "y", ""], n),
        "partition": rng.choice(["p", "q", ""], n),
        "cpus": rng.choice([1.0, 2.0, 1e7 + 1, 1e7 + 2, np.nan], n),  # two cpus with one %g text
        "gpus": rng.choice([0.0, 1.0], n),
        "time_limit": rng.choice([np.nan, 0.0, 60.0, 7200.0], n),
        "submit_time": submit, "start_time": submit + wait, "end_time": end, "run_time": run,
    }))  # fmt: skip


def test_vectorised_sweep_equals_the_stepwise_sweep_on_every_row() -> None:
    for seed in range(3):
        jobs = _messy_log(400, seed)
        jobs = jobs.iloc[np.random.default_rng(seed).permutation(len(jobs))]  # any row order
        fast = causal_features(jobs)
        slow = causal_features(jobs, HistoryStore())  # event by event via build_feature_row
        np.testing.assert_allclose(fast.X, slow.X, rtol=1e-6, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(fast.last2, slow.last2, rtol=1e-9, equal_nan=True)
        np.testing.assert_allclose(fast.helios, slow.helios, rtol=1e-9, equal_nan=True)


def test_vectorised_sweep_equals_the_stepwise_sweep_on_a_real_log(data) -> None:
    from predictor.logs import read_log

    jobs = read_log(data / "hpc_swf" / "MetaCentrum-wagap-2013-alea.swf.gz").jobs.iloc[:4000]
    fast, slow = causal_features(jobs), causal_features(jobs, HistoryStore())
    np.testing.assert_allclose(fast.X, slow.X, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(fast.helios, slow.helios, rtol=1e-9, equal_nan=True)
