"""Busy nodes per step swept from a job log (``--format jobs``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from energy.job_series import busy_steps, job_nodes
from energy.series import SeriesError, load_steps
from predictor.cli import app
from predictor.logs import SACCT_FIELDS


def jobs(*rows: tuple) -> pd.DataFrame:
    """(start, end, nodes[, gpus, cpus]) rows; times in seconds."""
    cols = ["start_time", "end_time", "nodes", "gpus", "cpus"]
    frame = pd.DataFrame([r + (0, 1)[len(r) - 3:] for r in rows], columns=cols, dtype=float)
    frame["submit_time"] = frame["start_time"].fillna(0.0)
    return frame


def test_each_step_holds_the_most_nodes_busy_at_once_within_it():
    steps, notes = busy_steps(jobs(
        (0, 1200, 2),      # steps 0-1
        (600, 1800, 3),    # steps 1-2
        (1800, 2400, 1),   # starts when the previous one ends: no overlap
        (2500, 2550, 4),   # a short job still counts in its step
    ), total_nodes=10)  # fmt: skip
    assert steps["demand"].tolist() == [2, 5, 3, 1, 4]
    assert steps.index[0] == pd.Timestamp("1970-01-01") and (steps["total"] == 10).all()
    assert not steps["missing"].any() and notes == []


def test_a_job_without_an_end_runs_to_the_end_of_the_log_and_one_without_a_start_is_left_out():
    frame = jobs((0, 600, 1), (0, np.nan, 2), (np.nan, np.nan, 50))
    frame.loc[2, "submit_time"] = 1900.0  # the log reaches 1900 s
    steps, notes = busy_steps(frame, total_nodes=60)
    assert steps["demand"].tolist() == [3, 2, 2, 2]
    assert notes == ["1 jobs without an end: busy to the end of the log"]


def test_node_counts_fall_back_to_gpus_then_cpus_then_one_and_say_so():
    frame = jobs((0, 1, 3), (0, 1, np.nan, 12, 4), (0, 1, np.nan, 0, 40), (0, 1, np.nan, 0, np.nan))
    nodes, notes = job_nodes(frame, cpus_per_node=16)
    assert nodes.tolist() == [3, 2, 3, 1]
    assert notes == [
        "1 jobs without a node count: ceil(GPUs / 8) nodes each",
        "1 jobs without a node count: ceil(CPUs / 16) nodes each",
        "1 jobs without a node count (or CPUs per node) counted as one node each",
    ]


def test_more_busy_nodes_than_the_cluster_has_are_capped_and_reported():
    steps, notes = busy_steps(jobs((0, 600, 3), (0, 600, 3)), total_nodes=4)
    assert steps["demand"].tolist() == [4]
    assert "1 steps had more busy nodes than the cluster's 4" in notes[-1]


def test_without_the_cluster_size_or_any_started_job_it_refuses():
    with pytest.raises(SeriesError, match="give --nodes N"):
        busy_steps(jobs((0, 600, 1)), total_nodes=0)
    with pytest.raises(SeriesError, match="no job in the log has a start time"):
        busy_steps(jobs((np.nan, np.nan, 1)), total_nodes=4)


def write_sacct(path: Path, rows: list[dict]) -> None:
    lines = ["|".join(SACCT_FIELDS)]
    for r in rows:
        lines.append("|".join(str(r.get(f, "")) for f in SACCT_FIELDS))
    path.write_text("\n".join(lines) + "\n")


def sacct_rows(days: int) -> list[dict]:
    """Two days' worth of jobs per day: 40 nodes by day, 4 at night, from NNodes."""
    rows, jid = [], 0
    for day in range(days):
        base = 1_599_955_200 + day * 86400
        for start, hours, nnodes in ((8, 10, 36), (0, 24, 4)):
            jid += 1
            t0 = base + start * 3600
            rows.append({"JobIDRaw": jid, "JobID": jid, "JobName": "sim", "User": "u1",
                         "Account": "a", "Partition": "p", "State": "COMPLETED",
                         "ExitCode": "0:0", "Submit": t0 - 60, "Start": t0,
                         "End": t0 + hours * 3600, "ElapsedRaw": hours * 3600,
                         "TimelimitRaw": 1440, "ReqCPUS": 8 * nnodes, "NNodes": nnodes,
                         "NCPUS": 8 * nnodes})  # fmt: skip
    return rows


def test_a_sacct_dump_reads_as_busy_nodes_from_nnodes(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_TIME_FORMAT", "%s")
    log = tmp_path / "jobs.txt"
    write_sacct(log, sacct_rows(2))
    steps, repairs, name = load_steps(log, "jobs", nodes=64)
    assert name == "jobs" and repairs[0].startswith("read 4 jobs (sacct")
    day = steps.loc[pd.Timestamp(1_599_955_200 + 9 * 3600, unit="s")]
    night = steps.loc[pd.Timestamp(1_599_955_200 + 20 * 3600, unit="s")]
    assert (day["demand"], night["demand"], day["total"]) == (40, 4, 64)


def test_energy_replay_runs_on_a_job_log_and_refuses_nodes_for_a_series(tmp_path):
    log = tmp_path / "jobs.txt"
    write_sacct(log, sacct_rows(8))
    out = CliRunner().invoke(app, [
        "energy", "replay", "--series", str(log), "--format", "jobs", "--nodes", "64",
        "--forecaster", "persistence", "--json",
    ])  # fmt: skip
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout[out.stdout.index("{"):])
    assert payload["series"] == "jobs" and payload["nodes"] == 64
    assert set(payload["policies"]) == {"foresight", "idle_timeout_30m", "always_on"}
    assert payload["policies"]["idle_timeout_30m"]["off_share"] > 0.3  # nights are idle
    missing = CliRunner().invoke(app, ["energy", "replay", "--series", str(log), "--format",
                                       "jobs"])  # fmt: skip
    assert missing.exit_code == 1 and "give --nodes N" in missing.output
    series = tmp_path / "philly.csv"
    series.write_text("time,active,total\n2022-01-01 00:00:00,1,2\n")
    refused = CliRunner().invoke(app, ["energy", "replay", "--series", str(series),
                                       "--nodes", "4"])  # fmt: skip
    assert refused.exit_code == 1 and "format 'jobs'" in refused.output


def brute_force(frame: pd.DataFrame, total: int) -> list[int]:
    """Each step's max over its start and every start/end inside it, job by job."""
    start, end, nodes = (frame[c].to_numpy() for c in ("start_time", "end_time", "nodes"))
    log_end = np.nanmax(frame[["submit_time", "start_time", "end_time"]].to_numpy())
    end = np.where(np.isnan(end), log_end, end)
    t0 = np.floor(np.nanmin(start) / 600) * 600
    out = []
    for a in np.arange(t0, log_end, 600):
        instants = [a, *(t for t in np.r_[start, end] if a < t < a + 600)]
        busy = [nodes[(start <= t) & (t < end)].sum() for t in instants]
        out.append(int(min(max(busy), total)))
    return out


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 8), st.integers(1, 5)),
                min_size=1, max_size=25))
@settings(max_examples=150, deadline=None)
def test_the_sweep_matches_a_job_by_job_count(rows):
    # times on a 100 s grid so that jobs often meet at step boundaries and at one instant
    frame = jobs(*[(100.0 * s, 100.0 * (s + d), float(n)) for s, d, n in rows])
    frame = frame[frame["end_time"] > frame["start_time"]]
    if frame.empty:
        return
    steps, _ = busy_steps(frame, total_nodes=40)
    assert steps["demand"].tolist() == brute_force(frame, 40)
