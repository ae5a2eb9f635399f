"""Every real job log in the data folder reads with the row count its README states."""

from __future__ import annotations

from pathlib import Path

import pytest

from predictor.logs import read_log

# file, format detected, rows stated in the data folder's README.md
REAL_LOGS = [
    ("hpc_swf/KTH-SP2-1996-2.1-cln.swf.gz", "swf", 28_476),
    ("hpc_swf/LANL-CM5-1994-4.1-cln.swf.gz", "swf", 122_060),
    ("hpc_swf/NASA-iPSC-1993-3.1-cln.swf.gz", "swf", 18_239),
    ("hpc_swf/MetaCentrum-wagap-2013-alea.swf.gz", "swf", 17_900),
    ("extra/alea_hpc2n_subset.swf", "swf", 3_170),
    ("extra/LCG.swf.gz", "swf", 188_041),
    ("gpu_jobs/philly_jobs_pollux.csv", "philly", 82_247),
]


@pytest.mark.parametrize(("name", "fmt", "rows"), REAL_LOGS, ids=[r[0] for r in REAL_LOGS])
def test_real_log_row_count(data: Path, name: str, fmt: str, rows: int) -> None:
    result = read_log(data / name)
    assert result.format == fmt
    # Every data line is either a job or a reported bad line; bad lines are rare.
    assert len(result.jobs) + result.n_errors == rows
    assert result.n_errors <= rows // 1000
    jobs = result.jobs
    assert jobs["job_id"].is_unique
    assert (jobs["run_time"].dropna() >= 0).all()
    assert jobs["submit_time"].notna().all()
    assert jobs["submit_time"].min() > 7e8  # absolute epoch seconds (all these logs are anchored)
    assert (jobs["user"] != "").mean() > 0.99


def test_metacentrum_bad_lines_are_the_negative_run_times(data: Path) -> None:
    result = read_log(data / "hpc_swf/MetaCentrum-wagap-2013-alea.swf.gz")
    assert result.errors and all("end before start" in e.reason for e in result.errors)
    assert result.jobs["partition"].str.startswith("q_").mean() > 0.9
