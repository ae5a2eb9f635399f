"""Placement hints, explicit profiles and the energy plan, with in-memory Slurm stand-ins.

The duration model is the real one of ``service_support``; the interference
model is the utilisation heuristic (``min(1, 100 / (u1 + u2))``), whose answers
can be worked out by hand; the node snapshot comes from :class:`FakeSlurm`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from service_support import (
    POWER_OK,
    TOKEN,
    FakeSlurm,
    FakeView,
    make_home,
    node,
    trained_home_dir,
)

from predictor.config import ConfigError, load_config
from predictor.models.interference import InterferenceModel
from predictor.service import create_app
from predictor.service.schemas import BatchResponse, ScoreResult

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEURISTIC = InterferenceModel("heuristic")


@pytest.fixture(scope="session")
def trained_home(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_home_dir(data, tmp_path_factory)


@pytest.fixture
def home(trained_home: Path, tmp_path: Path) -> Path:
    return make_home(trained_home, tmp_path / "home")


def cluster() -> FakeSlurm:
    """n1 runs a GPU-heavy job, n2 a light one, n3 is idle, n4 is drained; 'ghost' is a node
    the queue names but Slurm's node list does not have."""
    jobs = [
        {"job_id": "11", "user": "bob", "account": "ml", "job_name": "big", "node_list": "n1"},
        {"job_id": "12", "user": "cat", "account": "ml", "job_name": "small", "node_list": "n2"},
        {"job_id": "13", "user": "bob", "account": "ml", "job_name": "big", "node_list": "ghost"},
        {"job_id": "14", "user": "bob", "account": "ml", "job_name": "big", "node_list": "n4"},
    ]
    nodes = [
        node("n1"),
        node("n2"),
        node("n3", state="IDLE"),
        node("n4", flags=("DRAIN",)),
        node("c1", partitions=("cpu",), state="IDLE"),
    ]
    return FakeSlurm(jobs, nodes)


def _app(home: Path, slurm: FakeSlurm | None, **overrides: Any) -> Flask:
    config = load_config(environ={}, state_dir=home, **overrides)
    return create_app(config, watch=False, slurm=slurm, interference_model=HEURISTIC)


def _post_profiles(client: FlaskClient) -> None:
    for user, name, util in [("alice", "train", 90), ("bob", "big", 90), ("cat", "small", 5)]:
        body = {"user": user, "name": name, "profile": {"gpu_util": util}}
        resp = client.post("/v1/profiles", headers=AUTH, json=body)
        assert resp.status_code == 200, resp.json


@pytest.fixture
def slurm() -> FakeSlurm:
    return cluster()


@pytest.fixture
def app(home: Path, slurm: FakeSlurm) -> Flask:
    app = _app(home, slurm)
    _post_profiles(app.test_client())
    app.extensions["foresight"].placement.refresh()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


JOB = {"user": "alice", "account": "ml", "partition": "gpu", "name": "train",
       "time_limit": 3600, "gpus": 1}  # fmt: skip


def _hints(client: FlaskClient, **changes: Any) -> dict[str, Any]:
    resp = client.post("/v1/jobs/score", json={**JOB, **changes})
    assert resp.status_code == 200, resp.json
    hints = ScoreResult.model_validate(resp.json).hints
    assert hints is not None
    return hints.model_dump()


def test_hints_avoid_the_busy_node_and_prefer_the_quiet_ones(
    client: FlaskClient, slurm: FakeSlurm
) -> None:
    hints = _hints(client)
    assert hints["status"] == "ok" and hints["profile_source"] == "explicit"
    assert hints["avoid_nodes"] == ["n1"]  # 90% + 90% utilisation: 56% of solo speed
    assert set(hints["prefer_nodes"]) == {"n2", "n3"}  # 95% total, and idle
    assert "56%" in hints["reasons"]["n1"] and "job 11" in hints["reasons"]["n1"]
    for _ in range(5):
        _hints(client)
    assert slurm.queue_calls == 1  # Slurm is read by the snapshot, never per request


def test_unknown_and_unavailable_nodes_are_never_avoided(client: FlaskClient) -> None:
    hints = _hints(client)
    named = {*hints["avoid_nodes"], *hints["prefer_nodes"], *hints["reasons"]}
    assert "ghost" not in named and "n4" not in named and "c1" not in named


def test_hints_never_leave_a_job_too_few_nodes(client: FlaskClient) -> None:
    assert _hints(client, nodes=2)["avoid_nodes"] == ["n1"]  # n2 and n3 remain
    tight = _hints(client, nodes=3)  # n1, n2, n3 are all the partition has
    assert tight["avoid_nodes"] == []
    assert "1 node(s) to avoid not listed" in tight["message"]


def test_job_without_profile_gets_no_hint_and_says_so(client: FlaskClient) -> None:
    hints = _hints(client, user="zed", name="mystery", account="other")
    assert hints["status"] == "no_profile"
    assert hints["avoid_nodes"] == [] and hints["prefer_nodes"] == []
    assert "no profile" in hints["message"]


def test_unknown_partition_gives_unavailable(client: FlaskClient) -> None:
    resp = client.post("/v1/jobs/score", json={**JOB, "partition": "nope"})
    hints = resp.json["hints"]
    assert hints["status"] == "unavailable" and "nope" in hints["message"]
    assert hints["avoid_nodes"] == []
    assert any("nope" in w for w in resp.json["warnings"])


def test_batch_carries_hints_per_job(client: FlaskClient) -> None:
    jobs = [JOB, {**JOB, "user": "zed"}, {**JOB, "partition": "cpu"}]
    resp = client.post("/v1/jobs/score:batch", json={"jobs": jobs})
    assert resp.status_code == 200, resp.json
    results = BatchResponse.model_validate(resp.json).results
    statuses = [r.hints.status if r.hints else None for r in results]
    assert statuses == ["ok", "no_profile", "ok"]
    assert results[0].hints and results[0].hints.avoid_nodes == ["n1"]
    assert results[2].hints and results[2].hints.prefer_nodes == ["c1"]


def test_bracketed_hostlists_are_expanded_through_slurm(home: Path) -> None:
    slurm = cluster()
    slurm.jobs[0]["node_list"] = "n[1-2]"
    slurm.hostnames["n[1-2]"] = ["n1", "n2"]
    app = _app(home, slurm)
    client = app.test_client()
    _post_profiles(client)
    app.extensions["foresight"].placement.refresh()
    assert set(_hints(client)["avoid_nodes"]) == {"n1", "n2"}
    assert slurm.run_calls == 1
    app.extensions["foresight"].placement.refresh()
    assert slurm.run_calls == 1  # remembered while the job runs


def test_no_snapshot_or_failed_read_gives_unavailable(home: Path) -> None:
    slurm = cluster()
    app = _app(home, slurm)
    client = app.test_client()
    resp = client.post("/v1/jobs/score", json=JOB)
    assert resp.json["hints"]["status"] == "unavailable"
    assert "no node snapshot" in resp.json["hints"]["message"]
    slurm.fail = RuntimeError("slurmctld not responding")
    assert app.extensions["foresight"].placement.refresh() is None
    hints = client.post("/v1/jobs/score", json=JOB).json["hints"]
    assert hints["status"] == "unavailable" and "slurmctld not responding" in hints["message"]


def test_stale_snapshot_gives_unavailable(home: Path) -> None:
    app = _app(home, cluster(), snapshot_max_age_s=30)
    placement = app.extensions["foresight"].placement
    snap = placement.refresh()
    assert snap is not None
    placement.snapshot = type(snap)(time.time() - 60, snap.running, snap.partitions,
                                    snap.available)  # fmt: skip
    hints = app.test_client().post("/v1/jobs/score", json=JOB).json["hints"]
    assert hints["status"] == "unavailable" and "old" in hints["message"]


def test_hints_off_by_configuration(home: Path) -> None:
    client = _app(home, None).test_client()  # slurm_runner = "none" (the default), auto
    resp = client.post("/v1/jobs/score", json=JOB)
    assert resp.json["hints"] is None and resp.json["warnings"] == []
    client = _app(home, None, hints_enabled=True).test_client()
    resp = client.post("/v1/jobs/score", json=JOB)
    assert resp.json["hints"] is None
    assert resp.json["warnings"] == [
        "placement hints off: slurm_runner = 'none': no way to read running jobs per node"
    ]
    client = _app(home, cluster(), hints_enabled=False).test_client()
    assert client.post("/v1/jobs/score", json=JOB).json["hints"] is None


@pytest.mark.parametrize(
    ("profile", "field"),
    [({"gpu_util": 150}, "profile.gpu_util"), ({"gpu_util": 50, "gmem_mb": -1}, "profile.gmem_mb"),
     ({"gmem_mb": 10}, "profile.gpu_util"), ({"gpu_util": 50, "colour": 1}, "profile.colour")],
)  # fmt: skip
def test_profile_post_rejects_impossible_values(
    client: FlaskClient, profile: dict[str, Any], field: str
) -> None:
    resp = client.post("/v1/profiles", headers=AUTH,
                       json={"user": "u", "name": "n", "profile": profile})  # fmt: skip
    assert resp.status_code == 400
    assert [f["field"] for f in resp.json["fields"]] == [field]


def test_profile_post_needs_the_admin_token_and_names(client: FlaskClient) -> None:
    body = {"user": "u", "name": "n", "profile": {"gpu_util": 10}}
    assert client.post("/v1/profiles", json=body).status_code == 401
    resp = client.post("/v1/profiles", headers=AUTH, json={**body, "name": ""})
    assert resp.status_code == 400 and resp.json["fields"][0]["field"] == "name"


def test_posted_profile_changes_the_hint_at_once(client: FlaskClient) -> None:
    assert _hints(client)["avoid_nodes"] == ["n1"]
    body = {"user": "alice", "name": "train", "profile": {"gpu_util": 5}}
    assert client.post("/v1/profiles", headers=AUTH, json=body).status_code == 200
    assert _hints(client)["avoid_nodes"] == []  # 5% + 90%: no slowdown


def test_completion_with_gpu_usage_teaches_a_profile(app: Flask, client: FlaskClient) -> None:
    done = {"job_id": "c-1", "user": "dan", "name": "sim", "account": "ml", "time_limit": 3600,
            "gpus": 2, "submit_time": 1.7e9, "start_time": 1.7e9 + 10, "end_time": 1.7e9 + 610,
            "tres_usage_ave": "cpu=00:05:00,gres/gpuutil=170,gres/gpumem=8000M",
            "tres_usage_max": "gres/gpumem=20000M,mem=4G"}  # fmt: skip
    resp = client.post("/v1/jobs/complete", json=done)
    assert resp.status_code == 200 and resp.json["warnings"] == []
    found = app.extensions["foresight"].profiles.lookup("dan", "sim", "ml")
    assert found.source == "user_name" and found.profile is not None
    assert found.profile.gpu_util == pytest.approx(85.0)  # summed over 2 GPUs
    assert found.profile.gmem_mb == pytest.approx(10000.0)  # the peak, per GPU
    app.extensions["foresight"].placement.refresh()
    hints = _hints(client, user="dan", name="sim")
    assert hints["profile_source"] == "user_name" and hints["avoid_nodes"] == ["n1"]
    no_gpu = {**done, "job_id": "c-2", "tres_usage_ave": "cpu=00:05:00"}
    assert "no gres/gpuutil" in client.post("/v1/jobs/complete", json=no_gpu).json["warnings"][0]


def _energy_client(home: Path, view: FakeView | None) -> FlaskClient:
    config = load_config(environ={}, state_dir=home)
    return create_app(config, watch=False, cluster_view=view).test_client()


def test_energy_plan_is_read_only_json(home: Path) -> None:
    view = FakeView(POWER_OK)
    resp = _energy_client(home, view).get("/v1/energy/plan")
    assert resp.status_code == 200, resp.json
    plan = resp.json
    assert plan["status"] == "planned" and plan["busy"] == 1 and plan["capacity"] == 3
    assert set(plan["power_down"]) <= {"g2", "g3"} and "g1" not in plan["power_down"]
    assert view.powered == []  # a plan powers nothing
    short = FakeView({**POWER_OK, "ResumeTimeout": "30"})
    resp = _energy_client(home, short).get("/v1/energy/plan")
    assert resp.status_code == 200 and "ResumeTimeout=30s" in resp.json["problems"][0]


@pytest.mark.parametrize(
    ("view", "needle"),
    [(FakeView({}), "SuspendProgram"),
     (FakeView(POWER_OK, fail=RuntimeError("slurmctld down")), "slurmctld down"),
     (None, "slurm_runner = 'none'")],
)  # fmt: skip
def test_energy_plan_503_says_why(home: Path, view: FakeView | None, needle: str) -> None:
    resp = _energy_client(home, view).get("/v1/energy/plan")
    assert resp.status_code == 503 and needle in resp.json["error"]


def test_openapi_documents_hints_profiles_and_energy(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").json
    assert "post" in doc["paths"]["/v1/profiles"] and "get" in doc["paths"]["/v1/energy/plan"]
    schemas = doc["components"]["schemas"]
    assert "avoid_nodes" in schemas["PlacementHintsBody"]["properties"]
    assert "gpu_util" in schemas["JobProfile"]["properties"]
    assert doc["paths"]["/v1/profiles"]["post"]["security"] == [{"bearer": []}]


@pytest.mark.parametrize("spec", ["ssh", "docker:", "docker:-x", "LOCAL"])
def test_bad_slurm_runner_is_named(spec: str) -> None:
    with pytest.raises(ConfigError, match="slurm_runner"):
        load_config(environ={"FORESIGHT_SLURM_RUNNER": spec})


def test_runner_specs_build_adapters() -> None:
    from predictor.service.slurm_link import slurm_adapter

    assert slurm_adapter(load_config(environ={})) is None
    for spec in ("local", "docker:slurmctld"):
        adapter = slurm_adapter(load_config(environ={"FORESIGHT_SLURM_RUNNER": spec}))
        assert adapter is not None and hasattr(adapter, "queue")


def test_refresh_recomputes_recent_hints_against_the_new_snapshot(
    app: Flask, client: FlaskClient, slurm: FakeSlurm
) -> None:
    assert _hints(client)["avoid_nodes"] == ["n1"]
    slurm.jobs[0]["node_list"] = "n3"  # the heavy job moved
    placement = app.extensions["foresight"].placement
    snap = placement.refresh()
    assert snap is not None and ("alice", "train", "ml", "gpu") in snap.cache  # warmed
    assert _hints(client)["avoid_nodes"] == ["n3"]


def test_batch_hints_can_be_turned_off(home: Path) -> None:
    app = _app(home, cluster(), batch_hints=False)
    app.extensions["foresight"].placement.refresh()
    client = app.test_client()
    resp = client.post("/v1/jobs/score:batch", json={"jobs": [JOB]})
    assert resp.status_code == 200 and resp.json["results"][0]["hints"] is None
    assert resp.json["results"][0]["warnings"] == []
    assert client.post("/v1/jobs/score", json=JOB).json["hints"]["status"] == "no_profile"


def test_hint_config_keys_from_toml_and_env(tmp_path: Path) -> None:
    toml = tmp_path / "f.toml"
    toml.write_text('[service]\nslurm_runner = "docker:slurmctld"\nhints_enabled = "auto"\n'
                    "snapshot_interval_s = 30\nhint_avoid_slowdown = 0.2\n")  # fmt: skip
    cfg = load_config(toml, environ={"FORESIGHT_HINTS_ENABLED": "false"})
    assert (cfg.slurm_runner, cfg.hints_enabled, cfg.snapshot_interval_s) == (
        "docker:slurmctld", False, 30.0)  # fmt: skip
    assert cfg.hint_avoid_slowdown == 0.2 and cfg.profile_db is not None
    with pytest.raises(ConfigError, match="hint_prefer_slowdown"):
        load_config(environ={"FORESIGHT_HINT_PREFER_SLOWDOWN": "0.5"})
    with pytest.raises(ConfigError, match="hints_enabled"):
        load_config(environ={"FORESIGHT_HINTS_ENABLED": "sometimes"})


def test_background_thread_takes_snapshots(home: Path) -> None:
    slurm = cluster()
    config = load_config(environ={}, state_dir=home, snapshot_interval_s=1)
    app = create_app(config, watch=True, slurm=slurm, interference_model=HEURISTIC)
    service = app.extensions["foresight"]
    try:
        deadline = time.time() + 10
        while slurm.queue_calls < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert slurm.queue_calls >= 2  # at once, then again after the interval
        assert service.placement.snapshot is not None
        hints = app.test_client().post("/v1/jobs/score", json=JOB).json["hints"]
        assert hints["status"] == "no_profile"  # no profiles posted in this app
    finally:
        service.placement.stop()
        service.watcher.stop()
