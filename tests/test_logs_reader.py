"""read_log / iter_log / detect_format: dispatch, detection, chunking and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from predictor.cli import app
from predictor.logs import (
    FORMATS,
    JOB_COLUMNS,
    SACCT_FIELDS,
    LogFormatError,
    detect_format,
    iter_log,
    read_log,
)

SWF = "; UnixStartTime: 0\n" + "".join(
    f"{i} {10 * i} 1 5 1 -1 -1 1 60 -1 1 1 1 -1 1 -1 -1 -1\n" for i in range(1, 11)
)
SAMPLES = {
    "swf": SWF,
    "sacct": "|".join(SACCT_FIELDS) + "\n",
    "sacct-json": '{"meta": {}, "jobs": []}',
    "philly": "timestamp,duration,num_gpus,gpu_time,cluster\n",
    "helios": "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,"
    "end_time,duration,queue\n",
}


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_detect_format(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "log.txt"
    path.write_text(SAMPLES[fmt])
    assert detect_format(path) == fmt
    result = read_log(path)
    assert result.format == fmt
    assert tuple(result.jobs.columns) == JOB_COLUMNS


@pytest.mark.parametrize(
    ("header", "fmt"),
    [
        ("JobID,Submit_Time,Duration,GPUs", "helios"),  # no user, no VC: still Helios
        ("job_id,submit_time,end_time", "helios"),
        ("submitted_time,duration,num_gpus", "philly"),  # Philly without its VC column
    ],
)
def test_csv_detected_by_what_its_reader_needs(tmp_path: Path, header: str, fmt: str) -> None:
    path = tmp_path / "log.csv"
    path.write_text(header + "\n")
    assert detect_format(path) == fmt and read_log(path).format == fmt


def test_detect_swf_without_header(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text(SWF.split("\n", 1)[1])
    assert detect_format(path) == "swf"


def test_unknown_inputs(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello world\n")
    with pytest.raises(LogFormatError, match="cannot detect"):
        read_log(path)
    with pytest.raises(LogFormatError, match="known: auto, " + ", ".join(FORMATS)):
        read_log(path, "parquet")
    empty = tmp_path / "empty.swf"
    empty.write_text("")
    with pytest.raises(LogFormatError, match="empty"):
        read_log(empty)
    assert len(read_log(empty, "swf").jobs) == 0


def test_iter_log_chunks_match_read_log(tmp_path: Path) -> None:
    path = tmp_path / "log.swf"
    path.write_text(SWF)
    chunks = list(iter_log(path, chunk_rows=4))
    assert len(chunks) == 3  # 11 lines (1 header) in chunks of 4 lines
    whole = read_log(path).jobs
    assert pd.concat(chunks, ignore_index=True).equals(whole)
    assert whole["job_id"].tolist() == [str(i) for i in range(1, 11)]
    with pytest.raises(ValueError, match="chunk_rows"):
        list(iter_log(path, chunk_rows=0))


def test_errors_kept_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "log.swf"
    path.write_text("garbage line\n" * 250 + SWF)
    result = read_log(path, "swf")
    assert result.n_errors == 250 and len(result.errors) == 100
    assert len(result.jobs) == 10


def test_cli_logs_check(tmp_path: Path) -> None:
    path = tmp_path / "log.swf"
    path.write_text(SWF + "1 2 3\n")
    runner = CliRunner()
    out = runner.invoke(app, ["logs", "check", str(path)])
    assert out.exit_code == 0, out.output
    assert "format swf, 10 rows, 1 skipped" in out.output
    assert f"{path}:12: expected 18" in out.output
    out = runner.invoke(app, ["logs", "check", "--json", str(path)])
    summary = json.loads(out.output)
    assert (summary["format"], summary["rows"], summary["skipped"]) == ("swf", 10, 1)
    assert summary["errors"][0]["line"] == 12
    assert (summary["users"], summary["first_submit"], summary["last_submit"]) == (1, "10s", "100s")
    out = runner.invoke(app, ["logs", "check", "--strict", str(path)])
    assert out.exit_code == 1
    out = runner.invoke(app, ["logs", "check", "--format", "nope", str(path)])
    assert out.exit_code == 1 and "known: auto" in out.output


@pytest.mark.parametrize("compress", ["gzip", "bz2", "lzma", "bom"])
def test_compressed_and_bom_logs(tmp_path: Path, compress: str) -> None:
    import bz2
    import gzip
    import lzma

    raw = ("\ufeff" + SAMPLES["philly"] + "2017-10-09 07:01:55,66.0,1,66.0,a\n").encode()
    packed = {
        "gzip": gzip.compress,
        "bz2": bz2.compress,
        "lzma": lzma.compress,
        "bom": lambda b: b,
    }[compress](raw)
    path = tmp_path / "log.data"  # the name says nothing: the bytes do
    path.write_bytes(packed)
    result = read_log(path)
    assert (result.format, len(result.jobs), result.n_errors) == ("philly", 1, 0)
    swf = tmp_path / "bom.swf"
    swf.write_bytes(("\ufeff" + SWF).encode())
    assert read_log(swf).n_errors == 0
