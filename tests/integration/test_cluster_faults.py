"""Faults and power: a node killed mid-job, a node powered down and up through Slurm,
a node whose first boot hangs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

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


def test_a_node_whose_boot_hangs_is_powered_on_again_before_slurm_gives_up(
    cluster: DevCluster, slurm: SlurmAdapter, tmp_path: Path
) -> None:
    """ResumeProgram's ``confirm_s`` (20 s here; ResumeTimeout 60 s): a node that has not
    registered is powered on once more, so it comes back instead of being marked DOWN."""
    name = cluster.spec.cpu_nodes[-1]
    wait_until(lambda: node(slurm, name).available, 90, f"{name} idle")
    slurm.power_node(name, "down")
    wait_until(lambda: "POWERED_DOWN" in node(slurm, name).flags, 60, f"{name} POWERED_DOWN")
    wait_until(lambda: not cluster.node_running(name), 30, f"{name}'s container stopped")
    # The next boot runs a stand-in slurmd that hangs (and removes itself), as a node that
    # powers on but never comes up would; the boot after it is a normal one.
    hang = tmp_path / "slurmd"
    hang.write_text("#!/bin/sh\nrm -f /usr/local/sbin/slurmd\nexec sleep infinity\n")
    hang.chmod(0o755)
    subprocess.run(["docker", "cp", str(hang), f"{cluster.name(name)}:/usr/local/sbin/slurmd"],
                   check=True)  # fmt: skip
    slurm.power_node(name, "up")
    wait_until(lambda: node(slurm, name).available, 50, f"{name} idle before ResumeTimeout")
    log = slurm.run(["cat", "/var/log/slurm/foresight-power.log"])
    assert f"resume {name} via docker again (not registered 20 s after power-on)" in log
