"""Checks every parser shares: rejecting impossible rows and duplicate job ids.

A parser turns one batch of lines into a frame of canonical columns plus a
per-row ``reasons`` array ("" = row parsed). :func:`finish_chunk` adds the
format-independent checks, reports each rejected row (file:line: reason) to the
:class:`~predictor.logs.errors.ErrorSink`, and returns the surviving rows as a
canonical job table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from predictor.logs.errors import ErrorSink
from predictor.logs.schema import to_canonical

NON_NEGATIVE = (
    "submit_time",
    "start_time",
    "end_time",
    "cpus",
    "gpus",
    "nodes",
    "mem_mb",
    "time_limit",
)


class SeenJobIds:
    """Job ids already read from one log, kept as sorted 64-bit hashes (8 bytes a job).

    Two different ids collide with probability ~n²/2⁶⁵ (about 3e-6 for 10M jobs);
    a collision would wrongly reject one row as a duplicate.
    """

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)

    def mark(self, ids: pd.Series) -> np.ndarray:
        """Record ``ids``; return a mask of those seen before (earlier chunk or earlier row)."""
        hashes = pd.util.hash_array(ids.to_numpy(dtype=object))
        dup = pd.Series(hashes).duplicated().to_numpy().copy()
        if len(self._sorted):
            pos = np.searchsorted(self._sorted, hashes)
            pos[pos == len(self._sorted)] = 0
            dup |= self._sorted[pos] == hashes
        fresh = np.unique(hashes[~dup])
        # Both runs are sorted, so the stable sort (timsort) is a linear merge.
        self._sorted = np.sort(np.concatenate([self._sorted, fresh]), kind="stable")
        return dup


def check_rows(jobs: pd.DataFrame) -> np.ndarray:
    """Reasons (``""`` = fine) for rows that no log can hold, one per row of ``jobs``."""
    reasons = np.full(len(jobs), "", dtype=object)

    def flag(mask: pd.Series, reason: str) -> None:
        reasons[mask.to_numpy(dtype=bool) & (reasons == "")] = reason

    flag(jobs["job_id"] == "", "missing job id")
    for col in NON_NEGATIVE:
        values = jobs[col].to_numpy()
        mask = (values < 0) & (reasons == "")
        if mask.any():
            reasons[mask] = [f"negative {col}: {v:g}" for v in values[mask]]
    for col, what in (("run_time", "end before start"), ("wait_time", "start before submit")):
        values = jobs[col].to_numpy()
        mask = (values < 0) & (reasons == "")
        if mask.any():
            reasons[mask] = [f"{what} ({col} {v:.10g} s)" for v in values[mask]]
    return reasons


def finish_chunk(
    frame: pd.DataFrame,
    line_numbers: Sequence[int] | np.ndarray,
    reasons: np.ndarray | None,
    sink: ErrorSink,
    seen: SeenJobIds,
) -> pd.DataFrame:
    """Validate one parsed batch, report its bad rows in line order, return the good ones."""
    jobs = to_canonical(frame.reset_index(drop=True))
    lines = np.asarray(line_numbers, dtype=np.int64)
    if reasons is None:
        reasons = np.full(len(jobs), "", dtype=object)
    reasons = np.asarray(reasons, dtype=object).copy()
    ok = reasons == ""
    checked = check_rows(jobs[ok])
    reasons[ok] = checked
    ok = reasons == ""
    dup = seen.mark(jobs.loc[ok, "job_id"])
    ok_idx = np.flatnonzero(ok)
    for i in ok_idx[dup]:
        reasons[i] = f"duplicate job id {jobs.at[i, 'job_id']!r}"
    bad = np.flatnonzero(reasons != "")
    for i in bad[np.argsort(lines[bad], kind="stable")]:
        sink.add(int(lines[i]), str(reasons[i]))
    return jobs[reasons == ""].reset_index(drop=True)
