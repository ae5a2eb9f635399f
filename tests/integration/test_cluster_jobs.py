"""Real jobs through the real cluster: sbatch in, squeue/sacct out through the adapter."""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
from cluster_helpers import wait_until
from typer.testing import CliRunner

from predictor.cli import app
from slurm_hooks.devcluster import DevCluster
from slurm_hooks.slurm_adapter import SlurmAdapter

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def finished(slurm: SlurmAdapter, since: float, ids: list[str]) -> pd.DataFrame | None:
    """The accounting rows of ``ids`` once every one of them has a final state."""
    jobs = slurm.jobs(since).set_index("job_id")
    if set(ids) <= set(jobs.index) and jobs.loc[ids, "state"].isin(FINAL).all():
        return jobs.loc[ids]
    return None


def test_sbatch_jobs_are_read_back_from_sacct(
    slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> None:
    since = time.time() - 1
    ok = sbatch("-J", "it-ok", "--comment", "hello foresight", "-t", "2", "--wrap", "sleep 2")
    bad = sbatch("-J", "it-fail", "--wrap", "exit 3")
    jobs = wait_until(lambda: finished(slurm, since, [ok, bad]), 90, "both jobs in sacct")
    good = jobs.loc[ok]
    assert good.state == "COMPLETED" and good.job_name == "it-ok"
    assert 2 <= good.run_time <= 15 and good.time_limit == 120
    assert good.comment == "hello foresight" and good.user == "root"
    assert good.submit_time <= good.start_time < good.end_time
    assert jobs.loc[bad].state == "FAILED"


def test_gpu_job_lands_on_a_gpu_node(
    cluster: DevCluster, slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> None:
    since = time.time() - 1
    gpu = sbatch("-J", "it-gpu", "--gres=gpu:1", "--wrap", "test -e /dev/nvidia0 && sleep 1")
    cpu = sbatch("-J", "it-cpu", "-C", "cpu", "--wrap", "sleep 1")
    jobs = wait_until(lambda: finished(slurm, since, [gpu, cpu]), 90, "GPU and CPU jobs")
    assert jobs.loc[gpu].state == "COMPLETED"  # the fake device exists where it ran
    assert jobs.loc[gpu].gpus == 1
    assert jobs.loc[gpu].node_list in cluster.spec.gpu_nodes
    assert jobs.loc[cpu].node_list in cluster.spec.cpu_nodes
    gpu_nodes = {n.name for n in slurm.nodes() if n.gpus > 0}
    assert gpu_nodes == set(cluster.spec.gpu_nodes)


def test_queue_sees_pending_and_running_and_update_job_sticks(
    cluster: DevCluster, slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> None:
    gpu_nodes = str(len(cluster.spec.gpu_nodes))
    running = sbatch(
        "-J", "it-run", "-p", "gpu", "-N", gpu_nodes, "--exclusive", "--wrap", "sleep 60"
    )
    waiting = sbatch("-J", "it-wait", "-p", "gpu", "--gres=gpu:1", "--wrap", "true")

    def both_queued() -> pd.DataFrame | None:
        q = slurm.queue().set_index("job_id")
        ok = {running, waiting} <= set(q.index) and q.loc[running, "state"] == "RUNNING"
        return q if ok else None

    q = wait_until(both_queued, 60, "one running and one pending job")
    assert q.loc[waiting, "state"] == "PENDING" and q.loc[waiting, "gpus"] == 1
    assert q.loc[running, "start_time"] > 0 and q.loc[running, "node_list"]
    slurm.update_job(waiting, site_factor=777, admin_comment="foresight: predicted 42 s")
    after = slurm.queue(states=["PENDING"]).set_index("job_id").loc[waiting]
    assert after.admin_comment == "foresight: predicted 42 s"
    assert after.site_factor == 777 and after.priority >= 777


def test_up_again_is_idempotent_and_fast(cluster: DevCluster) -> None:
    report = cluster.up(with_service=False)  # the Slurm side; the service image follows the source
    assert report.built == [] and report.started == [] and not report.recreated
    assert report.seconds < 60


def test_cli_exec_and_status(cluster: DevCluster) -> None:
    runner = CliRunner()
    version = cluster.spec.version
    status = runner.invoke(app, ["cluster", "status", "--slurm", version])
    assert status.exit_code == 0, status.output
    assert "foresight-slurmctld" in status.output and "n1" in status.output
    assert f"Slurm version: {version}" in status.output
    exec_ = runner.invoke(app, ["cluster", "exec", "--slurm", version, "--", "sinfo", "-h"])
    assert exec_.exit_code == 0
    bad = runner.invoke(app, ["cluster", "exec", "--slurm", version, "--", "false"])
    assert bad.exit_code == 1
