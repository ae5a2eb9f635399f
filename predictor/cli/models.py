"""``foresight models list|activate|rollback``: the run-time model registry."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from predictor.cli.output import fail
from predictor.registry import ModelLoadError, ModelRegistry

models_app = typer.Typer(help="List, activate and roll back run-time models.",
                         no_args_is_help=True)


@models_app.command("list")
def list_models() -> None:
    """List stored versions; the active one is marked."""
    registry = ModelRegistry()
    active = registry.active()
    table = Table(title=f"models in {registry.area}")
    for col in ("", "version", "kind", "jobs", "log", "holdout accuracy"):
        table.add_column(col)
    for version in registry.versions():
        try:
            meta = registry.metadata(version)
        except ModelLoadError as exc:
            table.add_row("", version, "[red]unreadable[/]", "", exc.reason, "")
            continue
        acc = meta.get("metrics", {}).get("holdout", {}).get("model", {}).get("accuracy")
        table.add_row("*" if version == active else "", version, str(meta.get("kind", "")),
                      str(meta.get("n_jobs", "")), str(meta.get("log", "")),
                      f"{acc:.3f}" if isinstance(acc, float) else "")
    Console().print(table)


@models_app.command("activate")
def activate(version: Annotated[str, typer.Argument(help="Version to activate.")]) -> None:
    """Make VERSION the active model (it must load cleanly)."""
    try:
        ModelRegistry().activate(version)
    except ModelLoadError as exc:
        fail(exc)
    typer.echo(f"active: {version}")


@models_app.command("rollback")
def rollback() -> None:
    """Re-activate the previously active model."""
    try:
        version = ModelRegistry().rollback()
    except ModelLoadError as exc:
        fail(exc)
    typer.echo(f"active: {version}")
