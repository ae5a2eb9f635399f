"""``foresight priority-daemon`` and ``foresight completion-feed``: the daemons beside Slurm."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from slurm_hooks.completion_feed import CompletionFeed
from slurm_hooks.priority_daemon import PriorityDaemon
from slurm_hooks.service_client import DEFAULT_URL, ServiceClient
from slurm_hooks.slurm_adapter import SlurmAdapter, docker_runner, local_runner
from slurm_hooks.stopping import Stop

ServiceUrl = Annotated[str, typer.Option("--service", help="Foresight service base URL")]
TokenFile = Annotated[Path | None, typer.Option(help="file holding the service bearer token")]
Container = Annotated[
    str | None,
    typer.Option("--slurm-container",
                 help="run Slurm commands inside this container (the dev cluster's "
                      "'foresight-slurmctld'); default: on this host"),
]


def adapter_for(container: str | None) -> SlurmAdapter:
    """The Slurm adapter on this host, or inside ``container`` (the dev cluster)."""
    return SlurmAdapter(runner=docker_runner(container) if container else local_runner())


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def priority_daemon(
    service: ServiceUrl = DEFAULT_URL,
    token_file: TokenFile = None,
    interval: Annotated[float, typer.Option(help="seconds between cycles")] = 60.0,
    max_jobs: Annotated[int, typer.Option(help="pending jobs scored per cycle (oldest)")] = 10_000,
    max_updates: Annotated[int, typer.Option(help="site-factor updates per cycle")] = 500,
    min_change: Annotated[int, typer.Option(help="smallest site-factor change applied")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run/--apply", help="log only")] = False,
    once: Annotated[bool, typer.Option(help="run one cycle and exit")] = False,
    siblings: Annotated[
        bool,
        typer.Option(
            "--siblings/--no-siblings",
            help="score a pending job whose burst siblings (same user and shape, submitted "
            "seconds apart) ended in the last day with their run time (one sacct call a cycle)",
        ),
    ] = True,
    slurm_container: Container = None,
    verbose: bool = False,
) -> None:
    """Keep pending jobs' site factors fresh (QSSF with ageing, or the service's policy)."""
    _logging(verbose)
    daemon = PriorityDaemon(
        adapter=adapter_for(slurm_container),
        client=ServiceClient(service, token_file=token_file),
        interval_s=interval, max_jobs=max_jobs, max_updates=max_updates,
        min_change=min_change, dry_run=dry_run, siblings=siblings,
    )
    with Stop().on_signals() as stop:
        daemon.run(cycles=1 if once else None, stop=stop)


def completion_feed(
    service: ServiceUrl = DEFAULT_URL,
    token_file: TokenFile = None,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 30.0,
    once: Annotated[bool, typer.Option(help="poll once and exit")] = False,
    slurm_container: Container = None,
    verbose: bool = False,
) -> None:
    """Post finished jobs from sacct to the service's history (catches up after outages)."""
    _logging(verbose)
    client = ServiceClient(service, token_file=token_file)
    feed = CompletionFeed(adapter_for(slurm_container), client)
    with Stop().on_signals() as stop:
        feed.run(interval_s=interval, polls=1 if once else None, stop=stop)
