"""Replay a real job log on the dev cluster as ``sleep`` jobs, compressed in time.

Each log job becomes ``sbatch --wrap "sleep <run_time / speedup>"`` submitted
at ``(submit_time - first submit) / speedup`` seconds after the start, as the
log's (sanitised) user, in its account, with its GPUs, node count, CPUs and
time limit mapped onto the cluster (clamped to what the cluster has). Unix
users exist in every container (and in nodes started later); accounts and
associations are created in slurmdbd with ``sacctmgr``. The original job id,
user and partition go into the job's comment, so ``sacct`` keeps them.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.progress import Progress

from predictor.logs import read_log

from .config import cluster_dir
from .docker import docker

if TYPE_CHECKING:
    from .cluster import DevCluster

_NAME_RE = re.compile(r"[^a-z0-9_-]+")


class ReplayError(RuntimeError):
    """The log cannot be replayed (unreadable, empty, or the cluster refused every job)."""


@dataclass
class ReplayResult:
    """What a replay submitted."""

    submitted: int = 0
    failed: int = 0
    users_created: int = 0
    job_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def unix_name(raw: str, prefix: str) -> str:
    """A valid Unix/Slurm name for a log's user or account (``u123`` for ``123``)."""
    name = _NAME_RE.sub("_", str(raw).strip().lower()).strip("_-")
    if not name:
        return prefix
    if not name[0].isalpha():
        name = f"{prefix[0]}{name}"
    if len(name) > 30:  # keep it short but distinct
        name = f"{name[:21]}_{zlib.crc32(name.encode()):08x}"
    return name


def uid_for(name: str) -> int:
    """A stable uid for a replay user (20000-59999)."""
    return 20000 + zlib.crc32(name.encode()) % 40000


@dataclass(frozen=True)
class ReplayJob:
    """One log job mapped onto the cluster."""

    offset_s: float
    user: str
    account: str
    partition: str
    nodes: int
    cpus: int
    gpus_per_node: int
    time_limit_min: int
    sleep_s: float
    name: str
    comment: str

    def sbatch_args(self) -> list[str]:
        args = [
            "sbatch",
            "--parsable",
            "-J",
            self.name,
            "-A",
            self.account,
            "-p",
            self.partition,
            "-N",
            str(self.nodes),
            "-n",
            str(self.cpus),
            "-t",
            str(self.time_limit_min),
            "--comment",
            self.comment,
            "-o",
            "/dev/null",
            "-D",
            "/tmp",
        ]
        if self.gpus_per_node:
            args.append(f"--gres=gpu:{self.gpus_per_node}")
        return [*args, "--wrap", f"sleep {self.sleep_s:.0f}"]


def _num(v: float, default: float) -> float:
    return default if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def plan(
    jobs: pd.DataFrame, cluster: DevCluster, *, speedup: float, max_sleep: float, log_name: str
) -> list[ReplayJob]:
    """Map canonical log rows onto the cluster's partitions, nodes, CPUs and GPUs."""
    if speedup <= 0:
        raise ValueError(f"speedup must be > 0, got {speedup}")
    spec = cluster.spec
    gpu_nodes = [n for n in spec.nodes if n.gpus]
    cpus_per_node = min(n.cpus for n in spec.nodes)
    gpus_per_node = min((n.gpus for n in gpu_nodes), default=0)
    submits = jobs["submit_time"]
    first = submits.min() if submits.notna().any() else 0.0
    out = []
    for row in jobs.itertuples(index=False):
        gpus = int(_num(row.gpus, 0))
        wants_gpu = gpus > 0 and gpu_nodes
        pool = len(gpu_nodes) if wants_gpu else len(spec.nodes)
        nodes = int(min(max(_num(row.nodes, 1), 1), pool))
        per_node = 0
        if wants_gpu:
            nodes = max(nodes, min(math.ceil(gpus / gpus_per_node), pool))
            per_node = min(gpus_per_node, math.ceil(gpus / nodes))
        want_cpus = max(_num(row.cpus, 1), 1)
        nodes = max(nodes, min(math.ceil(want_cpus / cpus_per_node), pool))
        cpus = int(min(max(want_cpus, nodes), nodes * cpus_per_node))
        run = _num(row.run_time, 1.0)
        sleep = min(max(run / speedup, 1.0), max_sleep)
        limit = _num(row.time_limit, math.nan)
        limit_min = (
            math.ceil(limit / speedup / 60) if not math.isnan(limit) else math.ceil(2 * sleep / 60)
        )
        user = unix_name(row.user, "user")
        account = unix_name(row.account or row.user, "acct")
        out.append(
            ReplayJob(
                offset_s=(_num(row.submit_time, first) - first) / speedup,
                user=user,
                account=account,
                partition="gpu" if wants_gpu else "batch",
                nodes=nodes,
                cpus=cpus,
                gpus_per_node=per_node,
                time_limit_min=max(1, limit_min),
                sleep_s=sleep,
                name=(unix_name(row.job_name, "job") if row.job_name else "replay")[:40],
                comment=(
                    f"replay {log_name} job={row.job_id} user={row.user} partition={row.partition}"
                )[:200],
            )
        )
    return out


def ensure_users(cluster: DevCluster, pairs: set[tuple[str, str]]) -> int:
    """Create Unix users everywhere and their accounts/associations in slurmdbd; count new users."""
    users_file = cluster_dir() / "state" / "users"
    known = {}
    if users_file.exists():
        for line in users_file.read_text().splitlines():
            name, _, uid = line.partition(":")
            known[name] = uid
    new = sorted({u for u, _ in pairs} - set(known))
    if new:
        users_file.parent.mkdir(parents=True, exist_ok=True)  # a cache: useradd is idempotent
        with users_file.open("a") as fh:
            for name in new:
                fh.write(f"{name}:{uid_for(name)}\n")
        script = "; ".join(
            f"id -u {n} >/dev/null 2>&1 || useradd -M -N -g users -u {uid_for(n)} -s /bin/sh {n}"
            for n in new
        )
        for container, state in cluster.containers().items():
            if state == "running" and not container.endswith(("mariadb", "service")):
                docker("exec", container, "sh", "-c", script)
    adapter = cluster.adapter()
    accounts = sorted({a for _, a in pairs})
    adapter.run(["sacctmgr", "-i", "add", "account", ",".join(accounts)], check=False)
    by_account: dict[str, list[str]] = {}
    for user, account in pairs:
        by_account.setdefault(account, []).append(user)
    for account, users in sorted(by_account.items()):
        adapter.run(
            ["sacctmgr", "-i", "add", "user", ",".join(sorted(set(users))), f"Account={account}"],
            check=False,
        )
    return len(new)


def replay_log(
    cluster: DevCluster,
    path: Path | str,
    *,
    speedup: float = 60.0,
    limit: int = 100,
    skip: int = 0,
    max_sleep: float = 300.0,
    wait: bool = False,
    show_progress: bool = True,
) -> ReplayResult:
    """Submit ``limit`` jobs of the log at ``path`` (after ``skip``) in scaled real time."""
    result = read_log(path)
    jobs = result.jobs
    if jobs.empty:
        raise ReplayError(f"{path}: no jobs read ({result.n_errors} bad lines)")
    jobs = jobs.sort_values("submit_time", kind="stable").iloc[skip : skip + limit]
    planned = plan(jobs, cluster, speedup=speedup, max_sleep=max_sleep, log_name=Path(path).name)
    out = ReplayResult()
    out.users_created = ensure_users(cluster, {(j.user, j.account) for j in planned})
    ctld = cluster.name("slurmctld")
    t0 = time.monotonic()
    with Progress(disable=not show_progress, transient=True) as bar:
        task = bar.add_task(f"replaying {Path(path).name} x{speedup:g}", total=len(planned))
        for job in planned:
            delay = t0 + job.offset_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            proc = docker("exec", "--user", job.user, ctld, *job.sbatch_args(), check=False)
            if proc.returncode == 0:
                out.submitted += 1
                out.job_ids.append(proc.stdout.strip().split(";")[0])
            else:
                out.failed += 1
                if len(out.errors) < 20:
                    out.errors.append(proc.stderr.strip())
            bar.advance(task)
    if out.submitted == 0:
        raise ReplayError(f"every submission was rejected; first error: {out.errors[:1]}")
    if wait:
        _wait_finished(cluster, set(out.job_ids))
    return out


def _wait_finished(cluster: DevCluster, job_ids: set[str], poll_s: float = 5.0) -> None:
    adapter = cluster.adapter()
    while True:
        queued = set(adapter.queue()["job_id"]) & job_ids
        if not queued:
            return
        time.sleep(poll_s)
