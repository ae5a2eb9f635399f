"""Shared machinery for delimited logs with a header (Philly/Helios CSV, sacct parsable2).

:func:`iter_records` checks the header for the needed columns and yields
batches of string records with their line numbers; :class:`Batch` turns
columns into numbers/epoch seconds, noting the first bad field of each row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.logs.errors import ErrorSink, LogFormatError
from predictor.logs.textio import iter_csv_batches, open_text

MISSING_MARKERS = frozenset({"", "unknown", "none", "nan", "null", "n/a", "na"})
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass
class Batch:
    """One batch of records: raw string columns, line numbers and per-row rejection reasons."""

    frame: pd.DataFrame
    lines: np.ndarray
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
        return self.frame[column].astype(object).str.strip()

    def number(self, column: str) -> np.ndarray:
        """A column as float: blank/``Unknown``/``None`` -> NaN; other non-numbers reject."""
        raw = self.text(column)
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, copy=True)
        bad = np.isnan(values) & ~raw.str.lower().isin(MISSING_MARKERS).to_numpy()
        if bad.any():
            self.reject(bad, [f"{column} is not a number: {v!r}" for v in raw[bad]])
        return values

    def seconds(self, column: str) -> np.ndarray:
        """A time column as epoch seconds: numbers pass through, ISO dates become epoch.

        Naive date strings are taken as UTC; ``Unknown``/``None``/blank are NaN.
        """
        raw = self.text(column)
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, copy=True)
        missing = raw.str.lower().isin(MISSING_MARKERS).to_numpy()
        todo = np.isnan(values) & ~missing
        if todo.any():
            parsed = pd.to_datetime(raw[todo], format="ISO8601", utc=True, errors="coerce")
            values[todo] = ((parsed - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            bad = np.isnan(values) & ~missing
            if bad.any():
                self.reject(bad, [f"{column} is not a time: {v!r}" for v in raw[bad]])
        return values


def normalize_header(names: Iterable[str]) -> list[str]:
    """Header names stripped, lower-cased, BOM removed."""
    return [n.strip().lstrip("\ufeff").strip().lower() for n in names]


def iter_records(
    path: str | Path,
    sink: ErrorSink,
    chunk_rows: int,
    needed: Sequence[str | tuple[str, ...]],
    *,
    delimiter: str = ",",
    quoting: int = csv.QUOTE_MINIMAL,
    aliases: dict[str, str] | None = None,
) -> Iterator[Batch]:
    """Yield :class:`Batch` es of a delimited log whose first record is its header.

    Header names are lower-cased and renamed by ``aliases``; a header lacking
    any of ``needed`` (a name, or a tuple of alternatives) raises
    :class:`LogFormatError` naming the missing ones.
    Records with the wrong number of fields are rejected with their line.
    """
    header: list[str] | None = None
    with open_text(path) as fh:
        for numbers, rows in iter_csv_batches(
            fh, chunk_rows, sink, delimiter=delimiter, quoting=quoting
        ):
            if header is None:
                header = [(aliases or {}).get(n, n) for n in normalize_header(rows[0])]
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
                numbers, rows = numbers[1:], rows[1:]
            if not rows:
                continue
            width = len(header)
            ok = np.fromiter((len(r) == width for r in rows), dtype=bool, count=len(rows))
            good = [r if len(r) == width else [""] * width for r in rows]
            batch = Batch(
                pd.DataFrame(good, columns=header, dtype=object),
                np.asarray(numbers, dtype=np.int64),
            )
            if not ok.all():
                batch.reject(
                    ~ok,
                    [
                        f"expected {width} fields, got {len(r)}"
                        for r, g in zip(rows, ok, strict=True)
                        if not g
                    ],
                )
            yield batch
