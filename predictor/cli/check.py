"""``foresight check``: is Foresight installed as the README says, and working?"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from predictor.cli.hooks import Container, adapter_for

_MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]",
         "skip": "[dim]skip[/]"}


def check(
    slurm_container: Container = None,
    service: Annotated[str | None, typer.Option(
        "--service", help="service URL to check (default: the url in the hook's config)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the checks as JSON")] = False,
) -> None:
    """Check Slurm's configuration, the hook beside slurm.conf and the service (reads only).

    Exits 1 when a check fails (no hook, no effect of the site factor, no service).
    """
    from slurm_hooks.install_check import as_json as checks_json
    from slurm_hooks.install_check import run_checks

    checks = run_checks(adapter_for(slurm_container), service)
    if as_json:
        typer.echo(checks_json(checks))
    else:
        table = Table("check", "", "detail", title="foresight check")
        for c in checks:
            table.add_row(c.name, _MARK[c.status], c.detail)
        Console().print(table)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)
