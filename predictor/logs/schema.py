"""The canonical job table: one row per job, whatever log it came from.

Every parser in :mod:`predictor.logs` produces this table, and everything
downstream (history, features, models, simulator) reads only these columns.

Times are seconds. ``submit_time``/``start_time``/``end_time`` are absolute
epoch seconds (UTC) where the log anchors them (SWF ``UnixStartTime``, sacct,
Helios/Philly timestamps), else seconds from the log's start. Missing values
are ``NaN`` for numbers and ``""`` for strings.

=============  ========  =====================================================
column         dtype     meaning
=============  ========  =====================================================
job_id         str       the log's job id (unique within one log)
user           str       user name or id ("" when the log has none)
account        str       Slurm account / SWF group / Helios-Philly VC
partition      str       Slurm partition / SWF queue number / Helios VC
job_name       str       job name / SWF executable id ("" when unknown)
qos            str       Slurm QOS ("" when unknown)
vc             str       virtual cluster (Helios/Philly VC; SWF partition)
cpus           float     CPUs (processors) requested; allocation if that is
                         all the log records
gpus           float     GPUs requested (0 for CPU-only logs)
nodes          float     nodes requested (NaN when unknown)
mem_mb         float     memory requested, MiB in total (NaN when unknown)
time_limit     float     requested wall-clock limit, s (NaN when unknown)
submit_time    float     submission time, s
start_time     float     start time, s (NaN if the job never started)
end_time       float     end time, s (NaN if the job never ended)
run_time       float     end_time - start_time, s (the prediction target)
wait_time      float     start_time - submit_time, s
state          str       Slurm-style final state: COMPLETED, FAILED,
                         CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY,
                         PREEMPTED, RUNNING, PENDING or UNKNOWN
exit_code      float     exit code where known, else NaN
=============  ========  =====================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STRING_COLUMNS: tuple[str, ...] = (
    "job_id",
    "user",
    "account",
    "partition",
    "job_name",
    "qos",
    "vc",
    "state",
)
FLOAT_COLUMNS: tuple[str, ...] = (
    "cpus",
    "gpus",
    "nodes",
    "mem_mb",
    "time_limit",
    "submit_time",
    "start_time",
    "end_time",
    "run_time",
    "wait_time",
    "exit_code",
)
JOB_COLUMNS: tuple[str, ...] = (
    "job_id",
    "user",
    "account",
    "partition",
    "job_name",
    "qos",
    "vc",
    "cpus",
    "gpus",
    "nodes",
    "mem_mb",
    "time_limit",
    "submit_time",
    "start_time",
    "end_time",
    "run_time",
    "wait_time",
    "state",
    "exit_code",
)
STATES: frozenset[str] = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "RUNNING",
        "PENDING",
        "UNKNOWN",
    }
)


def empty_jobs() -> pd.DataFrame:
    """An empty canonical job table with the right dtypes."""
    return to_canonical(pd.DataFrame({c: [] for c in JOB_COLUMNS}))


def to_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the canonical columns, in order, typed.

    Missing columns are filled (``""`` / ``NaN``); ``run_time`` and
    ``wait_time`` are derived from the timestamps where absent.
    """
    out = pd.DataFrame(index=frame.index)
    for col in STRING_COLUMNS:
        if col in frame:
            out[col] = frame[col].fillna("").astype(str)
        else:
            out[col] = ""
    for col in FLOAT_COLUMNS:
        if col in frame:
            out[col] = pd.to_numeric(frame[col], errors="coerce").astype(np.float64)
        else:
            out[col] = np.nan
    if "run_time" not in frame:
        out["run_time"] = out["end_time"] - out["start_time"]
    if "wait_time" not in frame:
        out["wait_time"] = out["start_time"] - out["submit_time"]
    out.loc[out["state"] == "", "state"] = "UNKNOWN"
    return out[list(JOB_COLUMNS)]
