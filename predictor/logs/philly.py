"""Philly-style GPU job CSV: ``timestamp,duration,num_gpus,gpu_time,cluster``.

This is the Pollux/AdaptDL export of Microsoft's Philly trace (in the data
folder as ``gpu_jobs/philly_jobs_pollux.csv``): ``timestamp`` is the
submission time as a ``YYYY-MM-DD HH:MM:SS`` string (2017-09-04 .. 2017-12-22,
not in file order), taken as UTC and turned into epoch seconds; numeric
timestamps are kept as seconds. ``duration`` is the run time in seconds,
``gpu_time`` = ``duration`` x ``num_gpus`` (redundant, ignored) and
``cluster`` is the virtual-cluster id.

The export has no users or job ids, so ``user`` = ``account`` = ``vc`` =
``partition`` = ``cluster``, and ``job_id`` is the record's position in the
file (1 = first data row) unless a ``job_id``/``jobid`` column exists.
Other Philly-style exports may differ: ``cluster`` (or ``vc``) may be absent
(a GPU-only log with no identity at all), and a ``user`` or ``jobname``
column, where present, is the job's user (the VC stays its account) or name.
Start and end times are unknown (NaN); ``state`` is COMPLETED unless a
``status``/``state`` column says otherwise (Philly's ``Pass``/``Killed``/
``Failed`` map to COMPLETED/CANCELLED/FAILED).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.logs.errors import ErrorSink
from predictor.logs.states import normalize_states
from predictor.logs.tabular import iter_records
from predictor.logs.validate import SeenJobIds, finish_chunk

FORMAT = "philly"
NEEDED = ("timestamp", "duration", "num_gpus")
ALIASES = {"jobid": "job_id", "status": "state", "submitted_time": "timestamp", "vc": "cluster",
           "job_name": "jobname", "user_name": "user"}  # fmt: skip


def iter_philly(path: str | Path, sink: ErrorSink, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield canonical job chunks from a Philly-style CSV, reporting bad lines."""
    seen = SeenJobIds()
    position = 0
    for batch in iter_records(path, sink, chunk_rows, NEEDED, aliases=ALIASES):
        n = len(batch.frame)
        positions = np.arange(position + 1, position + n + 1)
        position += n
        cluster = batch.text("cluster")
        given = batch.text("user")
        user = given.where(given != "", cluster)
        job_id = (
            batch.text("job_id")
            if "job_id" in batch.frame
            else pd.Series(positions.astype(str), dtype=object)
        )
        state = normalize_states(batch.text("state")) if "state" in batch.frame else "COMPLETED"
        frame = pd.DataFrame(
            {
                "job_id": job_id.to_numpy(),
                "user": user.to_numpy(),
                "account": cluster.to_numpy(),
                "partition": cluster.to_numpy(),
                "vc": cluster.to_numpy(),
                "job_name": batch.text("jobname").to_numpy(),
                "gpus": batch.number("num_gpus"),
                "submit_time": batch.seconds("timestamp"),
                "run_time": batch.number("duration"),
                "state": state,
            }
        )
        batch.reject(np.isnan(frame["submit_time"].to_numpy()), "timestamp is missing")
        batch.reject(frame["run_time"].to_numpy() < 0, "negative duration")
        yield finish_chunk(frame, batch.lines, batch.reasons, sink, seen)
