"""The Slurm binding of the controller's ClusterView, over a canned adapter."""

from __future__ import annotations

import numpy as np
import pandas as pd

from energy.slurm_view import SlurmClusterView, parse_reserved_nodes
from slurm_hooks.slurm_adapter import NodeInfo as SlurmNode
from slurm_hooks.slurm_adapter import parse_config

CONFIG = """Configuration data as of 2024-01-01T00:00:00
SuspendProgram          = /etc/slurm/suspend.sh
ResumeProgram           = /etc/slurm/resume.sh
ResumeTimeout           = 600 sec
SuspendExcNodes         = n[1-2]
SuspendExcParts         = debug
"""
RESERVATION = "ReservationName=maint StartTime=2024-01-01 Nodes=n5 NodeCnt=1 State=ACTIVE"
HOSTS = {"n[1-2]": "n1\nn2\n", "n5": "n5\n", "n6": "n6\n"}


def node(name: str, state: str, *flags: str, parts: tuple[str, ...] = ("batch",)) -> SlurmNode:
    return SlurmNode(name=name, state=state, flags=tuple(flags), cpus=8, alloc_cpus=0, gpus=0,
                     features=(), partitions=parts)


class CannedAdapter:
    def __init__(self) -> None:
        self.powered: list[tuple[list[str], str]] = []

    def run(self, argv: list[str], *, check: bool = True) -> str:
        if argv[:3] == ["scontrol", "show", "config"]:
            return CONFIG
        if argv[:3] == ["scontrol", "show", "reservation"]:
            return RESERVATION
        if argv[:3] == ["scontrol", "show", "hostnames"]:
            return HOSTS[argv[3]]
        raise AssertionError(argv)

    def config(self) -> dict[str, str]:
        return parse_config(self.run(["scontrol", "show", "config"]))

    def queue(self, *, states: tuple[str, ...] = ("PENDING",)) -> pd.DataFrame:
        return pd.DataFrame({"nodes": [2.0, float("nan")], "node_list": ["n6", ""]})

    def nodes(self) -> list[SlurmNode]:
        return [
            node("n1", "IDLE"), node("n3", "ALLOCATED"), node("n4", "IDLE", "POWERED_DOWN"),
            node("n5", "IDLE"), node("n6", "IDLE"), node("n7", "IDLE", "DRAIN"),
            node("n8", "IDLE", parts=("debug",)), node("n9", "IDLE", "POWERING_UP"),
            node("n10", "IDLE"),
        ]

    def power_node(self, names: list[str], action: str) -> None:
        self.powered.append((list(names), action))

    accounting = pd.DataFrame({  # epoch seconds; 9 nodes above
        "submit_time": [0.0, 600.0, 1800.0], "start_time": [0.0, 1200.0, np.nan],
        "end_time": [1800.0, np.nan, np.nan], "nodes": [2.0, 3.0, 20.0],
        "gpus": [0.0] * 3, "cpus": [8.0] * 3,
    })  # fmt: skip

    def jobs(self, since: float, until: float | None = None, *, states=None) -> pd.DataFrame:
        self.asked_jobs = (since, until)
        return self.accounting


def test_parsers() -> None:
    cfg = parse_config(CONFIG)
    assert cfg["ResumeTimeout"] == "600 sec" and cfg["SuspendExcNodes"] == "n[1-2]"
    assert parse_reserved_nodes(RESERVATION) == {"n5"}


def test_nodes_carry_power_busy_reserved_and_excluded_flags() -> None:
    adapter = CannedAdapter()
    view = SlurmClusterView(adapter, exclude={"n10"})
    by = {n.name: n for n in view.nodes()}
    assert by["n1"].excluded and by["n8"].excluded and by["n10"].excluded  # list, part, admin
    assert by["n3"].busy and by["n4"].power == "off" and by["n9"].power == "powering_up"
    assert by["n5"].reserved and by["n6"].reserved  # reservation, pending job's nodes
    assert not by["n7"].available
    assert view.pending_nodes() == 3  # 2 nodes + 1 for a job that did not say
    view.power(["n4"], "up")
    assert adapter.powered == [(["n4"], "up")]


def test_demand_history_counts_each_job_from_submit_to_end_in_steps() -> None:
    adapter = CannedAdapter()
    series = SlurmClusterView(adapter).demand_history(-1200.0, 3000.0, 600.0)
    assert adapter.asked_jobs == (-1200.0, 3000.0)
    # steps from -1200: none, none, 2, 2+3 (3 pending from 600), 5, then the pending
    # 20-node job (capped at the 9 nodes Slurm has) with the running 3 until 3000
    assert series.tolist() == [0, 0, 2, 5, 5, 9, 9]
    assert series.index[0] == pd.Timestamp(-1200, unit="s")
    adapter.accounting = adapter.accounting.iloc[:0]
    assert SlurmClusterView(adapter).demand_history(0.0, 1800.0, 600.0).tolist() == [0, 0, 0]
