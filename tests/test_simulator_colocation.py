"""Co-location mode and online predictions in the event loop, on hand-computed traces."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from policies import get_policy
from policies.simulator.cluster import parse_cluster_config
from policies.simulator.colocation import Colocation, job_profiles, lucid_colocation
from policies.simulator.engine import simulate
from policies.simulator.metrics import summary
from policies.simulator.online import ReplayPredictor
from policies.simulator.workload import build_workload
from predictor.logs.schema import to_canonical


def _jobs(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["job_id"] = frame["job_id"].astype(str)
    return to_canonical(frame)


def _gpu_cluster(nodes: int, gpus: int):
    return parse_cluster_config({"gpus_per_node": gpus, "vcs": {"*": nodes}})


# Profile 0 runs at 0.5 next to profile 1; profile 1 at 0.8 next to profile 0.
TRUTH = np.array([[1.0, 0.5], [0.8, 1.0]])
PAIR = [
    {"job_id": "a", "submit_time": 0, "run_time": 100, "gpus": 1},
    {"job_id": "b", "submit_time": 20, "run_time": 100, "gpus": 1},
]


def _colocated(rows, cluster, profiles, hints=False, predicted=TRUTH):
    workload = build_workload(_jobs(rows), cluster)
    colo = Colocation(TRUTH, predicted, np.array(profiles), hints=hints)
    result = simulate(workload, cluster, get_policy("fifo"), colocation=colo)
    ids = workload.jobs["job_id"].tolist()
    return dict(zip(ids, result.end.tolist(), strict=True)), result


def test_two_jobs_sharing_a_node_end_at_hand_computed_times() -> None:
    end, result = _colocated(PAIR, _gpu_cluster(1, 2), [0, 1])
    # a alone 0-20 (20 done); with b from 20: a at 0.5, b at 0.8.
    # b: 100 / 0.8 = 125 -> ends 145. a by 145: 20 + 125 * 0.5 = 82.5, 17.5 left alone -> 162.5
    assert end == {"a": pytest.approx(162.5), "b": pytest.approx(145.0)}
    assert result.held.tolist() == pytest.approx([162.5, 125.0])
    stats = summary(result)
    assert stats["avg_stretch"] == pytest.approx((1.625 + 1.25) / 2)
    assert stats["slowed_15"] == pytest.approx(1.0)


def test_jobs_on_different_nodes_or_same_profile_pairs_are_not_slowed() -> None:
    end, _ = _colocated(PAIR, _gpu_cluster(1, 2), [0, 0])  # profile 0 next to 0: speed 1
    assert end == {"a": 100, "b": 120}
    rows = [dict(r, gpus=2) for r in PAIR]  # each job fills a node: no sharing
    end, _ = _colocated(rows, _gpu_cluster(2, 2), [0, 1])
    assert end == {"a": 100, "b": 120}


def test_hints_steer_a_job_away_from_a_bad_co_runner() -> None:
    # two 2-GPU nodes; best fit packs b next to a, hints send it to the idle node
    end, _ = _colocated(PAIR, _gpu_cluster(2, 2), [0, 1], hints=False)
    assert end == {"a": pytest.approx(162.5), "b": pytest.approx(145.0)}
    end, result = _colocated(PAIR, _gpu_cluster(2, 2), [0, 1], hints=True)
    assert end == {"a": 100, "b": 120}
    assert summary(result)["avg_stretch"] == 1.0


def test_hints_never_make_a_job_wait() -> None:
    # one node: the only feasible node is avoided, so b starts there anyway
    end, _ = _colocated(PAIR, _gpu_cluster(1, 2), [0, 1], hints=True)
    assert end == {"a": pytest.approx(162.5), "b": pytest.approx(145.0)}


def test_hints_follow_the_prediction_not_the_truth() -> None:
    # the model predicts no slowdown: hints do not avoid the node, truth still slows
    end, _ = _colocated(PAIR, _gpu_cluster(2, 2), [0, 1], hints=True, predicted=np.ones((2, 2)))
    assert end == {"a": pytest.approx(162.5), "b": pytest.approx(145.0)}


def test_colocation_rejects_bad_speeds_and_profiles() -> None:
    with pytest.raises(ValueError, match="must be 2x2"):
        Colocation(np.ones((2, 3)), np.ones((2, 2)), np.zeros(1, dtype=int))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        Colocation(np.full((2, 2), 1.5), np.ones((2, 2)), np.zeros(1, dtype=int))
    with pytest.raises(ValueError, match="profile indices"):
        Colocation(TRUTH, TRUTH, np.array([2]))


def test_job_profiles_are_stable_per_user_and_name() -> None:
    jobs = _jobs([
        {"job_id": "1", "user": "u", "job_name": "train", "submit_time": 0, "run_time": 1},
        {"job_id": "2", "user": "u", "job_name": "train", "submit_time": 1, "run_time": 1},
        {"job_id": "3", "user": "u", "submit_time": 2, "run_time": 1},
    ])  # fmt: skip
    first = job_profiles(jobs, 66)
    assert first[0] == first[1]
    assert (job_profiles(jobs, 66) == first).all()


def test_lucid_colocation_uses_measured_pairs(data) -> None:
    jobs = _jobs([{"job_id": str(i), "user": "u", "submit_time": i, "run_time": 10}
                  for i in range(5)])  # fmt: skip
    colo = lucid_colocation(jobs, data / "interference")
    assert colo.truth.shape == colo.predicted.shape == (66, 66)
    assert ((colo.truth > 0) & (colo.truth <= 1)).all()
    assert (colo.truth != colo.predicted).mean() > 0.2  # measured pairs replace predictions


class _Stub:
    """An online predictor whose answers change at t=50."""

    interval = 50.0

    def __init__(self) -> None:
        self.ended_jobs: list[tuple[int, float]] = []

    def submitted(self, rows: np.ndarray, now: float) -> np.ndarray:
        return np.array([{1: 50.0, 2: 5.0}.get(int(r), 100.0) for r in rows])

    def ended(self, j: int, now: float) -> None:
        self.ended_jobs.append((j, now))

    def rescore(self, rows: np.ndarray, now: float) -> np.ndarray:
        return np.array([{1: 1.0, 2: 100.0}.get(int(r), 100.0) for r in rows])


def test_rescoring_ticks_reorder_the_pending_queue() -> None:
    rows = [
        {"job_id": "x", "submit_time": 0, "run_time": 100, "cpus": 1},
        {"job_id": "p", "submit_time": 1, "run_time": 10, "cpus": 1},
        {"job_id": "q", "submit_time": 2, "run_time": 10, "cpus": 1},
    ]
    cluster = parse_cluster_config({"cpus_per_node": 1, "vcs": {"*": 1}})
    workload = build_workload(_jobs(rows), cluster)
    stub = _Stub()
    stub.interval = math.inf
    result = simulate(workload, cluster, get_policy("qssf"), predictor=stub)
    assert result.start.tolist() == [0, 110, 100]  # q (predicted 5) before p (50)
    stub = _Stub()
    result = simulate(workload, cluster, get_policy("qssf"), predictor=stub)
    assert result.start.tolist() == [0, 100, 110]  # re-scored at t=50: p (1) before q (100)
    assert result.predicted.tolist() == [100.0, 1.0, 100.0]
    assert stub.ended_jobs == [(0, 100.0), (1, 110.0), (2, 120.0)]


def test_replay_predictor_learns_from_simulated_ends_and_prior_jobs() -> None:
    prior = _jobs([{"job_id": "0", "user": "u", "job_name": "n", "cpus": 1,
                    "submit_time": -100, "run_time": 30}])  # fmt: skip
    jobs = _jobs([
        {"job_id": "1", "user": "v", "job_name": "m", "cpus": 1, "submit_time": 0, "run_time": 50},
        {"job_id": "2", "user": "v", "job_name": "m", "cpus": 1, "submit_time": 10, "run_time": 80},
        {"job_id": "3", "user": "u", "job_name": "n", "cpus": 1, "submit_time": 20, "run_time": 5},
    ])  # fmt: skip
    pred = ReplayPredictor(jobs, prior, interval=60.0, min_train=10**6)  # anchor only
    # job 1: v/m has no history; the cluster's last ended job (the prior one) ran 30 s
    assert pred.submitted(np.array([0]), 0.0) == pytest.approx([30.0])
    assert pred.submitted(np.array([2]), 20.0) == pytest.approx([30.0])  # u/n: its last run
    assert pred.rescore(np.array([1]), 150.0) == pytest.approx([30.0])  # job 1 still runs
    pred.ended(0, 200.0)  # its simulated end (it ran 50 s but waited 150)
    assert pred.rescore(np.array([1]), 240.0) == pytest.approx([50.0])  # v/m's own run now
    frozen = ReplayPredictor(jobs, prior, interval=60.0, min_train=10**6, refeaturize=False)
    frozen.submitted(np.array([0, 1]), 10.0)
    frozen.ended(0, 200.0)
    assert frozen.rescore(np.array([1]), 240.0) == pytest.approx([30.0])  # submit-time row


def test_replay_predictor_rejects_bad_intervals() -> None:
    jobs = _jobs([{"job_id": "1", "submit_time": 0, "run_time": 1}])
    with pytest.raises(ValueError, match="re-scoring interval"):
        ReplayPredictor(jobs, interval=0)
    with pytest.raises(ValueError, match="retrain interval"):
        ReplayPredictor(jobs, retrain_interval=-1)
