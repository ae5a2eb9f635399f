"""The Slurm adapter parses both JSON shapes (22.05 scalars, 24.11 objects/lists).

Fixtures in ``tests/fixtures/slurm/<version>/`` were captured from the real
daemons of the dev cluster (see docs/cluster.md, "Adapter fixtures") after the
same job mix: ``short`` (with a comment), ``gpujob`` (1 GPU), ``failing``
(exit 3), ``long`` (2 nodes, 8 CPUs), ``big`` (24 CPUs, pending then
cancelled), ``pend`` (4 GPU nodes, site factor 500 and an admin comment);
node ``n6`` was being powered down.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from predictor.logs.schema import JOB_COLUMNS
from slurm_hooks.slurm_adapter import (
    SlurmAdapter,
    SlurmCommandError,
    as_list,
    number,
    parse_nodes,
    parse_sacct,
    parse_sprio,
    parse_squeue,
    states,
)

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"
VERSIONS = ("22.05", "24.11")


def load(version: str, name: str) -> str:
    return (FIXTURES / version / f"{name}.json").read_text()


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def test_fixtures_come_from_the_version_they_claim(version: str) -> None:
    meta = json.loads(load(version, "sacct"))["meta"]
    release = (meta.get("Slurm") or meta["slurm"])["release"]  # 22.05: "Slurm", 24.11: "slurm"
    assert release.startswith(version)


def test_scalar_helpers_accept_both_shapes() -> None:
    assert number(5) == 5.0
    assert number({"set": True, "infinite": False, "number": 5}) == 5.0
    assert math.isnan(number({"set": False, "infinite": False, "number": 0}))
    assert math.isnan(number({"set": True, "infinite": True, "number": 0}))
    assert math.isnan(number(None))
    assert as_list("gpu,a100") == ["gpu", "a100"]
    assert as_list(["gpu"]) == ["gpu"]
    assert as_list("") == []
    assert states("idle+power") == ["IDLE", "POWER"]
    assert states(["IDLE", "POWERING_DOWN"]) == ["IDLE", "POWERING_DOWN"]


def test_squeue_pending_and_running(version: str) -> None:
    q = parse_squeue(load(version, "squeue")).set_index("job_id")
    assert list(q.columns[: len(JOB_COLUMNS) - 1]) == list(JOB_COLUMNS[1:])
    long, big, pend = q.loc["4"], q.loc["5"], q.loc["6"]
    assert long.state == "RUNNING" and long.node_list == "n[2-3]"
    assert (long.cpus, long.nodes, long.time_limit) == (8.0, 2.0, 600.0)
    assert long.start_time > long.submit_time - 1 and long.run_time >= 0
    assert big.state == "PENDING" and big.reason == "ReqNodeNotAvail"
    assert big.cpus == 24.0 and big.mem_mb == 2400.0 and math.isnan(big.start_time)
    assert pend.state == "PENDING" and pend.partition == "gpu"
    assert (pend.gpus, pend.nodes, pend.time_limit) == (8.0, 4.0, 900.0)
    assert pend.priority == 500.0
    assert pend.admin_comment == "foresight pred=120s"


def test_sacct_finished_jobs(version: str) -> None:
    a = parse_sacct(load(version, "sacct")).set_index("job_id")
    assert a.loc["1"].state == "COMPLETED" and a.loc["1"].comment == "user comment"
    gpu = a.loc["2"]
    assert gpu.gpus == 1.0 and gpu.partition == "gpu" and gpu.node_list == "n1"
    assert gpu.time_limit == 300.0
    assert gpu.run_time == gpu.end_time - gpu.start_time and 2 <= gpu.run_time <= 10
    assert a.loc["3"].state == "FAILED"
    # 24.11 reports the exit code; 22.05's sacct JSON says 0 here (its text output says 3:0).
    assert a.loc["3"].exit_code == (3.0 if version == "24.11" else 0.0)
    assert a.loc["4"].nodes == 2.0 and a.loc["4"].cpus == 8.0
    cancelled = a.loc["5"]
    assert cancelled.state == "CANCELLED" and cancelled.node_list == ""
    assert math.isnan(cancelled.start_time) and math.isnan(cancelled.run_time)
    pend = a.loc["6"]
    assert pend.state == "COMPLETED" and pend.gpus == 8.0
    assert pend.admin_comment == "foresight pred=120s"
    assert pend.wait_time == pend.start_time - pend.submit_time > 0
    assert (a["user"] == "root").all() and (a["cluster"] == "foresight").all()


def test_backfills_365_day_stand_in_for_no_limit_reads_as_no_limit(version: str) -> None:
    """Backfill starts a job without a limit as 525600 min; read it as no limit, as submitted."""

    def year(old: object) -> object:  # 525600 minutes in the version's own shape
        return {**old, "number": 525600} if isinstance(old, dict) else 525600

    acct = json.loads(load(version, "sacct"))
    job = next(j for j in acct["jobs"] if str(j["job_id"]) == "2")
    job["time"]["limit"] = year(job["time"]["limit"])
    assert math.isnan(parse_sacct(acct).set_index("job_id").loc["2"].time_limit)
    queue = json.loads(load(version, "squeue"))
    job = next(j for j in queue["jobs"] if str(j["job_id"]) == "4")
    job["time_limit"] = year(job["time_limit"])
    parsed = parse_squeue(queue).set_index("job_id")
    assert math.isnan(parsed.loc["4"].time_limit) and parsed.loc["6"].time_limit == 900.0


def test_nodes_state_gpus_features_partitions(version: str) -> None:
    nodes = {n.name: n for n in parse_nodes(load(version, "nodes"))}
    assert sorted(nodes) == [f"n{i}" for i in range(1, 7)]
    for name in ("n1", "n2", "n3", "n4"):
        assert nodes[name].gpus == 2
        assert nodes[name].features == ("gpu",)
        assert nodes[name].partitions == ("batch", "gpu")
    assert nodes["n5"].gpus == 0 and nodes["n5"].partitions == ("batch", "cpu")
    assert nodes["n2"].state == "ALLOCATED" and nodes["n2"].alloc_cpus == 4
    assert nodes["n5"].state == "IDLE" and nodes["n5"].available
    n6 = nodes["n6"]
    assert n6.state == "IDLE" and not n6.available
    assert {"POWERED_DOWN", "POWERING_DOWN"} & set(n6.flags)


class FakeRunner:
    """Answers Slurm commands from fixture files and records what was run."""

    def __init__(self, version: str, fail_scontrol_json: bool = False) -> None:
        self.version = version
        self.fail_scontrol_json = fail_scontrol_json
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[0] == "squeue":
            return load(self.version, "squeue")
        if argv[:3] == ["scontrol", "show", "nodes"]:
            if self.fail_scontrol_json:
                raise SlurmCommandError(argv, 1, "scontrol: unrecognized option '--json'")
            return load(self.version, "nodes")
        if argv[0] == "sinfo":
            return load(self.version, "nodes")
        if argv[0] == "sacct":
            return load(self.version, "sacct")
        if argv[:2] == ["scontrol", "update"]:
            return ""
        if argv[0] == "sprio":
            return "         5|0\n         6|500\n"
        raise AssertionError(f"unexpected command {argv}")


def test_queue_filters_client_side(version: str) -> None:
    adapter = SlurmAdapter(runner=FakeRunner(version))
    assert set(adapter.queue()["job_id"]) == {"4", "5", "6"}
    factors = adapter.queue().set_index("job_id")["site_factor"]
    assert factors["6"] == 500 and factors["5"] == 0 and math.isnan(factors["4"])  # from sprio
    assert list(adapter.queue(states=["PENDING"], partitions=["gpu"])["job_id"]) == ["6"]
    assert adapter.queue(users=["nobody"]).empty


def test_sprio_parsing_skips_noise() -> None:
    assert parse_sprio("  12|700\n13|-5\nsprio: error: x\n|\n") == {"12": 700, "13": -5}


def test_nodes_falls_back_to_sinfo_on_2205() -> None:
    runner = FakeRunner("22.05", fail_scontrol_json=True)
    adapter = SlurmAdapter(runner=runner)
    assert [n.name for n in adapter.nodes(["n1", "n6"])] == ["n1", "n6"]
    adapter.nodes()
    assert runner.calls[-1] == ["sinfo", "--json"]  # remembered, no second scontrol try


def test_jobs_window_and_state_filter(version: str) -> None:
    adapter = SlurmAdapter(runner=FakeRunner(version))
    everything = parse_sacct(load(version, "sacct"))
    first_end = everything["end_time"].min()
    last_end = everything["end_time"].max()
    window = adapter.jobs(first_end + 1, last_end)
    assert len(window) < len(everything)
    assert (window["end_time"] >= first_end + 1).all()
    failed = adapter.jobs(0, last_end, states=["FAILED"])
    assert list(failed["job_id"]) == ["3"]
    assert isinstance(failed, pd.DataFrame) and "admin_comment" in failed


def test_update_job_and_power_commands() -> None:
    runner = FakeRunner("24.11")
    adapter = SlurmAdapter(runner=runner)
    adapter.update_job(42, site_factor=1234, admin_comment="pred=60s")
    assert runner.calls[-1] == [
        "scontrol",
        "update",
        "JobId=42",
        "SiteFactor=1234",
        "AdminComment=pred=60s",
    ]
    adapter.power_node(["n1", "n2"], "down")
    assert runner.calls[-1] == ["scontrol", "update", "NodeName=n1,n2", "State=power_down"]
    adapter.power_node("n[3-4]", "down", force=True)
    assert runner.calls[-1][-1] == "State=power_down_force"
    adapter.power_node("n3", "up")
    assert runner.calls[-1][-1] == "State=power_up"
    with pytest.raises(ValueError, match="site_factor"):
        adapter.update_job(1)
    with pytest.raises(ValueError, match="'up' or 'down'"):
        adapter.power_node("n1", "sideways")  # type: ignore[arg-type]


def test_bad_output_names_the_command() -> None:
    adapter = SlurmAdapter(runner=lambda argv: "slurm_load_jobs error: Unable to contact")
    with pytest.raises(SlurmCommandError, match="squeue --all --json"):
        adapter.queue()
