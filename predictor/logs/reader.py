"""Reading a job log of any supported format into the canonical job table.

:func:`read_log` returns the whole table with the bad lines it skipped;
:func:`iter_log` yields it in chunks of at most ``chunk_rows`` lines, so a
log of millions of rows is read in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from predictor.logs.detect import detect_format
from predictor.logs.errors import ErrorSink, LogError, LogFormatError
from predictor.logs.helios import iter_helios
from predictor.logs.philly import iter_philly
from predictor.logs.sacct import iter_sacct
from predictor.logs.sacct_json import iter_sacct_json
from predictor.logs.schema import empty_jobs
from predictor.logs.swf import iter_swf

Parser = Callable[[str | Path, ErrorSink, int], Iterator[pd.DataFrame]]
PARSERS: dict[str, Parser] = {
    "swf": iter_swf,
    "sacct": iter_sacct,
    "sacct-json": iter_sacct_json,
    "philly": iter_philly,
    "helios": iter_helios,
}
FORMATS: tuple[str, ...] = tuple(PARSERS)
DEFAULT_CHUNK_ROWS = 100_000


@dataclass
class LogReadResult:
    """A log read into the canonical table, with the lines it had to skip."""

    path: str
    format: str
    jobs: pd.DataFrame = field(repr=False)
    errors: list[LogError] = field(default_factory=list, repr=False)
    n_errors: int = 0


def resolve_format(path: str | Path, fmt: str) -> str:
    """The format name to use for ``path``: ``fmt`` checked, or detected when ``auto``."""
    name = fmt.strip().lower().replace("_", "-")
    if name == "auto":
        return detect_format(path)
    if name not in PARSERS:
        raise LogFormatError(f"unknown log format {fmt!r}; known: auto, {', '.join(FORMATS)}")
    return name


def iter_log(
    path: str | Path,
    fmt: str = "auto",
    *,
    strict: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    sink: ErrorSink | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the log at ``path`` as canonical job-table chunks (each from ≤ ``chunk_rows`` lines).

    Bad lines are skipped and recorded in ``sink`` (pass an
    :class:`~predictor.logs.errors.ErrorSink` to see them; it carries its own
    ``strict``); with ``strict`` the first bad line raises
    :class:`LogFormatError`. Memory is bounded by ``chunk_rows`` lines plus 8
    bytes per job for the duplicate-id check.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    name = resolve_format(path, fmt)
    errors = sink if sink is not None else ErrorSink(path, strict=strict)
    yield from PARSERS[name](path, errors, chunk_rows)


def read_log(
    path: str | Path,
    fmt: str = "auto",
    *,
    strict: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> LogReadResult:
    """Read the whole log at ``path`` (format ``fmt`` or detected) into a :class:`LogReadResult`."""
    name = resolve_format(path, fmt)
    sink = ErrorSink(path, strict=strict)
    chunks = [c for c in iter_log(path, name, chunk_rows=chunk_rows, sink=sink) if len(c)]
    jobs = pd.concat(chunks, ignore_index=True) if chunks else empty_jobs()
    return LogReadResult(str(path), name, jobs, sink.errors, sink.count)
