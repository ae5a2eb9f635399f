"""``foresight evaluate ...``: score predictors under fixed protocols."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from predictor.cli.output import fail, report_skipped
from predictor.evaluation import METRIC_NAMES, evaluate_duration
from predictor.logs import LogFormatError, read_log

evaluate_app = typer.Typer(help="Evaluate predictors.", no_args_is_help=True)


@evaluate_app.command("duration")
def duration(
    log: Annotated[Path, typer.Option("--log", exists=True, dir_okay=False, help="Job log.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, swf, sacct, sacct-json, "
                                     "philly or helios.")] = "auto",
    strict: Annotated[bool, typer.Option("--strict", help="Fail on the first bad line.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print issue 2's JSON.")] = False,
) -> None:
    """Run-time predictors on LOG: first 70% train, last 30% test, causal history."""
    console = Console(stderr=True, quiet=as_json)
    try:
        result = read_log(log, fmt, strict=strict)
    except LogFormatError as exc:
        fail(exc)
    report_skipped(result)
    with console.status("evaluating") as status:
        try:
            report = evaluate_duration(
                result.jobs, log=str(log), progress=lambda s: status.update(s)
            )
        except ValueError as exc:
            fail(exc)
    if as_json:
        typer.echo(json.dumps(report))
        return
    table = Table(title=f"{log.name}: train {report['n_train']}, test {report['n_test']} "
                  f"({result.n_errors} skipped lines)")
    table.add_column("predictor")
    for metric in METRIC_NAMES:
        table.add_column(metric, justify="right")
    for name, metrics in report["predictors"].items():
        table.add_row(name, *(f"{metrics[m]:.3f}" for m in METRIC_NAMES))
    Console().print(table)
import predictor.cli.evaluate_interference  # noqa: E402, F401  (registers "interference")
