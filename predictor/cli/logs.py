"""``foresight logs ...``: check that a job log reads, and see what was skipped."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from predictor.cli.output import fail
from predictor.logs import LogFormatError, read_log

logs_app = typer.Typer(help="Read and check job logs.", no_args_is_help=True)


@logs_app.command("check")
def check(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The job log to read.")],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="auto, swf, sacct, sacct-json, philly or helios."),
    ] = "auto",
    strict: Annotated[bool, typer.Option("--strict", help="Fail on the first bad line.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    show: Annotated[int, typer.Option("--show", min=0, help="How many bad lines to print.")] = 10,
) -> None:
    """Read PATH; print its format, rows, skipped-line count and the first bad lines."""
    started = time.perf_counter()
    try:
        result = read_log(path, fmt, strict=strict)
    except LogFormatError as exc:
        if as_json:
            typer.echo(json.dumps({"path": str(path), "error": str(exc)}))
            raise typer.Exit(1) from exc
        fail(exc)
    seconds = time.perf_counter() - started
    jobs = result.jobs
    summary = {
        "path": result.path,
        "format": result.format,
        "rows": len(jobs),
        "skipped": result.n_errors,
        "seconds": round(seconds, 3),
        "first_submit": _iso(jobs["submit_time"].min()),
        "last_submit": _iso(jobs["submit_time"].max()),
        "users": int(jobs["user"].nunique()),
        "with_run_time": int(jobs["run_time"].notna().sum()),
        "errors": [{"line": e.line, "reason": e.reason} for e in result.errors[:show]],
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"{result.path}: format {result.format}, {len(jobs)} rows, "
        f"{result.n_errors} skipped line(s), read in {seconds:.2f} s"
    )
    typer.echo(
        f"  submitted {summary['first_submit']} .. {summary['last_submit']}, "
        f"{summary['users']} users, {summary['with_run_time']} rows with a run time"
    )
    for error in result.errors[:show]:
        typer.echo(f"  {error}")
    if result.n_errors > show:
        typer.echo(f"  ... and {result.n_errors - min(show, len(result.errors))} more")


def _iso(seconds: float) -> str | None:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ``; relative times (< 1e8 s) as plain seconds."""
    if seconds != seconds:  # NaN
        return None
    if abs(seconds) < 1e8:
        return f"{seconds:.0f}s"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
