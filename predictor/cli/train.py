"""``foresight train``: fit a run-time model on a job log and activate it as a new version."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from predictor.cli.output import fail, report_skipped
from predictor.history import HistoryStore
from predictor.logs import LogFormatError, read_log
from predictor.models.duration import MODEL_KINDS, DurationConfig, train_duration
from predictor.registry import ModelRegistry
from predictor.state import state_dir


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def train(
    log: Annotated[Path, typer.Option("--log", exists=True, dir_okay=False, help="Job log.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, swf, sacct, sacct-json, "
                                     "philly or helios.")] = "auto",
    model: Annotated[str, typer.Option("--model", help="xgboost or rf.")] = "xgboost",
    strict: Annotated[bool, typer.Option("--strict", help="Fail on the first bad line.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train a run-time model on LOG, store it as a new version and activate it."""
    console = Console(stderr=True, quiet=as_json)
    if model not in MODEL_KINDS:
        raise typer.BadParameter(f"unknown model {model!r}; known: {', '.join(MODEL_KINDS)}")
    steps: list[str] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("reading log")
        try:
            result = read_log(log, fmt, strict=strict)
        except LogFormatError as exc:
            fail(exc)
        report_skipped(result)

        def step(name: str) -> None:
            steps.append(name)
            bar.update(task, description=name)

        step(f"read {len(result.jobs)} jobs ({result.n_errors} skipped lines)")
        try:
            trained = train_duration(result.jobs, DurationConfig(kind=model), progress=step)
        except ValueError as exc:
            fail(exc)
        step("updating history")
        store = HistoryStore.open(state_dir())
        n_new = store.add_completed(result.jobs)
        store.close()
        step("saving model")
        registry = ModelRegistry()
        version = registry.save(
            trained.model,
            data_digest=file_digest(log),
            metrics={"holdout": trained.holdout},
            training_log=steps,
            extra={"log": str(log), "log_format": result.format, "n_jobs": trained.n_jobs,
                   "skipped_lines": result.n_errors},
        )
    summary = {
        "version": version,
        "active": True,
        "log": str(log),
        "format": result.format,
        "model": model,
        "n_jobs": trained.n_jobs,
        "skipped_lines": result.n_errors,
        "history_new_jobs": n_new,
        "holdout": trained.holdout,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = Console()
    console.print(f"trained {model} on {trained.n_jobs} jobs from {log} ({result.format}); "
                  f"skipped {result.n_errors} bad line(s)")
    for name, m in trained.holdout.items():
        console.print(f"  holdout {name:6s} accuracy {m['accuracy']:.3f}  within 2x "
                      f"{m['within_2x']:.3f}  spearman {m['spearman']:.3f}")
    console.print(f"stored and activated version [bold]{version}[/]")
