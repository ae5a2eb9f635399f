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
