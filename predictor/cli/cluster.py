"""``foresight cluster ...``: the dockerized Slurm dev cluster (see docs/cluster.md)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from predictor.cli.output import fail

cluster_app = typer.Typer(
    name="cluster",
    help="The dockerized Slurm dev cluster (MariaDB, slurmdbd, slurmctld, nodes, service).",
    no_args_is_help=True,
)
console = Console(stderr=True)

SlurmOpt = Annotated[
    str,
    typer.Option(
        "--slurm",
        help="Slurm version: 22.05 (bookworm) or 24.11 (trixie).",
        envvar="FORESIGHT_SLURM",
    ),
]


def _cluster(version: str):  # -> DevCluster (imported lazily: keeps `foresight --help` fast)
    from slurm_hooks.devcluster import ClusterSpec, DevCluster

    try:
        return DevCluster(
            ClusterSpec(version=version), progress=lambda msg: console.print(f"[dim]{msg}[/dim]")
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--slurm") from exc


@cluster_app.command("up")
def up(
    slurm: SlurmOpt = "22.05",
    service: Annotated[
        bool | None,
        typer.Option(
            "--service/--no-service",
            help="Run the Foresight service container (default: when it exists).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 600,
) -> None:
    """Build what is missing, start every container, wait until nodes are idle and sacct answers."""
    from slurm_hooks.devcluster import DockerError

    cluster = _cluster(slurm)
    try:
        report = cluster.up(with_service=service, timeout=timeout)
    except (DockerError, TimeoutError) as exc:
        fail(exc)
    built = ", ".join(report.built) or "nothing (cached)"
    console.print(
        f"Slurm {report.version} up in {report.seconds:.1f}s; built: {built}; "
        f"started: {', '.join(report.started) or 'nothing (already running)'}"
    )
    if report.service:
        console.print(f"Foresight service: {cluster.service_url('/')}")
    else:
        console.print(
            "[yellow]Foresight service not running[/yellow] (not built yet, "
            "--no-service, or unhealthy: see `foresight cluster logs service`)."
        )
    typer.echo(cluster.submit_hint())


@cluster_app.command("down")
def down(slurm: SlurmOpt = "22.05") -> None:
    """Remove every container of the cluster (nothing is left running)."""
    from slurm_hooks.devcluster import DockerError

    try:
        removed = _cluster(slurm).down()
    except DockerError as exc:
        fail(exc)
    console.print(
        f"removed {len(removed)} containers" + (f": {', '.join(removed)}" if removed else "")
    )


@cluster_app.command("status")
def status(slurm: SlurmOpt = "22.05") -> None:
    """Containers and what Slurm says about every node."""
    from slurm_hooks.devcluster import DockerError
    from slurm_hooks.slurm_adapter import SlurmCommandError

    cluster = _cluster(slurm)
    try:
        containers = cluster.containers()
    except DockerError as exc:
        fail(exc)
    if not containers:
        typer.echo("cluster is down (no containers)")
        raise typer.Exit(3)
    table = Table("container", "state")
    for name, state in sorted(containers.items()):
        table.add_row(name, state)
    Console().print(table)
    typer.echo(f"Slurm version: {cluster.running_version()}")
    try:
        nodes = cluster.adapter().nodes()
    except (SlurmCommandError, DockerError) as exc:
        typer.echo(f"slurmctld not answering: {exc}")
        raise typer.Exit(1) from None
    ntable = Table("node", "state", "cpus", "gpus", "features", "partitions")
    for n in nodes:
        ntable.add_row(
            n.name,
            n.state_text,
            f"{n.alloc_cpus}/{n.cpus}",
            str(n.gpus),
            ",".join(n.features),
            ",".join(n.partitions),
        )
    Console().print(ntable)


@cluster_app.command("logs")
def logs(
    role: Annotated[str, typer.Argument(help="slurmctld, slurmdbd, mariadb, n1.., service")] = (
        "slurmctld"
    ),
    tail: Annotated[int, typer.Option(help="Lines from the end.")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    slurm: SlurmOpt = "22.05",
) -> None:
    """Print one container's log."""
    raise typer.Exit(_cluster(slurm).logs(role, tail=tail, follow=follow))


@cluster_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def exec_(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Run as this user.")] = None,
    slurm: SlurmOpt = "22.05",
) -> None:
    """Run a command on the login node: ``foresight cluster exec -- sbatch --wrap "sleep 1"``."""
    if not ctx.args:
        raise typer.BadParameter("give a command after --, e.g. -- squeue")
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    raise typer.Exit(_cluster(slurm).exec(ctx.args, user=user, interactive=True, tty=tty))


@cluster_app.command("stop-service")
def stop_service(slurm: SlurmOpt = "22.05") -> None:
    """Stop only the Foresight service container (outage tests)."""
    from slurm_hooks.devcluster import DockerError

    try:
        _cluster(slurm).stop_service()
    except DockerError as exc:
        fail(exc)


@cluster_app.command("start-service")
def start_service(slurm: SlurmOpt = "22.05") -> None:
    """Start the Foresight service container again."""
    from slurm_hooks.devcluster import DockerError

    try:
        _cluster(slurm).start_service()
    except DockerError as exc:
        fail(exc)


@cluster_app.command("replay")
def replay(
    log: Annotated[
        Path,
        typer.Option(
            "--log",
            exists=True,
            dir_okay=False,
            help="A job log (any format predictor.logs reads).",
        ),
    ],
    speedup: Annotated[
        float, typer.Option(help="Time compression: 60 = one hour per minute.")
    ] = 60.0,
    limit: Annotated[int, typer.Option(help="Replay at most this many jobs.")] = 100,
    skip: Annotated[int, typer.Option(help="Start after this many jobs of the log.")] = 0,
    max_sleep: Annotated[
        float, typer.Option(help="Cap on each job's scaled run time (s).")
    ] = 300.0,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until every replayed job has finished.")
    ] = False,
    slurm: SlurmOpt = "22.05",
) -> None:
    """Submit a real log's jobs as ``sleep`` jobs, scaled in time, to the running cluster."""
    from slurm_hooks.devcluster import DockerError
    from slurm_hooks.devcluster.replay import ReplayError, replay_log

    cluster = _cluster(slurm)
    if cluster.containers().get(cluster.name("slurmctld")) != "running":
        fail("the cluster is not up: run `foresight cluster up` first")
    t0 = time.monotonic()
    try:
        result = replay_log(
            cluster, log, speedup=speedup, limit=limit, skip=skip, max_sleep=max_sleep, wait=wait
        )
    except (ReplayError, DockerError, ValueError) as exc:
        fail(exc)
    typer.echo(
        f"submitted {result.submitted} jobs ({result.failed} rejected) from {log} "
        f"in {time.monotonic() - t0:.1f}s; users created: {result.users_created}"
    )
    if os.environ.get("FORESIGHT_REPLAY_SHOW_IDS"):
        typer.echo(" ".join(result.job_ids))
