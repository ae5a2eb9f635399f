"""Helios-style GPU job CSV (SenseTime's ``cluster_log.csv`` schema, Hu et al. SC'21).

Columns: ``job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,
start_time,end_time,duration,queue`` plus an optional ``jobname``. Times are
datetime strings (naive = UTC) or epoch numbers; ``duration`` is the run time
and ``queue`` the queueing delay, both seconds. ``vc`` (virtual cluster)
becomes ``account``, ``partition`` and ``vc``. ``run_time`` is ``duration``
where given, else end - start; ``wait_time`` is ``queue`` where given, else
start - submit. States are Slurm's (``COMPLETED``, ``CANCELLED``, ``FAILED``,
``TIMEOUT``, ``NODE_FAIL``...). Only ``job_id`` and ``submit_time`` are required.
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

FORMAT = "helios"
NEEDED = ("job_id", "submit_time")
ALIASES = {"jobid": "job_id", "job_name": "jobname", "gpus": "gpu_num", "cpus": "cpu_num"}


def iter_helios(path: str | Path, sink: ErrorSink, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield canonical job chunks from a Helios-style CSV, reporting bad lines."""
    seen = SeenJobIds()
    for batch in iter_records(path, sink, chunk_rows, NEEDED, aliases=ALIASES):
        vc = batch.text("vc").to_numpy()
        submit = batch.seconds("submit_time")
        start = batch.seconds("start_time")
        end = batch.seconds("end_time")
        duration = batch.number("duration")
        queue = batch.number("queue")
        frame = pd.DataFrame(
            {
                "job_id": batch.text("job_id").to_numpy(),
                "user": batch.text("user").to_numpy(),
                "account": vc,
                "partition": vc,
                "job_name": batch.text("jobname").to_numpy(),
                "vc": vc,
                "cpus": batch.number("cpu_num"),
                "gpus": batch.number("gpu_num"),
                "nodes": batch.number("node_num"),
                "submit_time": submit,
                "start_time": start,
                "end_time": end,
                "run_time": np.where(np.isnan(duration), end - start, duration),
                "wait_time": np.where(np.isnan(queue), start - submit, queue),
                "state": normalize_states(batch.text("state")),
            }
        )
        batch.reject(np.isnan(submit), "submit_time is missing")
        yield finish_chunk(frame, batch.lines, batch.reasons, sink, seen)
