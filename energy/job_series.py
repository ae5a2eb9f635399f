"""Busy nodes per step from a job log: the utilisation history a Slurm site already has.

A site rarely keeps a per-minute count of busy nodes, but its accounting
(``sacct``, or any log :mod:`predictor.logs` reads: SWF, Helios CSV) says when
each job started and ended and on how many nodes. Swept over time, that gives
the busy-node count; per 10-minute step the demand is its maximum within the
step, as for a sampled series (:func:`energy.series.to_steps`).

How each job's node count is taken (and every fallback is reported): the
allocated nodes where the log has them (``sacct`` ``NNodes``, Helios
``node_num``, MetaCentrum's node list), else ``ceil(GPUs / 8)`` for a GPU job,
else ``ceil(CPUs / cpus_per_node)`` when that is given, else one node. Jobs
sharing a node are counted once each, so a step can exceed the cluster's size:
it is capped there and reported. A job without a start never ran and is left
out; one without an end runs to the end of the log.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from energy.series import GPUS_PER_NODE, STEP, SeriesError


def job_nodes(
    jobs: pd.DataFrame, cpus_per_node: float | None = None
) -> tuple[np.ndarray, list[str]]:
    """Nodes each job held (see the module docstring) and what had to be assumed."""
    nodes = pd.to_numeric(jobs["nodes"], errors="coerce").to_numpy(dtype=float, copy=True)
    gpus = pd.to_numeric(jobs["gpus"], errors="coerce").fillna(0).to_numpy(dtype=float)
    cpus = pd.to_numeric(jobs["cpus"], errors="coerce").to_numpy(dtype=float)
    notes = []
    unknown = ~(nodes > 0)
    from_gpus = unknown & (gpus > 0)
    nodes[from_gpus] = np.ceil(gpus[from_gpus] / GPUS_PER_NODE)
    rest = unknown & ~from_gpus
    if from_gpus.any():
        notes.append(f"{int(from_gpus.sum())} jobs without a node count: ceil(GPUs / "
                     f"{GPUS_PER_NODE}) nodes each")
    if rest.any() and cpus_per_node:
        by_cpus = rest & (cpus > 0)
        nodes[by_cpus] = np.ceil(cpus[by_cpus] / cpus_per_node)
        notes.append(f"{int(by_cpus.sum())} jobs without a node count: ceil(CPUs / "
                     f"{cpus_per_node:g}) nodes each")
        rest &= ~by_cpus
    if rest.any():
        nodes[rest] = 1.0
        notes.append(f"{int(rest.sum())} jobs without a node count (or CPUs per node) "
                     "counted as one node each")
    return nodes, notes


def busy_steps(
    jobs: pd.DataFrame,
    total_nodes: int,
    *,
    cpus_per_node: float | None = None,
    step: pd.Timedelta = STEP,
    from_col: str = "start_time",
    until: float | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Per-step ``demand`` (max busy nodes), ``total`` and ``missing`` from canonical jobs.

    A job counts from ``from_col`` to its end: ``start_time`` gives busy nodes;
    ``submit_time`` gives busy + pending nodes, the demand the live controller
    records. ``until`` ends the jobs still open (default: the log's last instant).
    """
    if not total_nodes or total_nodes < 1:
        raise SeriesError("a job log does not say how many nodes the cluster has: give --nodes N")

    def seconds(frame: pd.DataFrame, col: str) -> np.ndarray:
        return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)

    start = seconds(jobs, from_col)
    ran = np.isfinite(start)
    if not ran.any():
        raise SeriesError(f"no job in the log has a {from_col.replace('_', ' ')}: "
                          "nothing was ever busy")
    # The log reaches its last recorded instant, whichever job it belongs to.
    log_end = until if until is not None else float(np.nanmax(np.concatenate(
        [seconds(jobs, c) for c in ("submit_time", "start_time", "end_time")])))
    jobs, start = jobs[ran], start[ran]
    end = seconds(jobs, "end_time")
    open_ended = ~np.isfinite(end)
    end = np.where(open_ended, log_end, np.minimum(end, log_end))
    nodes, notes = job_nodes(jobs, cpus_per_node)
    if open_ended.any():
        notes.append(f"{int(open_ended.sum())} jobs without an end: busy to the end of the log")
    start = np.minimum(start, log_end)
    keep = end > start
    if not keep.any():
        raise SeriesError("no job in the log was busy for any time")
    start, end, nodes = start[keep], end[keep], nodes[keep]
    # Ends sort before starts at the same instant: back-to-back jobs do not overlap.
    times = np.concatenate([end, start])
    delta = np.concatenate([-nodes, nodes])
    order = np.lexsort((delta, times))
    times, level = times[order], np.cumsum(delta[order])
    final = np.r_[times[1:] != times[:-1], True]  # the level an instant settles at
    times, level = times[final], level[final]
    step_s = step.total_seconds()
    t0 = math.floor(times[0] / step_s) * step_s
    k = ((times - t0) // step_s).astype(np.int64)
    n_steps = max(math.ceil((log_end - t0) / step_s), 1)  # the steps the log covers
    inside_log = k < n_steps
    times, level, k = times[inside_log], level[inside_log], k[inside_log]
    grouped = pd.DataFrame({"k": k, "t": times, "level": level}).groupby("k")
    inside = grouped["level"].max().reindex(range(n_steps)).to_numpy()
    # The level carried into a step counts unless events at its very start replace it.
    entering = grouped["level"].last().reindex(range(n_steps)).ffill().shift(1).fillna(0.0)
    first = grouped["t"].min().reindex(range(n_steps)).to_numpy()
    carried = ~(first == t0 + np.arange(n_steps) * step_s)
    demand = np.fmax(inside, np.where(carried, entering.to_numpy(), np.nan))
    over = demand > total_nodes
    if over.any():
        notes.append(f"{int(over.sum())} steps had more busy nodes than the cluster's "
                     f"{total_nodes} (jobs sharing nodes count once each): capped there")
    demand = np.minimum(np.rint(demand), total_nodes).astype("int64")
    index = pd.to_datetime(t0 + np.arange(n_steps) * step_s, unit="s")
    steps = pd.DataFrame({"demand": demand, "total": total_nodes, "missing": False}, index=index)
    steps.index.name = "time"
    return steps, notes


def load_job_steps(
    path: str | Path, total_nodes: int | None, *, cpus_per_node: float | None = None
) -> tuple[pd.DataFrame, list[str], str]:
    """:func:`busy_steps` of a job log file (format detected); bad lines are reported."""
    from predictor.logs import LogFormatError, read_log

    try:
        result = read_log(path)
    except (LogFormatError, OSError) as exc:
        raise SeriesError(f"{path}: cannot read as a job log: {exc}") from exc
    notes = [f"read {len(result.jobs)} jobs ({result.format})"]
    if result.n_errors:
        first = "; ".join(str(e) for e in result.errors[:3])
        notes.append(f"skipped {result.n_errors} bad lines: {first}")
    steps, more = busy_steps(result.jobs, total_nodes or 0, cpus_per_node=cpus_per_node)
    return steps, notes + more, Path(path).name.split(".")[0]
