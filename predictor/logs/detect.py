"""Guessing a log's format from its first lines (``--format auto``)."""

from __future__ import annotations

from pathlib import Path

from predictor.logs import helios, philly
from predictor.logs.errors import LogFormatError
from predictor.logs.sacct import SACCT_FIELDS
from predictor.logs.tabular import normalize_header
from predictor.logs.textio import head_lines

SWF_FIELDS = 18
SACCT_MARKERS = frozenset({"jobid", "jobidraw"})


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_swf_line(line: str) -> bool:
    tokens = line.split()
    return len(tokens) >= SWF_FIELDS and all(_is_number(t) for t in tokens[:SWF_FIELDS])


def detect_format(path: str | Path) -> str:
    """The format name of the log at ``path``: swf, sacct, sacct-json, philly or helios.

    JSON starts with ``{``/``[``; SWF has ``;`` comments or a line of 18+
    numbers among its first 64 lines; the others are told apart by the names
    in their header line (a headerless line of ``len(SACCT_FIELDS)`` ``|``-separated
    fields is sacct ``--noheader`` output).

    Raises :class:`LogFormatError` when the first lines match none of them.
    """
    lines = [line for line in head_lines(path, 64) if line.strip()]
    if not lines:
        raise LogFormatError(f"{path}: empty log, cannot detect its format")
    first = lines[0].lstrip("\ufeff").lstrip()
    if first.startswith(("{", "[")):
        return "sacct-json"
    if first.startswith(";"):
        return "swf"
    if any(_is_swf_line(line) for line in lines):
        return "swf"
    if "|" in first:
        fields = first.split("|")
        if set(normalize_header(fields)) & SACCT_MARKERS or len(fields) == len(SACCT_FIELDS):
            return "sacct"
    header = normalize_header(first.split(","))
    for reader in (philly, helios):  # a CSV is the first whose reader finds what it needs
        if set(reader.NEEDED) <= {reader.ALIASES.get(n, n) for n in header}:
            return reader.FORMAT
    raise LogFormatError(
        f"{path}: cannot detect the log format from its first line {first[:80]!r}; "
        "pass a format: swf, sacct, sacct-json, philly or helios"
    )
