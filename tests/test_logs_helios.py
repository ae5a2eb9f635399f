"""Helios-style CSV reader (SenseTime cluster_log.csv schema)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from predictor.logs import LogFormatError, read_log

# Modelled on the public Helios trace (Venus/Earth/Saturn/Uranus cluster_log.csv).
HELIOS = (
    "job_id,user,vc,jobname,gpu_num,cpu_num,node_num,state,"
    "submit_time,start_time,end_time,duration,queue\n"
    "1170563,u4Yyk,vcEwI,train_resnet,8,48,1,COMPLETED,"
    "2020-04-01 00:00:27,2020-04-01 00:00:28,2020-04-01 06:41:46,24078,1\n"
    "1170564,uDcW8,vc6YE,eval,1,6,1,FAILED,"
    "2020-04-01 00:01:02,2020-04-01 00:03:02,2020-04-01 00:03:10,8,120\n"
    "1170565,u4Yyk,vcEwI,train_resnet,16,96,2,CANCELLED,"
    "2020-04-01 00:02:00,,2020-04-01 00:10:00,0,480\n"
    "1170566,uDcW8,vc6YE,,0,4,1,TIMEOUT,1585699200,1585699260,1585702860,3600,60\n"
)


def test_helios_columns(tmp_path: Path) -> None:
    path = tmp_path / "cluster_log.csv"
    path.write_text(HELIOS)
    result = read_log(path)
    assert result.format == "helios" and result.n_errors == 0
    jobs = result.jobs.set_index("job_id")
    one = jobs.loc["1170563"]
    assert (one["user"], one["account"], one["vc"], one["partition"]) == (
        "u4Yyk",
        "vcEwI",
        "vcEwI",
        "vcEwI",
    )
    assert one["job_name"] == "train_resnet"
    assert (one["gpus"], one["cpus"], one["nodes"]) == (8, 48, 1)
    assert one["submit_time"] == 1585699227  # 2020-04-01 00:00:27 UTC
    assert (one["run_time"], one["wait_time"], one["state"]) == (24078, 1, "COMPLETED")
    assert one["end_time"] - one["start_time"] == 24078
    cancelled = jobs.loc["1170565"]
    assert cancelled["state"] == "CANCELLED" and math.isnan(cancelled["start_time"])
    assert cancelled["run_time"] == 0 and cancelled["wait_time"] == 480
    epoch = jobs.loc["1170566"]
    assert (epoch["submit_time"], epoch["run_time"], epoch["state"]) == (
        1585699200,
        3600,
        "TIMEOUT",
    )
    assert epoch["job_name"] == ""


def test_helios_without_optional_columns_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,"
        "duration,queue\n"  # 1
        "1,u,v,1,2,1,COMPLETED,2020-04-01 00:00:00,2020-04-01 00:00:10,2020-04-01 00:01:10,"
        "60,10\n"  # 2
        "2,u,v,1,2,1,COMPLETED,2020-04-01 00:00:00,2020-04-01 00:00:10,2020-03-01 00:00:00,"
        ",\n"  # 3: ends before it starts
        "3,u,v,-1,2,1,COMPLETED,2020-04-01 00:00:00,,,,\n"  # 4: negative GPUs
        "4,u,v,1,2,1,COMPLETED,,,,,\n"  # 5: no submit time
    )
    result = read_log(path, "helios")
    assert result.jobs["job_id"].tolist() == ["1"]
    assert [e.line for e in result.errors] == [3, 4, 5]
    assert "end before start" in result.errors[0].reason
    assert "negative gpus" in result.errors[1].reason
    assert "submit_time is missing" in result.errors[2].reason


def test_helios_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,vc,gpu_num\nu,v,1\n")
    with pytest.raises(LogFormatError, match="job_id, submit_time"):
        read_log(path, "helios")
