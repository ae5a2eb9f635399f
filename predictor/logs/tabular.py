"""Shared machinery for delimited logs with a header (Philly/Helios CSV, sacct parsable2).

:func:`iter_records` checks the header for the needed columns and yields
batches of string records with their line numbers; :class:`Batch` turns
columns into numbers/epoch seconds, noting the first bad field of each row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.logs.errors import ErrorSink, LogFormatError
from predictor.logs.textio import iter_csv_batches, iter_line_batches, open_text

MISSING_MARKERS = frozenset({"", "unknown", "none", "nan", "null", "n/a", "na"})


@dataclass
class Batch:
    """One batch of records: raw string columns, line numbers and per-row rejection reasons."""

    frame: pd.DataFrame
    lines: np.ndarray
    padded: bool = True  # False when no field can have surrounding blanks (skip stripping)
    reasons: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.reasons = np.full(len(self.frame), "", dtype=object)

    def reject(self, mask: np.ndarray, reason: Sequence[str] | str) -> None:
        """Give rows in ``mask`` that are still fine the ``reason`` (str or one per masked row)."""
        mask = np.asarray(mask, dtype=bool)
        todo = mask & (self.reasons == "")
        if isinstance(reason, str):
            self.reasons[todo] = reason
        else:
            self.reasons[todo] = np.asarray(reason, dtype=object)[todo[mask]]

    def text(self, column: str) -> pd.Series:
        """A column stripped of surrounding blanks ("" when the file lacks it)."""
        if column not in self.frame:
            return pd.Series("", index=self.frame.index, dtype=object)
        col = self.frame[column].astype(object)
        return col.str.strip() if self.padded else col

    def _missing(self, raw: pd.Series, where: np.ndarray) -> np.ndarray:
        """Which of the ``where`` rows hold a missing marker (blank, ``Unknown``, ``None``...)."""
        out = np.zeros(len(raw), dtype=bool)
        if where.any():
            out[where] = raw[where].str.lower().isin(MISSING_MARKERS).to_numpy()
        return out

    def number(self, column: str) -> np.ndarray:
        """A column as float: blank/``Unknown``/``None`` -> NaN; other non-numbers reject."""
        if column not in self.frame:
            return np.full(len(self.frame), np.nan)
        raw = self.text(column)
        values = _to_float(raw)
        nan = np.isnan(values)
        bad = nan & ~self._missing(raw, nan)
        if bad.any():
            self.reject(bad, [f"{column} is not a number: {v!r}" for v in raw[bad]])
        return values

    def seconds(self, column: str) -> np.ndarray:
        """A time column as epoch seconds: numbers pass through, ISO dates become epoch.

        Naive date strings are taken as UTC; ``Unknown``/``None``/blank are NaN.
        """
        if column not in self.frame:
            return np.full(len(self.frame), np.nan)
        raw = self.text(column)
        sample = next((v for v in raw if v), "")
        numbers_first = not np.isnan(_to_float(pd.Series([sample], dtype=object))[0])
        values = _to_float(raw) if numbers_first else _to_epoch(raw)
        todo = np.isnan(values) & ~self._missing(raw, np.isnan(values))
        if todo.any():
            values[todo] = _to_epoch(raw[todo]) if numbers_first else _to_float(raw[todo])
            bad = np.isnan(values) & todo
            if bad.any():
                self.reject(bad, [f"{column} is not a time: {v!r}" for v in raw[bad]])
        return values


def _to_float(raw: pd.Series) -> np.ndarray:
    """Strings to float (a writable array); what is not a number becomes NaN."""
    try:  # numpy calls float() per element in C: fast when every value is clean
        return np.array(raw.to_numpy(dtype=object), dtype=np.float64)
    except (ValueError, TypeError):
        return pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, copy=True)


def _to_epoch(raw: pd.Series) -> np.ndarray:
    """ISO date strings to epoch seconds (naive = UTC); what is not a date becomes NaN."""
    parsed = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
    # numpy in the parsed unit: dates outside pandas' nanosecond range (year 1, 9999) stay exact
    stamps = parsed.dt.tz_localize(None).to_numpy()
    return (stamps - np.datetime64(0, "s")) / np.timedelta64(1, "s")


def normalize_header(names: Iterable[str]) -> list[str]:
    """Header names stripped, lower-cased, BOM removed."""
    return [n.strip().lstrip("\ufeff").strip().lower() for n in names]


def _header(
    path: str | Path,
    row: list[str],
    needed: Sequence[str | tuple[str, ...]],
    aliases: dict[str, str] | None,
) -> list[str]:
    """The normalised header, checked for repeats and for the ``needed`` columns."""
    header = [(aliases or {}).get(n, n) for n in normalize_header(row)]
    if len(set(header)) != len(header):
        dups = sorted({n for n in header if header.count(n) > 1})
        raise LogFormatError(f"{path}: repeated column(s) {', '.join(dups)}")
    missing = [
        " or ".join(alts)
        for alts in ((c,) if isinstance(c, str) else c for c in needed)
        if not any(a in header for a in alts)
    ]
    if missing:
        raise LogFormatError(
            f"{path}: missing column(s) {', '.join(missing)} "
            f"(header has: {', '.join(header) or 'nothing'})"
        )
    return header


def _padded(text: str, delimiter: str) -> bool:
    """Whether any field in ``text`` may start or end with a blank (then fields get stripped)."""
    if text[:1] in (" ", "\t") or text.rstrip("\r\n")[-1:] in (" ", "\t"):
        return True
    ends = (delimiter, "\n", "\r")
    return any(f"{b}{e}" in text or f"{e}{b}" in text for b in (" ", "\t") for e in ends)


def _headerless(
    row: list[str],
    needed: Sequence[str | tuple[str, ...]],
    default_header: Sequence[str] | None,
) -> bool:
    """Whether ``row`` is data rather than a header, given the default column order."""
    if default_header is None or len(row) != len(default_header):
        return False
    names = set(normalize_header(row))
    return not any(n in names for c in needed for n in ((c,) if isinstance(c, str) else c))


def _parse_fast(
    lines: list[str], first: int, header: list[str], delimiter: str, quoting: int
) -> Batch | None:
    """A batch parsed by pandas' C parser, or ``None`` when only the csv module will do.

    Only for text without quote characters: then every line is one record, its
    field count is its delimiter count + 1, and line numbers are exact.
    """
    text = "".join(lines)
    if quoting != csv.QUOTE_NONE and '"' in text:
        return None
    width = len(header)
    counts = np.fromiter((line.count(delimiter) + 1 for line in lines), dtype=np.int64)
    keep = np.ones(len(lines), dtype=bool)
    for i in np.flatnonzero(counts == 1):  # blank lines are skipped, not reported
        keep[i] = bool(lines[i].strip())
    numbers = np.arange(first, first + len(lines))[keep]
    if not keep.all():
        lines = [line for line, k in zip(lines, keep, strict=True) if k]
        counts = counts[keep]
        text = "".join(lines)
    good = counts == width
    frame = pd.DataFrame("", index=pd.RangeIndex(len(lines)), columns=header, dtype=object)
    if good.any():
        if not good.all():
            text = "".join(line for line, g in zip(lines, good, strict=True) if g)
        try:
            parsed = pd.read_csv(
                io.StringIO(text),
                sep=delimiter,
                header=None,
                names=header,
                dtype=object,
                keep_default_na=False,
                quoting=csv.QUOTE_NONE,
                skip_blank_lines=False,
                engine="c",
            )
        except (ValueError, pd.errors.ParserError):
            return None
        if len(parsed) != good.sum():
            return None
        if good.all():
            frame = parsed
        else:
            frame.iloc[np.flatnonzero(good)] = parsed.to_numpy()
    batch = Batch(frame, numbers, padded=_padded(text, delimiter))
    if not good.all():
        batch.reject(~good, [f"expected {width} fields, got {c}" for c in counts[~good]])
    return batch


def _parse_slow(
    lines: list[str], first: int, header: list[str], delimiter: str, quoting: int, sink: ErrorSink
) -> Batch:
    """A batch split by the csv module (handles quoting; flags wrong field counts)."""
    numbers: list[int] = []
    rows: list[list[str]] = []
    for nums, recs in iter_csv_batches(
        io.StringIO("".join(lines)), len(lines) + 1, sink, delimiter=delimiter, quoting=quoting
    ):
        numbers += [first - 1 + n for n in nums]
        rows += recs
    width = len(header)
    ok = np.fromiter((len(r) == width for r in rows), dtype=bool, count=len(rows))
    good = [r if len(r) == width else [""] * width for r in rows]
    batch = Batch(
        pd.DataFrame(good, columns=header, dtype=object), np.asarray(numbers, dtype=np.int64)
    )
    if not ok.all():
        batch.reject(
            ~ok, [f"expected {width} fields, got {len(r)}" for r in rows if len(r) != width]
        )
    return batch


def iter_records(
    path: str | Path,
    sink: ErrorSink,
    chunk_rows: int,
    needed: Sequence[str | tuple[str, ...]],
    *,
    delimiter: str = ",",
    quoting: int = csv.QUOTE_MINIMAL,
    aliases: dict[str, str] | None = None,
    default_header: Sequence[str] | None = None,
) -> Iterator[Batch]:
    """Yield :class:`Batch` es of a delimited log whose first non-blank line is its header.

    A file whose first line names none of the ``needed`` columns but has
    exactly ``len(default_header)`` fields is read as headerless data in
    ``default_header`` order (``sacct --noheader``).

    Header names are lower-cased and renamed by ``aliases``; a header lacking
    any of ``needed`` (a name, or a tuple of alternatives) raises
    :class:`LogFormatError` naming the missing ones. Records with the wrong
    number of fields are rejected with their line. Batches without quote
    characters are parsed by pandas' C parser, others by the csv module (a
    quoted field spanning two batches is reported as broken records).
    """
    header: list[str] | None = None
    with open_text(path) as fh:
        for first, lines in iter_line_batches(fh, chunk_rows):
            if header is None:
                head = next((i for i, line in enumerate(lines) if line.strip()), None)
                if head is None:
                    continue
                row = next(csv.reader([lines[head]], delimiter=delimiter, quoting=quoting))
                if _headerless(row, needed, default_header):
                    header = normalize_header(default_header or ())
                    first, lines = first + head, lines[head:]
                else:
                    header = _header(path, row, needed, aliases)
                    first, lines = first + head + 1, lines[head + 1 :]
                if not lines:
                    continue
            batch = _parse_fast(lines, first, header, delimiter, quoting)
            if batch is None:
                batch = _parse_slow(lines, first, header, delimiter, quoting, sink)
            if len(batch.frame):
                yield batch
