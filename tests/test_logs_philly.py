"""Philly-style CSV reader."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from predictor.logs import LogFormatError, read_log

CSV = (
    "timestamp,duration,num_gpus,gpu_time,cluster\n"
    "2017-10-09 07:01:55,66.0,1,66.0,11cb48\n"
    "2017-10-09 06:13:03,2951.0,8,23608.0,6214e9\n"
)


def test_philly_columns(tmp_path: Path) -> None:
    path = tmp_path / "philly.csv"
    path.write_text(CSV)
    result = read_log(path)
    assert result.format == "philly" and result.n_errors == 0
    jobs = result.jobs
    assert jobs["job_id"].tolist() == ["1", "2"]
    for col in ("user", "account", "vc", "partition"):
        assert jobs[col].tolist() == ["11cb48", "6214e9"]
    assert jobs["gpus"].tolist() == [1, 8]
    assert jobs["run_time"].tolist() == [66, 2951]
    assert jobs["submit_time"].iloc[0] == 1507532515  # 2017-10-09 07:01:55 UTC
    assert math.isnan(jobs["start_time"].iloc[0]) and math.isnan(jobs["end_time"].iloc[0])
    assert (jobs["state"] == "COMPLETED").all()


def test_philly_status_column_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "philly.csv"
    path.write_text(
        "timestamp,duration,num_gpus,gpu_time,cluster,status\n"  # 1
        "2017-10-09 07:01:55,66.0,1,66.0,a,Killed\n"  # 2
        "2017-10-09 07:01:56,-3,1,66.0,a,Pass\n"  # 3: negative duration
        "yesterday,5,1,5,a,Pass\n"  # 4: bad timestamp
        "2017-10-09 07:01:57,5,1,5,a\n"  # 5: too few fields
        "2017-10-09 07:01:58,5,two,5,a,Failed\n"  # 6: not a number
        "2017-10-09 07:01:59,5,1,5,a,Failed\n"  # 7
    )
    result = read_log(path, "philly")
    assert result.jobs["state"].tolist() == ["CANCELLED", "FAILED"]
    assert [e.line for e in result.errors] == [3, 4, 5, 6]
    assert "duration" in result.errors[0].reason
    assert "timestamp is not a time: 'yesterday'" in result.errors[1].reason
    assert "expected 6 fields, got 5" in result.errors[2].reason
    assert "num_gpus is not a number: 'two'" in result.errors[3].reason


def test_philly_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "philly.csv"
    path.write_text("timestamp,duration\n2017-10-09 07:01:55,66\n")
    with pytest.raises(LogFormatError, match=r"missing column.*num_gpus \(header"):
        read_log(path, "philly")


def test_philly_style_exports_without_vc_or_with_users_and_names(tmp_path: Path) -> None:
    bare = tmp_path / "bare.csv"
    bare.write_text("timestamp,duration,num_gpus\n2017-10-09 07:01:55,66,1\n")
    jobs = read_log(bare).jobs  # detected as philly; no identity at all
    assert jobs[["user", "account", "vc", "job_name"]].iloc[0].tolist() == ["", "", "", ""]
    named = tmp_path / "named.csv"
    named.write_text("timestamp,duration,num_gpus,vc,user,jobname\n"
                     "2017-10-09 07:01:55,66,1,vc1,alice,train-bert\n"
                     "2017-10-09 07:02:55,60,2,vc1,,eval\n")  # fmt: skip
    jobs = read_log(named).jobs
    assert jobs["user"].tolist() == ["alice", "vc1"]  # a blank user falls back to the VC
    assert jobs["account"].tolist() == ["vc1", "vc1"] and jobs["vc"].tolist() == ["vc1", "vc1"]
    assert jobs["job_name"].tolist() == ["train-bert", "eval"]
