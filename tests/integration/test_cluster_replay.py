"""Replay slices of real logs: the jobs run as their (mapped) users and land in sacct."""

from __future__ import annotations

import time
from pathlib import Path

from cluster_helpers import wait_until

from slurm_hooks.devcluster import DevCluster
from slurm_hooks.devcluster.replay import replay_log
from slurm_hooks.slurm_adapter import SlurmAdapter


def test_replay_of_an_hpc_log_slice_reaches_sacct(
    cluster: DevCluster, slurm: SlurmAdapter, data: Path
) -> None:
    log = data / "hpc_swf" / "KTH-SP2-1996-2.1-cln.swf.gz"
    since = time.time() - 1
    result = replay_log(cluster, log, speedup=20000, limit=6, max_sleep=3, show_progress=False)
    assert result.submitted == 6 and result.failed == 0, result.errors

    def all_done():
        acct = slurm.jobs(since).set_index("job_id")
        ids = result.job_ids
        if set(ids) <= set(acct.index) and acct.loc[ids, "end_time"].notna().all():
            return acct.loc[ids]
        return None

    jobs = wait_until(all_done, 120, "replayed jobs in sacct")
    assert jobs["comment"].str.startswith("replay KTH-SP2-1996-2.1-cln.swf.gz job=").all()
    assert set(jobs["user"]) <= {f"u{n}" for n in range(1000)}  # SWF user ids, mapped
    assert (jobs["account"] == "a" + jobs["user"].str[1:]).all()  # SWF group = user here
    assert (jobs["run_time"] <= 10).all()


def test_replay_of_a_gpu_log_uses_gpu_nodes(
    cluster: DevCluster, slurm: SlurmAdapter, data: Path
) -> None:
    log = data / "gpu_jobs" / "philly_jobs_pollux.csv"
    since = time.time() - 1
    result = replay_log(cluster, log, speedup=1e7, limit=3, max_sleep=2, show_progress=False)
    assert result.submitted == 3, result.errors

    def all_done():
        acct = slurm.jobs(since).set_index("job_id")
        ids = result.job_ids
        if set(ids) <= set(acct.index) and acct.loc[ids, "end_time"].notna().all():
            return acct.loc[ids]
        return None

    jobs = wait_until(all_done, 120, "replayed GPU jobs in sacct")
    assert (jobs["partition"] == "gpu").all() and (jobs["gpus"] >= 1).all()
    assert (jobs["state"] == "COMPLETED").all()
