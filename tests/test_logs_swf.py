"""SWF reader: field mapping, header offset, missing markers, MetaCentrum's extended lines."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest

from predictor.logs import LogFormatError, read_log

HEADER = "; Version: 2.2\n; UnixStartTime: 1000000000\n; MaxProcs: 128\n"
# job submit wait run alloc cpu_t used_mem req_procs req_time req_mem status user group exe queue
# partition preceding think
LINES = (
    "    1     0   10  100   4  -1  -1   8  3600  2048  1  7  3  12  2 -1 -1 -1\n"
    "    2    50   -1  200  16  -1  -1  -1    -1    -1  0  8  3  -1 -1  5 -1 -1\n"
    "    3    60    5   -1   1  -1  -1   1   600    -1  5  7  3  -1  1 -1 -1 -1\n"
    "    4    70    0    9   1  -1  -1   1   600    -1  2  7  3  -1  1 -1 -1 -1\n"
)


def write(tmp_path: Path, text: str, name: str = "log.swf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_swf_maps_fields_and_anchors_times(tmp_path: Path) -> None:
    result = read_log(write(tmp_path, HEADER + LINES), "swf")
    assert result.format == "swf"
    assert result.n_errors == 0
    jobs = result.jobs.set_index("job_id")
    one = jobs.loc["1"]
    assert (one["user"], one["account"], one["job_name"], one["partition"]) == ("7", "3", "12", "2")
    assert one["vc"] == "2"  # no SWF partition number: falls back to the queue
    assert one["cpus"] == 8  # requested processors win over allocated
    assert one["mem_mb"] == pytest.approx(2048 * 8 / 1024)  # KB per processor -> MiB total
    assert one["time_limit"] == 3600
    assert one["submit_time"] == 1_000_000_000
    assert one["start_time"] == 1_000_000_010
    assert one["end_time"] == 1_000_000_110
    assert (one["run_time"], one["wait_time"], one["state"]) == (100, 10, "COMPLETED")
    two = jobs.loc["2"]
    assert two["cpus"] == 16  # requested -1: allocated processors
    assert math.isnan(two["start_time"]) and math.isnan(two["end_time"])
    assert two["run_time"] == 200  # run time kept although the wait is unknown
    assert (two["job_name"], two["partition"], two["vc"], two["state"]) == ("", "5", "5", "FAILED")
    assert math.isnan(two["time_limit"]) and math.isnan(two["mem_mb"])
    assert jobs.loc["3", "state"] == "CANCELLED"
    assert math.isnan(jobs.loc["3", "run_time"]) and math.isnan(jobs.loc["3", "end_time"])
    assert jobs.loc["4", "state"] == "UNKNOWN"
    assert (jobs["gpus"] == 0).all()


def test_swf_without_unix_start_time_keeps_relative_times(tmp_path: Path) -> None:
    jobs = read_log(write(tmp_path, LINES), "swf").jobs
    assert jobs["submit_time"].tolist() == [0, 50, 60, 70]


def test_swf_reads_gzip(tmp_path: Path) -> None:
    path = tmp_path / "log.swf.gz"
    path.write_bytes(gzip.compress((HEADER + LINES).encode()))
    assert len(read_log(path).jobs) == 4


def test_metacentrum_extended_lines(tmp_path: Path) -> None:
    text = (
        "0 1356996147 0 56011 64 1 1024 64 86400 68719476736 1 62 1 1 -1 1 1 1 "
        "{1241,1241,1241,1242} q_1d 2:ppn=32:x86_64:cl_zewura#excl\n"
        "1 1356996695 71 1164297 12 1 1024 12 1209600 91268055040 1 101 1 1 -1 1 1 1 "
        "{1129} q_2w 1:ppn=12\n"
    )
    result = read_log(write(tmp_path, text), "auto")
    assert result.format == "swf" and result.n_errors == 0
    jobs = result.jobs.set_index("job_id")
    assert jobs.loc["0", "mem_mb"] == 2 * 65536  # bytes per node (2 nodes), not KB per CPU
    assert jobs.loc["1", "mem_mb"] == pytest.approx(91268055040 / 2**20)
    assert jobs.loc["0", "partition"] == "q_1d" and jobs.loc["1", "partition"] == "q_2w"
    assert jobs.loc["0", "nodes"] == 2 and jobs.loc["1", "nodes"] == 1
    assert jobs.loc["0", "submit_time"] == 1356996147  # already epoch seconds


def test_swf_bad_lines_are_reported_with_line_numbers(tmp_path: Path) -> None:
    text = (
        HEADER  # lines 1-3
        + LINES.splitlines(keepends=True)[0]  # 4
        + "5 1 2 3\n"  # 5: too few fields
        + "6 0 10 abc 4 -1 -1 8 3600 -1 1 7 3 12 2 -1 -1 -1\n"  # 6: not a number
        + "7 0 10 -50 4 -1 -1 8 3600 -1 1 7 3 12 2 -1 -1 -1\n"  # 7: negative run time
        + "1 0 10 100 4 -1 -1 8 3600 -1 1 7 3 12 2 -1 -1 -1\n"  # 8: duplicate id 1
        + "9 -5 10 100 4 -1 -1 8 3600 -1 1 7 3 12 2 -1 -1 -1\n"  # 9: negative submit
    )
    path = write(tmp_path, text)
    result = read_log(path, "swf", chunk_rows=3)  # small chunks: ids checked across chunks
    assert result.jobs["job_id"].tolist() == ["1"]
    assert result.n_errors == 5
    assert [e.line for e in result.errors] == [5, 6, 7, 8, 9]
    reasons = [e.reason for e in result.errors]
    assert "expected 18" in reasons[0] and "got 4" in reasons[0]
    assert "field 4 (run_time)" in reasons[1] and "'abc'" in reasons[1]
    assert "end before start" in reasons[2]
    assert "duplicate job id '1'" in reasons[3]
    assert "negative submit_time" in reasons[4]
    assert str(result.errors[0]).startswith(f"{path}:5: ")
    with pytest.raises(LogFormatError, match=rf"{path}:5: expected 18"):
        read_log(path, "swf", strict=True)
