"""Errors and skipped lines reach stderr also under ``--json`` (stdout keeps only the JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from predictor.cli import app


def swf(path: Path, jobs: int, bad_after: int | None = None) -> Path:
    """A small SWF log: ``jobs`` jobs of four users, a garbage line after job ``bad_after``."""
    lines = ["; UnixStartTime: 0\n"]
    for i in range(1, jobs + 1):
        run = 100 * (1 + i % 7)
        lines.append(f"{i} {60 * i} 5 {run} 4 -1 -1 4 {4 * run} -1 1 {1 + i % 4} 1 -1 1 -1 -1 -1\n")
        if i == bad_after:
            lines.append("garbage line here\n")
    path.write_text("".join(lines))
    return path


def test_a_failing_evaluation_says_why_under_json(tmp_path: Path, foresight_home: Path) -> None:
    out = CliRunner().invoke(app, ["evaluate", "duration", "--log",
                                   str(swf(tmp_path / "tiny.swf", 8)), "--json"])  # fmt: skip
    assert out.exit_code == 1 and out.stdout == ""
    assert "error: need at least ~35 jobs" in out.stderr


def test_skipped_lines_are_named_under_json(tmp_path: Path, foresight_home: Path) -> None:
    log = swf(tmp_path / "bad.swf", 60, bad_after=10)
    out = CliRunner().invoke(app, ["evaluate", "duration", "--log", str(log), "--json"])
    assert out.exit_code == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["n_train"] + report["n_test"] == 60
    assert "skipped 1 bad line(s)" in out.stderr
    assert f"{log}:12: expected 18 whitespace-separated fields" in out.stderr


def test_a_bad_log_fails_train_with_its_reason_under_json(
    tmp_path: Path, foresight_home: Path
) -> None:
    log = tmp_path / "[none].csv"  # no markup: the name is printed as it is
    log.write_text("a,b\n1,2\n")
    out = CliRunner().invoke(app, ["train", "--log", str(log), "--format", "helios", "--json"])
    assert out.exit_code == 1 and out.stdout == ""
    assert "[none].csv: missing column(s) job_id, submit_time" in out.stderr
