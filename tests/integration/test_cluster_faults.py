"""Faults and power: a node killed mid-job, a node powered down and up through Slurm."""

from __future__ import annotations

import time
from collections.abc import Callable

from cluster_helpers import wait_until

from slurm_hooks.devcluster import DevCluster
from slurm_hooks.slurm_adapter import NodeInfo, SlurmAdapter


def node(slurm: SlurmAdapter, name: str) -> NodeInfo:
    return slurm.nodes([name])[0]


def test_killed_node_shows_down_and_its_job_is_not_lost(
    cluster: DevCluster, slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> None:
    victim = cluster.spec.cpu_nodes[0]
    since = time.time() - 1
    job = sbatch("-J", "it-victim", "-w", victim, "--wrap", "sleep 300")
    wait_until(
        lambda: (
            (q := slurm.queue().set_index("job_id")).index.isin([job]).any()
            and q.loc[job, "state"] == "RUNNING"
        ),
        60,
        f"job {job} running on {victim}",
    )
    cluster.kill_node(victim)
    try:
        down = wait_until(
            lambda: (n := node(slurm, victim)).state == "DOWN" and n, 120, f"{victim} DOWN"
        )
        assert "NOT_RESPONDING" in down.flags or down.reason

        def outcome() -> str | None:
            acct = slurm.jobs(since)
            attempts = acct[acct["job_id"] == job]
            if attempts["state"].isin(["NODE_FAIL", "FAILED"]).any():
                return "failed"
            queued = slurm.queue().set_index("job_id")
            if job in queued.index and queued.loc[job, "state"] == "PENDING":
                return "requeued"
            return None

        assert wait_until(outcome, 60, f"job {job} reported failed or requeued") in {
            "failed",
            "requeued",
        }
    finally:
        cluster.start_node(victim)
    wait_until(lambda: node(slurm, victim).available, 90, f"{victim} back to service")


def test_power_down_and_up_really_stop_and_start_the_node(
    cluster: DevCluster, slurm: SlurmAdapter
) -> None:
    name = cluster.spec.cpu_nodes[-1]
    assert node(slurm, name).available and cluster.node_running(name)
    slurm.power_node(name, "down")
    wait_until(lambda: not cluster.node_running(name), 60, f"{name}'s container stopped")
    wait_until(lambda: "POWERED_DOWN" in node(slurm, name).flags, 60, f"{name} POWERED_DOWN")
    slurm.power_node(name, "up")
    wait_until(lambda: cluster.node_running(name), 60, f"{name}'s container started")
    wait_until(lambda: node(slurm, name).available, 90, f"{name} idle again")
    log = slurm.run(["cat", "/var/log/slurm/foresight-power.log"])
    assert f"suspend {name} via docker" in log and f"resume {name} via docker" in log
