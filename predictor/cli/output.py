"""What a sub-command says besides its result, on stderr, also under ``--json``.

``--json`` quiets progress and tables, never errors or skipped lines: a run that
fails, or reads around bad lines, says so whatever its stdout is for.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from predictor.logs.reader import LogReadResult

SHOWN_SKIPPED = 3


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)  # a line per message, for grep


def fail(message: object, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    _stderr().print(f"[red]error:[/] {escape(str(message))}")
    raise typer.Exit(code)


def report_skipped(result: LogReadResult, shown: int = SHOWN_SKIPPED) -> None:
    """The count of bad lines skipped while reading a log, and the first few with file:line."""
    if not result.n_errors:
        return
    console = _stderr()
    console.print(f"skipped {result.n_errors} bad line(s) of {escape(result.path)} "
                  "(--strict fails on the first; `foresight logs check` lists them):")  # fmt: skip
    for error in result.errors[:shown]:
        console.print(f"  {error}", markup=False)
    if result.n_errors > shown:
        console.print(f"  ... and {result.n_errors - shown} more")
