"""Placement hints: avoid/prefer with reasons, no profile -> no hint, never unschedulable."""

from __future__ import annotations

import pandas as pd
import pytest

from predictor.interference.hints import (
    HintConfig,
    RunningJob,
    hints_for_job,
    placement_hints,
    running_by_node,
    safe_exclusions,
)
from predictor.interference.profiles import JobProfile, ProfileStore
from predictor.models.interference import InterferenceModel

HEURISTIC = InterferenceModel("heuristic")


def prof(util: float) -> JobProfile:
    return JobProfile(gpu_util=util)


def test_no_profile_gives_no_hint_and_says_so() -> None:
    hints = placement_hints(None, {"n1": [prof(90)]}, HEURISTIC)
    assert hints.status == "no_profile"
    assert hints.avoid == [] and hints.prefer == []
    assert "no profile" in hints.message
    assert hints.to_dict()["status"] == "no_profile"


def test_avoids_heavy_co_runners_and_prefers_idle_or_light_nodes() -> None:
    nodes = {
        "heavy": [RunningJob("42", prof(90)), RunningJob("43", prof(10))],
        "light": [RunningJob("7", prof(20))],
        "idle": [],
        "mystery": [RunningJob("9", None)],
    }
    hints = placement_hints(prof(60), nodes, HEURISTIC)
    assert [h.node for h in hints.avoid] == ["heavy"]
    heavy = hints.avoid[0]
    assert heavy.speed_new == pytest.approx(100 / 150)
    assert "42" in heavy.reason and "15%" in heavy.reason
    assert {h.node for h in hints.prefer} == {"idle", "light"}
    assert [h.node for h in hints.unscored] == ["mystery"]
    assert "9" in hints.unscored[0].reason


def test_threshold_is_configurable() -> None:
    nodes = {"n1": [prof(50)]}  # 110% demand -> ~0.91 speed
    assert [h.node for h in placement_hints(prof(60), nodes, HEURISTIC).avoid] == []
    strict = HintConfig(avoid_slowdown=0.05, prefer_slowdown=0.01)
    assert [h.node for h in placement_hints(prof(60), nodes, HEURISTIC, strict).avoid] == ["n1"]
    with pytest.raises(ValueError, match="prefer_slowdown"):
        HintConfig(avoid_slowdown=0.05, prefer_slowdown=0.1)


def test_partly_unknown_node_is_scored_but_never_preferred() -> None:
    hints = placement_hints(prof(10), {"n1": [prof(10), None]}, HEURISTIC)
    assert hints.prefer == [] and hints.avoid == []
    hints = placement_hints(prof(90), {"n1": [prof(90), None]}, HEURISTIC)
    assert (
        hints.avoid[0].node == "n1" and "no profile for running job(s) #1" in hints.avoid[0].reason
    )


def test_safe_exclusions_never_leave_too_few_nodes() -> None:
    nodes = {f"n{i}": [prof(95)] for i in range(4)}
    hints = placement_hints(prof(95), nodes, HEURISTIC)
    assert len(hints.avoid) == 4
    assert len(safe_exclusions(hints, nodes, nodes_needed=1)) == 3
    assert safe_exclusions(hints, nodes, nodes_needed=4) == []
    assert safe_exclusions(hints, ["n0"], nodes_needed=1) == []


def test_hints_for_job_reads_the_store() -> None:
    store = ProfileStore()
    store.post("ann", "big", {"gpu_util": 90})
    store.post("bob", "small", {"gpu_util": 5})
    running = {"n1": [{"job_id": "1", "user": "ann", "job_name": "big"}],
               "n2": [{"job_id": "2", "user": "bob", "job_name": "small"}]}  # fmt: skip
    hints = hints_for_job(store, HEURISTIC, {"user": "ann", "job_name": "big"}, running)
    assert [h.node for h in hints.avoid] == ["n1"]
    assert [h.node for h in hints.prefer] == ["n2"]
    nobody = hints_for_job(store, HEURISTIC, {"user": "zed", "job_name": "x"}, running)
    assert nobody.status == "no_profile"


def test_running_by_node_groups_running_jobs() -> None:
    queue = pd.DataFrame({
        "job_id": ["1", "2", "3"], "user": ["ann", "bob", "cat"], "account": ["a", "b", "c"],
        "job_name": ["x", "y", "z"], "state": ["RUNNING", "RUNNING", "PENDING"],
        "node_list": ["n[1-2]", "n2", ""],
    })  # fmt: skip

    def expand(hostlist: str) -> list[str]:
        return {"n[1-2]": ["n1", "n2"], "n2": ["n2"]}[hostlist]

    nodes = running_by_node(queue, expand)
    assert {n: [j["job_id"] for j in jobs] for n, jobs in nodes.items()} == {
        "n1": ["1"],
        "n2": ["1", "2"],
    }
