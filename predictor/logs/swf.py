"""Standard Workload Format (Parallel Workloads Archive), including MetaCentrum's extended variant.

A data line has 18 whitespace-separated numbers (``-1`` = missing); lines
starting with ``;`` are header comments. ``; UnixStartTime: N`` makes the
submit times absolute (``N + submit``); without it they stay as the log wrote
them (relative seconds, or already epoch as in the MetaCentrum log).

Mapping onto the canonical table:

* job number -> ``job_id``; user id -> ``user``; group id -> ``account``;
  executable id -> ``job_name`` ("" when -1).
* queue number -> ``partition`` (falling back to the SWF partition number
  when the queue is -1, as in LCG); SWF partition number -> ``vc`` (falling
  back to the queue).
* ``cpus`` = requested processors if > 0, else allocated processors.
* ``time_limit`` = requested time; ``start`` = submit + wait; ``end`` =
  start + run time; missing wait leaves start/end NaN but keeps ``run_time``.
* Requested memory is KB *per processor* in SWF, so ``mem_mb`` =
  KB x ``cpus`` / 1024 (the job's total).
* status 1 COMPLETED, 0 FAILED, 5 CANCELLED, anything else UNKNOWN.

MetaCentrum's extended lines (the Alea simulator's data sets) append
``{node list}``, the queue name and the ppn properties (``N:ppn=P:...``) to
the 18 fields. There ``nodes`` is the number of distinct nodes in the list
(equal to the ``N`` of the ppn spec on every line of the 2013 log), the queue
name becomes ``partition``, and the requested memory is in BYTES *per node*
(as Alea's own loader reads it), so ``mem_mb`` = bytes / 2**20 x ``nodes``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.logs.errors import ErrorSink
from predictor.logs.textio import iter_line_batches, open_text
from predictor.logs.validate import SeenJobIds, finish_chunk

FORMAT = "swf"
SWF_FIELDS: tuple[str, ...] = (
    "job_number",
    "submit_time",
    "wait_time",
    "run_time",
    "allocated_processors",
    "average_cpu_time",
    "used_memory_kb",
    "requested_processors",
    "requested_time",
    "requested_memory_kb",
    "status",
    "user_id",
    "group_id",
    "executable_id",
    "queue_number",
    "partition_number",
    "preceding_job",
    "think_time",
)
N_FIELDS = len(SWF_FIELDS)
EXTENDED_FIELDS = 3  # MetaCentrum: {node list}, queue name, ppn properties
_COL = {name: i for i, name in enumerate(SWF_FIELDS)}
STATUS_STATES = {1: "COMPLETED", 0: "FAILED", 5: "CANCELLED"}
UNIX_START = re.compile(r"^;\s*UnixStartTime:\s*(-?\d+(?:\.\d*)?)", re.IGNORECASE)


def _ids(values: np.ndarray) -> np.ndarray:
    """Id numbers as strings (``"17"``), "" where the value is the SWF missing marker -1."""
    uniques, inverse = np.unique(values, return_inverse=True)
    if np.all(np.abs(uniques) < 2**53) and np.all(uniques == np.round(uniques)):
        names = uniques.astype(np.int64).astype(str).astype(object)
    else:
        names = np.array([f"{x:.15g}" for x in uniques], dtype=object)
    names[uniques == -1] = ""
    return names[inverse.ravel()]


def _missing(values: np.ndarray) -> np.ndarray:
    """Numbers with the SWF missing marker -1 replaced by NaN (other negatives kept)."""
    return np.where(values == -1, np.nan, values)


def _frame(
    values: np.ndarray, offsets: np.ndarray | float, extras: list[list[str]]
) -> pd.DataFrame:
    """Canonical columns for parsed rows (``values``: n x 18 numbers).

    ``extras`` holds each row's extended (MetaCentrum) tokens, or is empty when
    no row has any.
    """

    def col(name: str) -> np.ndarray:
        return values[:, _COL[name]]

    n = len(values)
    if any(extras):
        extended = np.fromiter((bool(e) for e in extras), dtype=bool, count=n)
    else:
        extended = np.zeros(n, dtype=bool)
    requested = col("requested_processors")
    allocated = col("allocated_processors")
    cpus = np.where(requested > 0, requested, np.where(allocated > 0, allocated, np.nan))
    submit = _missing(col("submit_time")) + offsets
    wait = _missing(col("wait_time"))
    run = _missing(col("run_time"))
    start = submit + wait
    mem = _missing(col("requested_memory_kb"))
    mem_mb = mem * cpus / 1024
    queue = _ids(col("queue_number"))
    swf_partition = _ids(col("partition_number"))
    nodes = np.full(n, np.nan)
    if extended.any():
        queue_name = np.array([e[1] if len(e) > 1 else "" for e in extras], dtype=object)
        queue = np.where(queue_name != "", queue_name, queue)
        nodes = np.array(
            [len(set(e[0].strip("{}").split(","))) if e else np.nan for e in extras], dtype=float
        )
        # Extended logs give bytes per node (as Alea's loader reads them): x nodes = total.
        mem_mb = np.where(extended, mem / 2**20 * nodes, mem_mb)
    status = col("status")
    state = np.full(len(values), "UNKNOWN", dtype=object)
    for code, name in STATUS_STATES.items():
        state[status == code] = name
    return pd.DataFrame(
        {
            "job_id": _ids(col("job_number")),
            "user": _ids(col("user_id")),
            "account": _ids(col("group_id")),
            "partition": np.where(queue != "", queue, swf_partition),
            "job_name": _ids(col("executable_id")),
            "vc": np.where(swf_partition != "", swf_partition, queue),
            "cpus": cpus,
            "gpus": 0.0,
            "nodes": nodes,
            "mem_mb": mem_mb,
            "time_limit": _missing(col("requested_time")),
            "submit_time": submit,
            "start_time": start,
            "end_time": start + run,
            "run_time": run,
            "wait_time": wait,
            "state": state,
        }
    )


def _split(line: str) -> tuple[list[str], list[str]] | str:
    """The 18 standard tokens and the extended extras of one data line, or why it is bad."""
    tokens = line.split()
    if len(tokens) == N_FIELDS:
        return tokens, []
    if len(tokens) > N_FIELDS and tokens[N_FIELDS].startswith("{"):
        return tokens[:N_FIELDS], tokens[N_FIELDS:]
    return f"expected {N_FIELDS} whitespace-separated fields, got {len(tokens)}"


def _parse_fast(text: str, n_lines: int) -> tuple[np.ndarray, list[list[str]]] | None:
    """Parse ``n_lines`` clean data lines with pandas' C parser; ``None`` if any is not clean."""
    names = list(range(N_FIELDS + EXTENDED_FIELDS))
    dtypes = {i: (np.float64 if i < N_FIELDS else object) for i in names}
    try:
        table = pd.read_csv(
            io.StringIO(text),
            sep=r"\s+",
            header=None,
            names=names,
            dtype=dtypes,
            quoting=csv.QUOTE_NONE,
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if len(table) != n_lines:
        return None
    values = table.iloc[:, :N_FIELDS].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        return None
    extra = table.iloc[:, N_FIELDS:].fillna("").astype(str).to_numpy()
    if not (extra[:, 0] == "").all():
        if not pd.Series(extra[:, 0]).str.startswith("{").all():
            return None
        return values, [[x for x in row if x] for row in extra.tolist()]
    return values, []


def _parse_slow(lines: list[str]) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    """Parse data lines one by one, giving each bad line its reason (numbers NaN there)."""
    values = np.full((len(lines), N_FIELDS), np.nan)
    extras: list[list[str]] = []
    reasons = np.full(len(lines), "", dtype=object)
    for i, line in enumerate(lines):
        split = _split(line)
        if isinstance(split, str):
            reasons[i] = split
            extras.append([])
            continue
        tokens, extra = split
        extras.append(extra)
        for j, token in enumerate(tokens):
            try:
                values[i, j] = float(token)
            except ValueError:
                values[i, j] = np.nan
            if not np.isfinite(values[i, j]):
                reasons[i] = f"field {j + 1} ({SWF_FIELDS[j]}) is not a number: {token!r}"
                values[i] = np.nan
                break
    return values, extras, reasons


def _is_data(line: str) -> bool:
    return bool(line) and not line.isspace() and not line.lstrip().startswith(";")


def iter_swf(path: str | Path, sink: ErrorSink, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield canonical job chunks from an SWF log (plain or compressed), reporting bad lines.

    Batches of clean data lines go straight to pandas' C parser; a batch with
    comments, blank lines or any bad line is classified line by line, and the
    bad lines re-parsed one by one so each gets its own reason.
    """
    seen = SeenJobIds()
    offset = 0.0
    with open_text(path) as fh:
        for first, lines in iter_line_batches(fh, chunk_rows):
            # Header comments open the log: peel them off so the rest can take the fast path.
            head = 0
            while head < len(lines) and not _is_data(lines[head]):
                if match := UNIX_START.match(lines[head].strip()):
                    offset = float(match.group(1))
                head += 1
            first, lines = first + head, lines[head:]
            if not lines:
                continue
            numbers = np.arange(first, first + len(lines))
            offsets: np.ndarray | float = offset
            text = "".join(lines)
            fast = None if ";" in text else _parse_fast(text, len(lines))
            if fast is not None:
                data_numbers, data_lines = numbers, lines
                values, extras = fast
                reasons = None
            else:
                keep = np.zeros(len(lines), dtype=bool)
                row_offsets = np.zeros(len(lines))
                for i, line in enumerate(lines):
                    if _is_data(line):
                        keep[i] = True
                        row_offsets[i] = offset
                    elif match := UNIX_START.match(line.strip()):
                        offset = float(match.group(1))
                data_numbers = numbers[keep]
                data_lines = [line for line, k in zip(lines, keep, strict=True) if k]
                offsets = row_offsets[keep]
                if not data_lines:
                    continue
                fast = _parse_fast("".join(data_lines), len(data_lines))
                if fast is not None:
                    values, extras = fast
                    reasons = None
                else:
                    values, extras, reasons = _parse_slow(data_lines)
            submit = values[:, _COL["submit_time"]]
            negative = (submit < 0) & (submit != -1)
            if negative.any():
                reasons = np.full(len(values), "", dtype=object) if reasons is None else reasons
                todo = negative & (reasons == "")
                reasons[todo] = [f"negative submit_time: {v:g}" for v in submit[todo]]
            frame = _frame(values, offsets, extras)
            yield finish_chunk(frame, data_numbers, reasons, sink, seen)
