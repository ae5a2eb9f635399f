"""``foresight simulate`` end to end on small logs written in the test, plus cluster configs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from policies.simulator.cluster import (
    from_peak_usage,
    load_cluster_config,
    parse_cluster_config,
    size_for_target_load,
)
from policies.simulator.workload import window_bounds
from predictor.cli import app
from predictor.logs.schema import to_canonical

SWF_HEADER = "; Version: 2.2\n; UnixStartTime: 1000000000\n; MaxNodes: 8\n; MaxProcs: 8\n"


def _swf(path: Path, rows: list[tuple[int, int, int, int, int]]) -> Path:
    """rows: (submit, run, procs, requested time, user)."""
    lines = [SWF_HEADER]
    for i, (submit, run, procs, req, user) in enumerate(rows, start=1):
        fields = [i, submit, 0, run, procs, -1, -1, procs, req, -1, 1, user, 1, 1, 1, 1, -1, -1]
        lines.append(" ".join(str(f) for f in fields) + "\n")
    path.write_text("".join(lines))
    return path


@pytest.fixture
def small_swf(tmp_path: Path) -> Path:
    rows = []
    for i in range(60):
        run = 50 + (i * 37) % 400
        rows.append((i * 20, run, 1 + (i % 4), run * 2, i % 5))
    rows.append((100, 10, 64, 20, 1))  # larger than the 8-processor machine
    return _swf(tmp_path / "small.swf", rows)


def test_json_has_the_documented_shape_and_skips_oversize(small_swf: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["simulate", "--log", str(small_swf), "--policies", "fifo,sjf,multifactor", "--json"],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["log"] == str(small_swf)
    assert set(doc["policies"]) == {"fifo", "sjf", "multifactor"}
    keys = {"jobs", "avg_jct", "p99_jct", "avg_queue", "p99_queue", "avg_bsld", "utilization"}
    for entry in doc["policies"].values():
        assert set(entry) == keys
        assert entry["jobs"] == 60
        assert entry["avg_jct"] >= entry["avg_queue"] >= 0
    assert "1 larger than their cluster/VC" in result.stderr
    assert doc["policies"]["sjf"]["avg_jct"] <= doc["policies"]["fifo"]["avg_jct"]


def test_unknown_policy_lists_the_known_ones(small_swf: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--log", str(small_swf), "--policies", "fifo,edf"]
    )
    assert result.exit_code == 2
    for name in ("fifo", "sjf", "qssf", "las", "multifactor"):
        assert name in result.stderr


def test_table_and_report_with_oracle_predictions(small_swf: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app,
        [
            "simulate", "--log", str(small_swf), "--policies", "fifo,qssf,las",
            "--predictions", "oracle", "--no-backfill", "--report", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "avg JCT" in result.stdout and "qssf" in result.stdout
    for name in ("report.json", "jct_cdf.png", "queue_length.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["dropped"]["oversize"] == 1 and report["backfill"] is False
    assert set(report["details"]["fifo"]) >= {"p50_jct", "p95_jct", "makespan", "cpu_util"}


def test_qssf_with_causal_predictions(small_swf: Path) -> None:
    pytest.importorskip("predictor.models.duration")
    result = CliRunner().invoke(
        app, ["simulate", "--log", str(small_swf), "--policies", "qssf", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["policies"]["qssf"]["jobs"] == 60


def test_philly_config_is_shipped_with_the_issue_sizes() -> None:
    cluster = load_cluster_config("philly")
    sizes = {p.name: p.nodes for p in cluster.partitions}
    assert sizes == {
        "11cb48": 16, "2869ce": 16, "6214e9": 64, "6c71a0": 32, "7f04ca": 32, "b436b2": 64,
        "e13805": 16, "ed69ec": 8, "103959": 8, "ee9e8c": 64, "0e4a51": 32,
    }  # fmt: skip
    assert {p.gpus_per_node for p in cluster.partitions} == {8}
    assert cluster.window == ("2017-10-01", "2017-11-30")
    with pytest.raises(ValueError, match="philly"):
        load_cluster_config("no-such-cluster")


def test_cluster_file_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"vcs": {"a": 2}, ')
    with pytest.raises(ValueError, match="line 1"):
        load_cluster_config(bad)
    with pytest.raises(ValueError, match="vcs"):
        parse_cluster_config({"gpus_per_node": 8})
    with pytest.raises(ValueError, match="nodes"):
        parse_cluster_config({"gpus_per_node": 8, "vcs": {"a": 0}})


def test_target_load_rule() -> None:
    cluster = parse_cluster_config({"gpus_per_node": 8, "vcs": {"a": 100, "b": 100, "c": 100}})
    day = 86400.0
    jobs = to_canonical(
        pd.DataFrame(
            {
                "vc": ["a", "a", "b", "c"],
                "gpus": [8, 8, 32, 1],
                "run_time": [day, day, 60.0, 60.0],
                "submit_time": [0.0, 0.0, 0.0, 0.0],
            }
        )
    )
    sized = size_for_target_load(cluster, jobs, 0.5, window_s=day)
    nodes = {p.name: p.nodes for p in sized.partitions}
    # a: 16 GPU-days / (0.5 * 1 day * 8) = 4 nodes; b: tiny load but its 32-GPU job needs 4;
    # c: at least one node
    assert nodes == {"a": 4, "b": 4, "c": 1}


def test_window_end_date_is_inclusive() -> None:
    lo, hi = window_bounds("2017-10-01", "2017-11-30")
    assert hi - lo == 61 * 86400
    with pytest.raises(ValueError, match="empty window"):
        window_bounds("2017-10-02", "2017-10-01")


def test_peak_usage_cluster() -> None:
    jobs = to_canonical(
        pd.DataFrame({"cpus": [4, 4, 2], "start_time": [0, 5, 10], "end_time": [10, 20, 30]})
    )
    cluster = from_peak_usage(jobs)
    assert cluster is not None and cluster.partitions[0].nodes == 8  # 4 + 4 at t in [5, 10)


@pytest.fixture
def small_philly(tmp_path: Path) -> Path:
    """A Philly-style CSV: 1-4 GPU jobs on one VC (8-GPU nodes, sized by the load rule)."""
    lines = ["timestamp,duration,num_gpus,gpu_time,cluster"]
    for i in range(80):
        run, gpus = 600 + (i * 397) % 5000, 1 + i % 4
        stamp = pd.Timestamp("2017-10-01") + pd.Timedelta(minutes=7 * i)
        lines.append(f"{stamp:%Y-%m-%d %H:%M:%S},{run},{gpus},{run * gpus},vc1")
    path = tmp_path / "philly.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_colocation_mode_reports_the_slowdown_with_and_without_hints(
    small_philly: Path, data: Path, tmp_path: Path
) -> None:
    docs = {}
    for flag in ("--no-hints", "--hints"):
        result = CliRunner().invoke(
            app,
            ["simulate", "--log", str(small_philly), "--policies", "fifo", "--target-load", "0.7",
             "--colocation", flag, "--json", "--report", str(tmp_path / flag)],
        )  # fmt: skip
        assert (tmp_path / flag / "stretch_cdf.png").stat().st_size > 0
        assert result.exit_code == 0, result.output
        docs[flag] = json.loads(result.stdout)["policies"]["fifo"]
    for entry in docs.values():
        assert entry["jobs"] == 80 and entry["avg_stretch"] >= 1.0
        assert 0.0 <= entry["slowed_15"] <= 1.0
    assert docs["--no-hints"]["avg_stretch"] > 1.0  # best fit packs jobs onto shared nodes


def test_online_predictions_with_rescoring(small_philly: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["simulate", "--log", str(small_philly), "--policies", "qssf,fifo", "--target-load",
         "0.7", "--rescore-interval", "30", "--rescore-features", "submit", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["policies"]["qssf"]["jobs"] == 80


def test_colocation_and_rescoring_flag_errors(small_swf: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--log", str(small_swf), "--hints"])
    assert result.exit_code == 2 and "--hints needs --colocation" in result.stderr
    result = runner.invoke(
        app,
        ["simulate", "--log", str(small_swf), "--predictions", "oracle", "--rescore-interval", "5"],
    )
    assert result.exit_code == 2 and "--predictions online" in result.stderr
