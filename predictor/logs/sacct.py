"""Slurm accounting as ``sacct --parsable2`` prints it (``|``-separated, header line first).

Produce it with::

    SLURM_TIME_FORMAT=%s sacct --allusers --allocations --parsable2 \\
        --starttime=2024-01-01 --format="$(python -c 'from predictor.logs import \\
        SACCT_FIELDS; print(",".join(SACCT_FIELDS))')" > jobs.sacct

``SLURM_TIME_FORMAT=%s`` makes sacct print epoch seconds; without it sacct
prints local ``YYYY-MM-DDTHH:MM:SS`` times, which are read as UTC (so they
are shifted by the cluster's UTC offset, harmless for run times).

Columns are matched by name (case-insensitive), so any order or subset of
:data:`SACCT_FIELDS` works; ``JobIDRaw`` (or ``JobID``) and ``Submit`` are
required. Output without a header (``--noheader``) is read in
:data:`SACCT_FIELDS` order when its lines have exactly that many fields.
Without ``--allocations`` the step lines (``123.batch``, ``123.extern``,
``123.0``) are skipped. ``State`` such as ``CANCELLED by
123`` becomes ``CANCELLED``; ``Unknown``/``None`` times are NaN;
``TimelimitRaw`` is minutes (``UNLIMITED``/``Partition_Limit`` = NaN, and so is
backfill's 365-day stand-in for no limit, :data:`BACKFILL_NO_LIMIT_MIN`);
GPUs come from ``gres/gpu=N`` (or typed ``gres/gpu:a100=N``) in
``ReqTRES``, else ``AllocTRES``; memory from ``mem=`` in ``ReqTRES``
(the job's total), else ``ReqMem`` where ``Mn``/``Mc`` (older Slurm) mean
per node / per CPU. ``ExitCode`` ``2:0`` gives exit code 2.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.logs.errors import ErrorSink
from predictor.logs.states import normalize_states
from predictor.logs.tabular import MISSING_MARKERS, Batch, iter_records
from predictor.logs.validate import SeenJobIds, finish_chunk

FORMAT = "sacct"
SACCT_FIELDS: tuple[str, ...] = (
    "JobIDRaw",
    "JobID",
    "JobName",
    "User",
    "Group",
    "Account",
    "Partition",
    "QOS",
    "State",
    "ExitCode",
    "Submit",
    "Eligible",
    "Start",
    "End",
    "ElapsedRaw",
    "TimelimitRaw",
    "ReqCPUS",
    "ReqMem",
    "ReqNodes",
    "ReqTRES",
    "AllocTRES",
    "NNodes",
    "NCPUS",
)
NEEDED = (("jobidraw", "jobid"), "submit")
UNLIMITED = frozenset({"unlimited", "partition_limit", "invalid"})
#: Slurm's backfill scheduler gives a job without a time limit 365 days (its YEAR_MINUTES)
#: when it starts it, and sacct/squeue then show 525600 minutes, not UNLIMITED; the main
#: scheduler leaves such a job UNLIMITED. Both are read as no limit, as at submission.
BACKFILL_NO_LIMIT_MIN = 365 * 24 * 60
_MEM_UNITS = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}
_REQMEM = re.compile(r"^\s*([0-9.]+)\s*([KMGTP]?)([nc]?)\s*$", re.IGNORECASE)


def tres_value(tres: str, key: str) -> float:
    """A count from a TRES string (``cpu=4,mem=8G,gres/gpu=2``); typed GPUs are summed.

    ``tres_value(s, "gres/gpu")`` reads ``gres/gpu=2`` or, failing that, the
    sum of ``gres/gpu:TYPE=N``; ``mem`` is returned in MiB. NaN when absent.
    """
    typed = 0.0
    found = False
    for item in tres.split(","):
        name, _, value = item.strip().partition("=")
        if name == key:
            return mem_mb(value) if key == "mem" else _float(value)
        if name.startswith(key + ":"):
            typed += _float(value)
            found = True
    return typed if found else np.nan


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return np.nan


def mem_mb(text: str, nodes: float = np.nan, cpus: float = np.nan) -> float:
    """A Slurm memory size (``4000M``, ``4G``, ``4000Mn``, ``2Gc``) as MiB for the whole job.

    No unit means MiB; ``n``/``c`` suffixes (Slurm < 21.08) mean per node / per
    CPU and are multiplied out (NaN when that count is unknown).
    """
    match = _REQMEM.match(text)
    if not match:
        return np.nan
    value = float(match.group(1)) * _MEM_UNITS[(match.group(2) or "M").upper()]
    per = match.group(3).lower()
    if per == "n":
        return value * nodes
    if per == "c":
        return value * cpus
    return value


def slurm_limit_seconds(minutes: float | np.ndarray) -> np.ndarray:
    """A Slurm time limit in minutes -> seconds; NaN for :data:`BACKFILL_NO_LIMIT_MIN`."""
    minutes = np.asarray(minutes, dtype=np.float64)
    return np.where(minutes == BACKFILL_NO_LIMIT_MIN, np.nan, minutes * 60.0)


def _limit_seconds(batch: Batch) -> np.ndarray:
    raw = batch.text("timelimitraw")
    if "timelimitraw" in batch.frame:
        unlimited = raw.str.lower().isin(UNLIMITED).to_numpy()
        minutes = pd.to_numeric(raw.where(~unlimited, ""), errors="coerce").to_numpy()
        bad = np.isnan(minutes) & ~unlimited & ~raw.str.lower().isin(MISSING_MARKERS).to_numpy()
        batch.reject(bad, [f"timelimitraw is not a number: {v!r}" for v in raw[bad]])
        return slurm_limit_seconds(minutes)
    if "timelimit" in batch.frame:
        seconds = batch.text("timelimit").map(slurm_duration).to_numpy(dtype=np.float64)
        return slurm_limit_seconds(seconds / 60.0)
    return np.full(len(batch.frame), np.nan)


def slurm_duration(text: str) -> float:
    """Slurm's ``[D-]HH:MM:SS`` / ``MM:SS`` / ``MM`` duration as seconds (NaN if not one)."""
    text = text.strip()
    days = 0.0
    if "-" in text:
        head, _, text = text.partition("-")
        days = _float(head)
    parts = [_float(p) for p in text.split(":")]
    if not parts or len(parts) > 3 or any(np.isnan(p) for p in parts):
        return np.nan
    if len(parts) == 1:  # minutes
        seconds = parts[0] * 60
    elif len(parts) == 2:  # MM:SS, or HH:MM after a day count
        seconds = parts[0] * 3600 + parts[1] * 60 if days else parts[0] * 60 + parts[1]
    else:
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    return days * 86400 + seconds


def _first(*columns: np.ndarray) -> np.ndarray:
    """Element-wise first non-NaN value of ``columns``."""
    out = columns[0].astype(np.float64, copy=True)
    for col in columns[1:]:
        out = np.where(np.isnan(out), col, out)
    return out


def _frame(batch: Batch) -> pd.DataFrame:
    """Canonical columns for one batch of sacct records."""
    job_id = batch.text("jobidraw") if "jobidraw" in batch.frame else batch.text("jobid")
    req_tres = batch.text("reqtres")
    alloc_tres = batch.text("alloctres")
    cpus = _first(
        batch.number("reqcpus"),
        req_tres.map(lambda s: tres_value(s, "cpu")).to_numpy(dtype=np.float64),
        batch.number("ncpus"),
    )
    nodes = _first(
        batch.number("reqnodes"),
        req_tres.map(lambda s: tres_value(s, "node")).to_numpy(dtype=np.float64),
        batch.number("nnodes"),
    )
    gpus = _first(
        req_tres.map(lambda s: tres_value(s, "gres/gpu")).to_numpy(dtype=np.float64),
        alloc_tres.map(lambda s: tres_value(s, "gres/gpu")).to_numpy(dtype=np.float64),
    )
    has_tres = (req_tres != "") | (alloc_tres != "")
    gpus = np.where(np.isnan(gpus) & has_tres.to_numpy(), 0.0, gpus)
    reqmem = batch.text("reqmem").to_numpy()
    mem = _first(
        req_tres.map(lambda s: tres_value(s, "mem")).to_numpy(dtype=np.float64),
        np.array(
            [mem_mb(m, n, c) for m, n, c in zip(reqmem, nodes, cpus, strict=True)], dtype=float
        ),
    )
    submit = batch.seconds("submit")
    start = batch.seconds("start")
    end = batch.seconds("end")
    states = normalize_states(batch.text("state"))
    run = end - start
    if "elapsedraw" in batch.frame:
        elapsed = batch.number("elapsedraw")
        final = ~np.isin(states, ["RUNNING", "PENDING"])
        run = np.where(np.isnan(run) & final & ~np.isnan(start), elapsed, run)
    exit_code = pd.to_numeric(
        batch.text("exitcode").str.split(":", n=1).str[0], errors="coerce"
    ).to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "job_id": job_id.to_numpy(),
            "user": batch.text("user").to_numpy(),
            "account": batch.text("account").to_numpy(),
            "partition": batch.text("partition").to_numpy(),
            "job_name": batch.text("jobname").to_numpy(),
            "qos": batch.text("qos").to_numpy(),
            "vc": batch.text("partition").to_numpy(),
            "cpus": cpus,
            "gpus": gpus,
            "nodes": nodes,
            "mem_mb": mem,
            "time_limit": _limit_seconds(batch),
            "submit_time": submit,
            "start_time": start,
            "end_time": end,
            "run_time": run,
            "wait_time": start - submit,
            "state": states,
            "exit_code": exit_code,
        }
    )


def iter_sacct(path: str | Path, sink: ErrorSink, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield canonical job chunks from ``sacct --parsable2`` output, skipping job steps."""
    seen = SeenJobIds()
    for batch in iter_records(
        path,
        sink,
        chunk_rows,
        NEEDED,
        delimiter="|",
        quoting=csv.QUOTE_NONE,
        default_header=SACCT_FIELDS,
    ):
        job_id = batch.text("jobidraw") if "jobidraw" in batch.frame else batch.text("jobid")
        step = job_id.str.contains(".", regex=False).to_numpy()
        if step.any():
            batch.frame = batch.frame[~step].reset_index(drop=True)
            batch.lines = batch.lines[~step]
            batch.reasons = batch.reasons[~step]
        frame = _frame(batch)
        batch.reject(np.isnan(frame["submit_time"].to_numpy()), "submit time is missing")
        yield finish_chunk(frame, batch.lines, batch.reasons, sink, seen)
