"""Opening logs (plain or compressed, sniffed by magic bytes) and reading them in batches."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import itertools
import lzma
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from predictor.logs.errors import ErrorSink

# Compressed logs are recognised by their first bytes, not by their names.
OPENERS: dict[bytes, Callable[..., IO[bytes]]] = {
    b"\x1f\x8b": gzip.open,
    b"BZh": bz2.open,
    b"\xfd7zXZ\x00": lzma.open,
}


def open_text(path: str | Path) -> IO[str]:
    """Open ``path`` for reading text: plain, gzip, bzip2 or xz (sniffed by magic bytes).

    A UTF-8 byte-order mark is dropped; undecodable bytes are replaced rather
    than fatal, so one bad byte costs one line (reported by the parser), not
    the whole log.
    """
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(8)
    opener = next((op for magic, op in OPENERS.items() if head.startswith(magic)), None)
    # The caller closes the returned wrapper, which closes ``raw``.
    raw = opener(path, "rb") if opener else path.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def head_lines(path: str | Path, n: int = 50) -> list[str]:
    """The first ``n`` lines of ``path`` (decompressed), without line endings."""
    lines: list[str] = []
    with open_text(path) as fh:
        for line in fh:
            lines.append(line.rstrip("\r\n"))
            if len(lines) >= n:
                break
    return lines


def iter_line_batches(fh: IO[str], batch_rows: int) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first_line_number, lines)`` batches of up to ``batch_rows`` lines (1-based)."""
    first = 1
    while lines := list(itertools.islice(fh, batch_rows)):
        yield first, lines
        first += len(lines)


def iter_csv_batches(
    fh: IO[str],
    batch_rows: int,
    sink: ErrorSink,
    delimiter: str = ",",
    quoting: int = csv.QUOTE_MINIMAL,
) -> Iterator[tuple[list[int], list[list[str]]]]:
    """Yield ``(line_numbers, rows)`` batches of CSV records from ``fh``, header included.

    Line numbers are the physical line on which each record starts, so a
    record with a quoted newline still points at its first line. Blank (or
    whitespace-only) lines are skipped; records the CSV module cannot split go to ``sink``.
    ``quoting=csv.QUOTE_NONE`` splits on every delimiter (sacct's output).
    """
    reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
    numbers: list[int] = []
    rows: list[list[str]] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            sink.add(start, f"unreadable CSV record: {exc}")
            start = reader.line_num + 1
            continue
        if row and (len(row) > 1 or row[0].strip()):
            numbers.append(start)
            rows.append(row)
        start = reader.line_num + 1
        if len(rows) >= batch_rows:
            yield numbers, rows
            numbers, rows = [], []
    if rows:
        yield numbers, rows
