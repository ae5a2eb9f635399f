"""Burst siblings: the burst rule, and re-scoring waiting siblings on hand-computed traces."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from policies import get_policy
from policies.simulator import SiblingSpec, prepare_replay, run_policies
from policies.simulator.cluster import parse_cluster_config
from policies.simulator.engine import simulate
from policies.simulator.siblings import SiblingRescorer
from policies.simulator.workload import build_workload
from predictor.history.bursts import BurstTracker, burst_key
from predictor.logs.schema import to_canonical


def _jobs(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["job_id"] = [r.get("job_id", str(i)) for i, r in enumerate(rows)]
    return to_canonical(frame)


def _gpu_cluster(nodes: int):
    return parse_cluster_config({"gpus_per_node": 1, "cpus_per_node": 0, "vcs": {"*": nodes}})


def _replay(rows: list[dict], nodes: int, predicted: list[float], **rescorer):
    jobs = _jobs(rows)
    cluster = _gpu_cluster(nodes)
    workload = build_workload(jobs, cluster, pd.Series(predicted, index=jobs.index))
    rescorer_ = SiblingRescorer(workload.jobs, workload.predicted, **rescorer) if rescorer else None
    result = simulate(workload, cluster, get_policy("qssf"), predictor=rescorer_)
    ids = workload.jobs["job_id"].tolist()
    return dict(zip(ids, result.start.tolist(), strict=True)), result


def test_burst_rule_joins_jobs_within_the_gap_per_key() -> None:
    t = BurstTracker(gap=60)
    assert [t.submitted("u", s) for s in (0, 30, 90, 200)] == [0, 0, 0, 1]  # gap from the previous
    assert t.submitted("v", 201) == 2  # another key never joins
    assert t.submitted(None, 202) == 3 and t.submitted(None, 203) == 4  # no key: alone
    assert t.size(0) == 3 and t.ended_count(0) == 0
    assert math.isnan(t.sibling_log_runtime(0)) and t.estimate(0, 500.0) == 500.0
    t.ended(0, 100.0)
    t.ended(0, 400.0)
    assert t.sibling_log_runtime(0) == pytest.approx(math.log(200.0))  # geometric mean
    assert t.estimate(0, 500.0) == pytest.approx(200.0)
    assert t.estimate(0, 50.0, weight=0.5) == pytest.approx(100.0)  # sqrt(200 * 50)


def test_burst_rule_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="gap"):
        BurstTracker(gap=-1)
    t = BurstTracker()
    t.submitted("u", 100)
    with pytest.raises(ValueError, match="out of order"):
        t.submitted("u", 50)
    with pytest.raises(ValueError, match="finite"):
        t.submitted("u", math.nan)


def test_burst_key_is_user_or_account_and_shape() -> None:
    assert burst_key({"user": "a", "cpus": 4, "gpus": 1}) == burst_key(
        {"user": "a", "account": "x", "cpus": 4.0, "gpus": 1}
    )
    assert burst_key({"user": "a", "cpus": 4, "gpus": 1}) != burst_key(
        {"user": "a", "cpus": 4, "gpus": 2}
    )
    assert burst_key({"account": "a", "gpus": 1}) != burst_key({"user": "a", "gpus": 1})
    assert burst_key({"gpus": 1}) is None


# One 1-GPU node. a and b are one burst of user u (true 10 s, predicted 100 s);
# c (user v) is predicted 50 s. a runs 0-10; then plain QSSF runs c (50 < 100)
# 10-60 and b 60-70; with sibling re-scoring b takes a's 10 s and runs 10-20.
BURST_TRACE = [
    {"job_id": "a", "user": "u", "submit_time": 0, "run_time": 10, "gpus": 1},
    {"job_id": "b", "user": "u", "submit_time": 1, "run_time": 10, "gpus": 1},
    {"job_id": "c", "user": "v", "submit_time": 2, "run_time": 50, "gpus": 1},
]


def test_waiting_sibling_is_rescored_when_a_sibling_ends() -> None:
    plain, _ = _replay(BURST_TRACE, 1, [100, 100, 50])
    assert plain == {"a": 0, "b": 60, "c": 10}
    start, result = _replay(BURST_TRACE, 1, [100, 100, 50], gap=60)
    assert start == {"a": 0, "b": 10, "c": 20}
    assert result.predicted.tolist() == pytest.approx([100, 10, 50])  # only b changed


def test_only_siblings_that_have_ended_count() -> None:
    # with a 0.5 s gap b (1 s after a) is another burst, so a's end does not touch it
    start, result = _replay(BURST_TRACE, 1, [100, 100, 50], gap=0.5)
    assert start == {"a": 0, "b": 60, "c": 10} and result.predicted.tolist() == [100, 100, 50]
    # two nodes: a and b start together at 0 and 1, before any sibling ends: kept as predicted
    _, result = _replay(BURST_TRACE, 2, [100, 100, 50], gap=60)
    assert result.predicted.tolist() == [100, 100, 50]


def test_a_late_sibling_is_predicted_from_ended_ones_at_arrival() -> None:
    rows = [*BURST_TRACE[:1], {"job_id": "b", "user": "u", "submit_time": 40, "run_time": 10,
                               "gpus": 1}]  # fmt: skip
    _, result = _replay(rows, 1, [100, 100], gap=60)
    assert result.predicted.tolist() == pytest.approx([100, 10])  # a ended at 10, b came at 40


def test_censored_ticks_use_a_running_siblings_age() -> None:
    # Two 1-GPU nodes. a (u, true 1000 s, predicted 100) and d (w, 400 s) run from 0;
    # b (a's sibling, predicted 100) and c (v, predicted 300) wait. At 400 d ends:
    # plain QSSF starts b (100 < 300); with ticks every 100 s, a has run 400 s by
    # then, so b is predicted >= 400 and c goes first.
    rows = [
        {"job_id": "a", "user": "u", "submit_time": 0, "run_time": 1000, "gpus": 1},
        {"job_id": "d", "user": "w", "submit_time": 0, "run_time": 400, "gpus": 1},
        {"job_id": "b", "user": "u", "submit_time": 1, "run_time": 1000, "gpus": 1},
        {"job_id": "c", "user": "v", "submit_time": 2, "run_time": 300, "gpus": 1},
    ]
    pred = [100, 400, 100, 300]
    plain, _ = _replay(rows, 2, pred, gap=60)
    assert plain == {"a": 0, "d": 0, "b": 400, "c": 1000}
    start, _ = _replay(rows, 2, pred, gap=60, censored_interval=100)
    assert start == {"a": 0, "d": 0, "b": 700, "c": 400}


def test_probe_runs_one_sibling_first_on_its_optimistic_prediction() -> None:
    # One 1-GPU node; d runs 0-50. a, b, c are one burst (true 10 s, predicted 100,
    # optimistic 5); e is predicted 60. Siblings only: e runs 50-110, then a 110-120,
    # whose end re-scores b and c to 10. Probing: a runs first on its 5 s (50-60), b and
    # c follow on a's 10 s, e last.
    rows = [
        {"job_id": "d", "user": "v", "submit_time": 0, "run_time": 50, "gpus": 1},
        *({"job_id": k, "user": "u", "submit_time": t, "run_time": 10, "gpus": 1}
          for k, t in (("a", 1), ("b", 2), ("c", 3))),
        {"job_id": "e", "user": "w", "submit_time": 4, "run_time": 60, "gpus": 1},
    ]  # fmt: skip
    pred, low = [50, 100, 100, 100, 60], np.array([50, 5, 5, 5, 60.0])
    plain, _ = _replay(rows, 1, pred, gap=60)
    assert plain == {"d": 0, "e": 50, "a": 110, "b": 120, "c": 130}
    start, _ = _replay(rows, 1, pred, gap=60, optimistic=low)
    assert start == {"d": 0, "a": 50, "b": 60, "c": 70, "e": 80}
    # a lone job never probes: without b and c, a waits behind e
    alone, _ = _replay([rows[0], rows[1], rows[4]], 1, [50, 100, 60], gap=60,
                       optimistic=np.array([50, 5, 60.0]))  # fmt: skip
    assert alone == {"d": 0, "e": 50, "a": 110}


def test_rescorer_rejects_bad_input() -> None:
    jobs = _jobs(BURST_TRACE)
    with pytest.raises(ValueError, match="one finite prediction"):
        SiblingRescorer(jobs, np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="weight"):
        SiblingRescorer(jobs, np.ones(3), weight=2)
    with pytest.raises(ValueError, match="optimistic"):
        SiblingRescorer(jobs, np.ones(3), optimistic=np.ones(2))


def test_run_policies_applies_siblings_to_prediction_policies_only() -> None:
    jobs = _jobs(BURST_TRACE)
    replay = prepare_replay(jobs, log="t", log_format="philly",
                            cluster_config=None, predictions=pd.Series([100, 100, 50]))  # fmt: skip
    replay.cluster = _gpu_cluster(1)
    out = run_policies(replay, ["qssf", "fifo"], siblings=SiblingSpec())
    assert out["qssf"].start.tolist() == [0, 10, 20]
    assert out["fifo"].start.tolist() == [0, 10, 20] and out["fifo"].predicted is None
    with pytest.raises(ValueError, match="online"):
        from policies.simulator import OnlineSpec

        run_policies(replay, ["qssf"], siblings=SiblingSpec(), online=OnlineSpec())
