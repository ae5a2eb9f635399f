"""sacct --parsable2 reader: fields, steps, TRES, memory units, limits and states."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from predictor.logs import SACCT_FIELDS, LogFormatError, read_log
from predictor.logs.sacct import mem_mb, slurm_duration, tres_value

HEADER = "|".join(SACCT_FIELDS)


def row(**values: str) -> str:
    return "|".join(values.get(f, "") for f in SACCT_FIELDS)


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "jobs.sacct"
    path.write_text("\n".join(lines) + "\n")
    return path


JOB = {
    "JobIDRaw": "1001",
    "JobID": "1001",
    "JobName": "train.sh",
    "User": "alice",
    "Group": "ml",
    "Account": "proj1",
    "Partition": "gpu",
    "QOS": "normal",
    "State": "COMPLETED",
    "ExitCode": "0:0",
    "Submit": "2024-03-01T10:00:00",
    "Eligible": "2024-03-01T10:00:00",
    "Start": "2024-03-01T10:05:00",
    "End": "2024-03-01T11:05:00",
    "ElapsedRaw": "3600",
    "TimelimitRaw": "120",
    "ReqCPUS": "8",
    "ReqMem": "32G",
    "ReqNodes": "1",
    "ReqTRES": "billing=8,cpu=8,gres/gpu=2,mem=32G,node=1",
    "AllocTRES": "billing=8,cpu=8,gres/gpu=2,mem=32G,node=1",
    "NNodes": "1",
    "NCPUS": "8",
}


def test_sacct_fields_and_step_lines(tmp_path: Path) -> None:
    lines = [
        HEADER,
        row(**JOB),
        row(**{**JOB, "JobIDRaw": "1001.batch", "JobID": "1001.batch", "JobName": "batch"}),
        row(**{**JOB, "JobIDRaw": "1001.0", "JobID": "1001.0", "JobName": "python"}),
        row(
            **{
                **JOB,
                "JobIDRaw": "1002",
                "State": "CANCELLED by 1234",
                "Start": "Unknown",
                "End": "2024-03-01T10:30:00",
                "ElapsedRaw": "0",
                "TimelimitRaw": "UNLIMITED",
                "ReqMem": "4000Mc",
                "ReqTRES": "",
                "AllocTRES": "",
                "ReqCPUS": "4",
                "ReqNodes": "2",
                "ExitCode": "0:15",
            }
        ),
        row(
            **{
                **JOB,
                "JobIDRaw": "1003",
                "TimelimitRaw": "Partition_Limit",
                "State": "TIMEOUT",
                "ReqTRES": "cpu=2,gres/gpu:a100=2,gres/gpu:v100=1,mem=4000M,node=1",
                "ExitCode": "2:0",
                "Submit": "1709287200",
                "Start": "1709287260",
                "End": "1709287320",
            }
        ),
    ]
    result = read_log(write(tmp_path, lines))
    assert result.format == "sacct" and result.n_errors == 0
    jobs = result.jobs.set_index("job_id")
    assert list(jobs.index) == ["1001", "1002", "1003"]
    one = jobs.loc["1001"]
    assert (one["user"], one["account"], one["partition"], one["qos"]) == (
        "alice",
        "proj1",
        "gpu",
        "normal",
    )
    assert one["job_name"] == "train.sh"
    assert (one["cpus"], one["gpus"], one["nodes"], one["mem_mb"]) == (8, 2, 1, 32768)
    assert one["time_limit"] == 7200
    assert one["submit_time"] == 1709287200  # 2024-03-01T10:00:00 read as UTC
    assert (one["wait_time"], one["run_time"]) == (300, 3600)
    assert (one["state"], one["exit_code"]) == ("COMPLETED", 0)
    two = jobs.loc["1002"]
    assert two["state"] == "CANCELLED"
    assert math.isnan(two["start_time"]) and math.isnan(two["run_time"])
    assert math.isnan(two["time_limit"])
    assert two["mem_mb"] == 4000 * 4  # per CPU x ReqCPUS
    assert two["nodes"] == 2 and math.isnan(two["gpus"])
    three = jobs.loc["1003"]
    assert three["gpus"] == 3 and three["mem_mb"] == 4000  # typed GPUs summed; mem from TRES
    assert math.isnan(three["time_limit"]) and three["state"] == "TIMEOUT"
    assert three["exit_code"] == 2 and three["run_time"] == 60


def test_backfills_365_day_stand_in_for_no_limit_reads_as_no_limit(tmp_path: Path) -> None:
    """Slurm's backfill starts a job without a limit as 525600 min (365-00:00:00)."""
    lines = [HEADER, row(**{**JOB, "TimelimitRaw": "525600"}),
             row(**{**JOB, "JobIDRaw": "1002", "TimelimitRaw": "525599"})]  # fmt: skip
    jobs = read_log(write(tmp_path, lines)).jobs.set_index("job_id")
    assert math.isnan(jobs.loc["1001", "time_limit"]) and jobs.loc["1002", "time_limit"] == 31535940
    text = [line.replace("TimelimitRaw", "Timelimit") for line in lines[:1]] + [
        row(**{**JOB, "TimelimitRaw": "365-00:00:00"}),
        row(**{**JOB, "JobIDRaw": "1002", "TimelimitRaw": "2-00:00:00"}),
    ]
    jobs = read_log(write(tmp_path, text)).jobs.set_index("job_id")
    assert math.isnan(jobs.loc["1001", "time_limit"]) and jobs.loc["1002", "time_limit"] == 172800


def test_sacct_bad_lines_and_missing_columns(tmp_path: Path) -> None:
    lines = [
        HEADER,  # 1
        row(**JOB),  # 2
        "1004|too|few",  # 3
        row(**{**JOB, "JobIDRaw": "1005", "End": "2024-03-01T10:00:00"}),  # 4: end before start
        row(**{**JOB, "JobIDRaw": "1006", "Submit": "yesterday"}),  # 5
        row(**JOB),  # 6: duplicate
        row(**{**JOB, "JobIDRaw": "1007", "ReqCPUS": "eight"}),  # 7
    ]
    path = write(tmp_path, lines)
    result = read_log(path, "sacct")
    assert result.jobs["job_id"].tolist() == ["1001"]
    assert [e.line for e in result.errors] == [3, 4, 5, 6, 7]
    assert f"expected {len(SACCT_FIELDS)} fields, got 3" in result.errors[0].reason
    assert "end before start" in result.errors[1].reason
    assert "submit is not a time: 'yesterday'" in result.errors[2].reason
    assert "duplicate job id '1001'" in result.errors[3].reason
    assert "reqcpus is not a number: 'eight'" in result.errors[4].reason
    with pytest.raises(LogFormatError, match=":3: expected"):
        read_log(path, "sacct", strict=True)
    bad = tmp_path / "nocols.sacct"
    bad.write_text("User|Account\nalice|proj\n")
    with pytest.raises(LogFormatError, match=r"missing column.*jobidraw or jobid, submit"):
        read_log(bad, "sacct")


def test_sacct_helpers() -> None:
    assert mem_mb("4000M") == 4000
    assert mem_mb("4G") == 4096
    assert mem_mb("2Gn", nodes=3) == 6144
    assert mem_mb("500Mc", cpus=4) == 2000
    assert mem_mb("1024K") == 1
    assert math.isnan(mem_mb("lots"))
    assert tres_value("cpu=4,mem=8G,gres/gpu=2", "gres/gpu") == 2
    assert tres_value("cpu=4,mem=8G", "mem") == 8192
    assert math.isnan(tres_value("cpu=4", "gres/gpu"))
    assert slurm_duration("1-02:03:04") == 93784
    assert slurm_duration("02:03:04") == 7384
    assert slurm_duration("05:30") == 330
    assert slurm_duration("90") == 5400
    assert math.isnan(slurm_duration("UNLIMITED"))


def test_sacct_noheader_and_parsable_trailing_bar(tmp_path: Path) -> None:
    headerless = write(tmp_path, [row(**JOB), row(**{**JOB, "JobIDRaw": "1002"})])
    result = read_log(headerless)
    assert result.format == "sacct" and result.jobs["job_id"].tolist() == ["1001", "1002"]
    assert result.jobs["gpus"].tolist() == [2, 2]
    trailing = tmp_path / "parsable.sacct"  # sacct --parsable ends every line with "|"
    trailing.write_text(HEADER + "|\n" + row(**JOB) + "|\n")
    result = read_log(trailing)
    assert result.n_errors == 0 and result.jobs["user"].tolist() == ["alice"]
