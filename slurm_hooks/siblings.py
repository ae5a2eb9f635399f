"""Ended burst siblings' run times for pending jobs, from what Slurm shows (the priority daemon).

Sweeps and job arrays arrive as bursts: one user submits many jobs of one
shape within seconds, and they run alike (:mod:`predictor.history.bursts`).
Once a sibling has ended, its run time is a better guess for the siblings
still waiting than the model's prediction; replaying real logs, re-scoring
waiting siblings this way cut QSSF's average JCT by 2-6% (docs/simulator.md).

:func:`sibling_runtimes` rebuilds the bursts each daemon cycle from the queue
(pending and running jobs) and recently ended jobs from accounting, with the
simulator's own :class:`~predictor.history.bursts.BurstTracker`, and returns,
for each pending job with ended siblings, their geometric-mean run time.
"""

from __future__ import annotations

import math

import pandas as pd

from predictor.history.bursts import BURST_GAP_S, BURST_KEY_COLUMNS, BurstTracker, burst_key


def sibling_runtimes(
    queue: pd.DataFrame, ended: pd.DataFrame, gap: float = BURST_GAP_S
) -> pd.Series:
    """``job_id -> seconds`` for the PENDING jobs of ``queue`` whose burst has ended jobs.

    ``queue``: the adapter's queue (pending and running jobs); ``ended``: jobs from
    accounting with their ``run_time`` (those without a positive run time, e.g.
    cancelled before starting, join bursts but tell nothing). Jobs without a submit
    time are left out.
    """
    columns = ["job_id", "state", "submit_time", "run_time", *BURST_KEY_COLUMNS]
    both = pd.concat(
        [queue.reindex(columns=columns).assign(run_time=math.nan), ended.reindex(columns=columns)],
        ignore_index=True,
    )
    both["job_id"] = both["job_id"].astype(str)
    both = both.drop_duplicates("job_id", keep="last")  # ended since the queue was read
    both = both[pd.to_numeric(both["submit_time"], errors="coerce").notna()]
    both = both.sort_values("submit_time", kind="stable")
    tracker = BurstTracker(gap)
    records = both.to_dict("records")
    bursts = [tracker.submitted(burst_key(r), float(r["submit_time"])) for r in records]
    for r, b in zip(records, bursts, strict=True):
        run = float(r["run_time"]) if pd.notna(r["run_time"]) else math.nan
        if run > 0:
            tracker.ended(b, run)
    out = {}
    for r, b in zip(records, bursts, strict=True):
        if r["state"] == "PENDING":
            log_run = tracker.sibling_log_runtime(b)
            if not math.isnan(log_run):
                out[r["job_id"]] = math.exp(log_run)
    return pd.Series(out, dtype=float)
