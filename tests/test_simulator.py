"""The event loop on tiny traces whose schedules are computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from policies import get_policy
from policies.simulator.backfill import expected_ends
from policies.simulator.cluster import parse_cluster_config
from policies.simulator.engine import simulate
from policies.simulator.metrics import json_entry, summary
from policies.simulator.nodes import choose_nodes
from policies.simulator.workload import build_workload
from predictor.logs.schema import to_canonical


def _jobs(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["job_id"] = frame.get("job_id", pd.Series(range(len(frame)))).astype(str)
    return to_canonical(frame)


def _cpu_cluster(nodes: int, cpus: int):
    return parse_cluster_config({"cpus_per_node": cpus, "vcs": {"*": nodes}})


def _run(rows, cluster, policy, backfill=True, predictions=None, **params):
    jobs = _jobs(rows)
    pred = None if predictions is None else pd.Series(predictions, index=jobs.index)
    workload = build_workload(jobs, cluster, pred)
    result = simulate(workload, cluster, get_policy(policy, **params), backfill=backfill)
    ids = workload.jobs["job_id"].tolist()
    return (
        dict(zip(ids, result.start.tolist(), strict=True)),
        dict(zip(ids, result.end.tolist(), strict=True)),
        result,
    )


# One 4-CPU node: a runs 0-100; b needs the whole node; c is short, d is long.
EASY_TRACE = [
    {"job_id": "a", "submit_time": 0, "run_time": 100, "cpus": 2, "time_limit": 100},
    {"job_id": "b", "submit_time": 1, "run_time": 50, "cpus": 4, "time_limit": 50},
    {"job_id": "c", "submit_time": 2, "run_time": 10, "cpus": 1, "time_limit": 10},
    {"job_id": "d", "submit_time": 3, "run_time": 10, "cpus": 2, "time_limit": 100},
]


def test_fifo_without_backfill_runs_in_submit_order() -> None:
    start, end, _ = _run(EASY_TRACE, _cpu_cluster(1, 4), "fifo", backfill=False)
    assert start == {"a": 0, "b": 100, "c": 150, "d": 150}
    assert end == {"a": 100, "b": 150, "c": 160, "d": 160}


def test_easy_short_job_jumps_ahead_long_one_does_not() -> None:
    start, _, _ = _run(EASY_TRACE, _cpu_cluster(1, 4), "fifo", backfill=True)
    # b reserves the node at t=100; c (ends 12 <= 100) backfills at 2; d (limit ends 103) waits
    assert start == {"a": 0, "b": 100, "c": 2, "d": 150}


def test_easy_long_job_may_use_nodes_the_reservation_does_not_need() -> None:
    rows = [
        {"job_id": "a", "submit_time": 0, "run_time": 100, "cpus": 3, "time_limit": 100},
        {"job_id": "b", "submit_time": 0, "run_time": 100, "cpus": 3, "time_limit": 100},
        {"job_id": "c", "submit_time": 1, "run_time": 10, "cpus": 4, "time_limit": 10},
        {"job_id": "d", "submit_time": 2, "run_time": 1000, "cpus": 1, "time_limit": 1000},
    ]
    start, _, _ = _run(rows, _cpu_cluster(2, 4), "fifo", backfill=True)
    # c is reserved node 0 (free when a ends at 100); d fits node 1's spare CPU without
    # touching it, so it starts at 2 although it runs far past the shadow time
    assert start == {"a": 0, "b": 0, "c": 100, "d": 2}
    start, _, _ = _run(rows, _cpu_cluster(2, 4), "fifo", backfill=False)
    assert start == {"a": 0, "b": 0, "c": 100, "d": 100}


def test_sjf_and_fifo_on_one_cpu() -> None:
    rows = [
        {"job_id": "a", "submit_time": 0, "run_time": 30, "cpus": 1},
        {"job_id": "b", "submit_time": 0, "run_time": 10, "cpus": 1},
        {"job_id": "c", "submit_time": 0, "run_time": 20, "cpus": 1},
    ]
    start, _, result = _run(rows, _cpu_cluster(1, 1), "sjf")
    assert start == {"a": 30, "b": 0, "c": 10}
    assert summary(result)["avg_jct"] == pytest.approx((60 + 10 + 30) / 3)
    start, _, result = _run(rows, _cpu_cluster(1, 1), "fifo")
    assert start == {"a": 0, "b": 30, "c": 40}
    assert summary(result)["avg_jct"] == pytest.approx((30 + 40 + 60) / 3)


def test_qssf_orders_by_predictions_not_truth() -> None:
    rows = [
        {"job_id": "a", "submit_time": 0, "run_time": 30, "cpus": 1},
        {"job_id": "b", "submit_time": 0, "run_time": 10, "cpus": 1},
        {"job_id": "c", "submit_time": 0, "run_time": 20, "cpus": 1},
    ]
    start, _, _ = _run(rows, _cpu_cluster(1, 1), "qssf", predictions=[5.0, 50.0, 20.0])
    assert start == {"a": 0, "c": 30, "b": 50}


def test_qssf_reserves_with_predictions() -> None:
    # x holds the node; y (whole node) is top; z would end before the shadow time only if
    # the running job's prediction (not its true run time) is believed.
    rows = [
        {"job_id": "x", "submit_time": 0, "run_time": 100, "cpus": 2},
        {"job_id": "y", "submit_time": 1, "run_time": 500, "cpus": 4},
        {"job_id": "z", "submit_time": 2, "run_time": 40, "cpus": 2},
    ]
    start, _, _ = _run(rows, _cpu_cluster(1, 4), "qssf", predictions=[100, 1, 40], max_wait=np.inf)
    assert start["y"] == 100  # y is first by prediction, waits for x
    assert start["z"] == 2  # z ends at 42 <= shadow 100: backfilled
    start, _, _ = _run(rows, _cpu_cluster(1, 4), "qssf", predictions=[30, 1, 40], max_wait=np.inf)
    # x predicted to end at 30 -> shadow 30; z (ends 42) would delay y: not backfilled
    assert start["y"] == 100 and start["z"] == 600


def test_overrun_estimate_is_extended_not_pinned_to_now() -> None:
    ends = expected_ends(np.array([0.0, 40.0]), np.array([10.0, 100.0]), now=50.0)
    assert ends.tolist() == [100.0, 140.0]


def test_multifactor_prefers_large_jobs_then_age() -> None:
    rows = [
        {"job_id": "z", "submit_time": 0, "run_time": 100, "cpus": 4},
        {"job_id": "x", "submit_time": 1, "run_time": 10, "cpus": 1},
        {"job_id": "y", "submit_time": 2, "run_time": 10, "cpus": 4},
    ]
    start, _, _ = _run(rows, _cpu_cluster(1, 4), "multifactor", backfill=False)
    assert start == {"z": 0, "y": 100, "x": 110}
    start, _, _ = _run(rows, _cpu_cluster(1, 4), "multifactor", backfill=False, favor_small=True)
    assert start == {"z": 0, "x": 100, "y": 110}
    start, _, _ = _run(rows, _cpu_cluster(1, 4), "fifo", backfill=False)
    assert start == {"z": 0, "x": 100, "y": 110}


def test_las_preempts_jobs_past_the_threshold() -> None:
    gpu = parse_cluster_config({"gpus_per_node": 1, "vcs": {"*": 1}})
    rows = [
        {"job_id": "a", "submit_time": 0, "run_time": 1000, "gpus": 1},
        {"job_id": "b", "submit_time": 200, "run_time": 50, "gpus": 1},
    ]
    start, end, result = _run(rows, gpu, "las", threshold=100.0)
    assert start == {"a": 0, "b": 200}
    assert end == {"a": 1050, "b": 250}  # a resumes at 250 with 800 s left
    assert result.preemptions == 1
    rows[1]["submit_time"] = 50  # a has attained 50 < 100: same queue, no preemption
    start, end, result = _run(rows, gpu, "las", threshold=100.0)
    assert end == {"a": 1000, "b": 1050} and result.preemptions == 0
    bsld = summary(result)["avg_bsld"]
    assert bsld == pytest.approx((1.0 + 1000 / 50) / 2)


def test_multi_node_jobs_take_whole_idle_nodes() -> None:
    rows = [
        {"job_id": "a", "submit_time": 0, "run_time": 100, "cpus": 2},
        {"job_id": "b", "submit_time": 1, "run_time": 10, "cpus": 8},  # 2 whole nodes
        {"job_id": "c", "submit_time": 2, "run_time": 10, "cpus": 12},  # all 3 nodes
        {"job_id": "d", "submit_time": 3, "run_time": 5, "cpus": 2},  # shares a's node
    ]
    start, _, result = _run(rows, _cpu_cluster(3, 4), "fifo")
    assert start == {"a": 0, "b": 1, "c": 100, "d": 3}
    stats = summary(result)
    # b and c hold whole nodes: CPU-seconds 2*100 + 8*10 + 12*10 + 2*5
    assert stats["cpu_util"] == pytest.approx((200 + 80 + 120 + 10) / (12 * 110))


def test_best_fit_consolidates() -> None:
    cap = np.full(3, 4)
    spot = choose_nodes(np.array([4, 2, 3]), np.zeros(3, int), cap, np.zeros(3, int), 2, 0, 1)
    assert spot.tolist() == [1]
    gpu_cap = np.full(3, 8)
    spot = choose_nodes(np.zeros(3, int), np.array([8, 3, 1]), np.zeros(3, int), gpu_cap, 0, 2, 1)
    assert spot.tolist() == [1]
    allowed = np.array([True, False, True])
    spot = choose_nodes(
        np.array([4, 2, 3]), np.zeros(3, int), cap, np.zeros(3, int), 2, 0, 1, allowed
    )
    assert spot.tolist() == [2]
    assert (
        choose_nodes(np.array([4, 4, 1]), np.zeros(3, int), cap, np.zeros(3, int), 8, 0, 3) is None
    )


def test_oversize_and_foreign_jobs_are_skipped_and_counted() -> None:
    cluster = parse_cluster_config({"gpus_per_node": 8, "vcs": {"v1": 1, "v2": 2}})
    rows = [
        {"job_id": "ok", "submit_time": 0, "run_time": 10, "gpus": 8, "vc": "v1"},
        {"job_id": "big", "submit_time": 0, "run_time": 10, "gpus": 16, "vc": "v1"},
        {"job_id": "fits2", "submit_time": 0, "run_time": 10, "gpus": 16, "vc": "v2"},
        {"job_id": "other", "submit_time": 0, "run_time": 10, "gpus": 1, "vc": "v9"},
        {"job_id": "norun", "submit_time": 0, "gpus": 1, "vc": "v1"},
    ]
    workload = build_workload(_jobs(rows), cluster)
    assert workload.dropped == {"no_runtime": 1, "other_vc": 1, "oversize": 1}
    assert workload.oversize_ids == ["big"]
    result = simulate(workload, cluster, get_policy("fifo"))
    assert np.isfinite(result.end).all()
    stats = summary(result)
    assert set(stats["by_vc"]) == {"v1", "v2"} and stats["by_vc"]["v2"]["jobs"] == 1
    entry = json_entry(stats)
    keys = {"jobs", "avg_jct", "p99_jct", "avg_queue", "p99_queue", "avg_bsld", "utilization"}
    assert set(entry) == keys | {"by_vc"}


def test_ageing_lets_a_long_job_through_a_stream_of_short_ones() -> None:
    # one CPU kept busy by 10-s jobs arriving every 10 s for ~5.5 hours; one 1000-s job
    rows = [{"job_id": "long", "submit_time": 0.5, "run_time": 1000, "cpus": 1}]
    rows += [
        {"job_id": f"s{i}", "submit_time": 10.0 * i, "run_time": 10, "cpus": 1} for i in range(2001)
    ]
    pred = [r["run_time"] for r in rows]
    start, _, _ = _run(rows, _cpu_cluster(1, 1), "qssf", predictions=pred, max_wait=np.inf)
    assert start["long"] >= 19_990  # pure shortest-first starves it until the stream ends
    start, _, _ = _run(rows, _cpu_cluster(1, 1), "qssf", predictions=pred, max_wait=3000.0)
    # promoted at 3000.5 s waited, it starts when the running 10-s job ends
    assert 3_000.5 <= start["long"] <= 3_020


def test_gpu_jobs_on_gpu_nodes_best_fit_by_vc() -> None:
    cluster = parse_cluster_config({"gpus_per_node": 8, "vcs": {"v": 2}})
    rows = [
        {"job_id": "a", "submit_time": 0, "run_time": 100, "gpus": 4, "vc": "v"},
        {"job_id": "b", "submit_time": 1, "run_time": 100, "gpus": 4, "vc": "v"},
        {"job_id": "c", "submit_time": 2, "run_time": 10, "gpus": 16, "vc": "v"},
    ]
    start, _, result = _run(rows, cluster, "fifo")
    # best-fit packs b beside a on node 0, so c's two whole nodes free up at 100
    assert start == {"a": 0, "b": 1, "c": 101}
    assert summary(result)["gpu_util"] == pytest.approx((400 + 400 + 160) / (16 * 111))
