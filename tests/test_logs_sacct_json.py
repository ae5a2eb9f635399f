"""sacct --json reader: the Slurm 22.05 (dbv0.0.38) and 24.11 (data_parser v0.0.41) shapes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from predictor.logs import LogFormatError, iter_log, read_log


def unset() -> dict[str, Any]:
    return {"set": False, "infinite": False, "number": 0}


def num(n: float) -> dict[str, Any]:
    return {"set": True, "infinite": False, "number": n}


def exit_22(status: str, code: int) -> dict[str, Any]:
    return {"status": status, "return_code": code}


def tres(cpu: int, mem: int, node: int, gpus: dict[str, int] | None = None) -> list[dict]:
    items = [
        {"type": "cpu", "name": None, "id": 1, "count": cpu},
        {"type": "mem", "name": None, "id": 2, "count": mem},
        {"type": "node", "name": None, "id": 4, "count": node},
        {"type": "billing", "name": None, "id": 5, "count": cpu},
    ]
    for i, (name, count) in enumerate((gpus or {}).items()):
        items.append({"type": "gres", "name": name, "id": 1001 + i, "count": count})
    return items


def job_22(job_id: int, state: str, submit: int, start: int, end: int, **kw: Any) -> dict:
    """One job as Slurm 22.05's ``sacct --json`` (openapi/dbv0.0.38) writes it."""
    return {
        "account": kw.get("account", "physics"),
        "comment": {"administrator": None, "job": None, "system": None},
        "allocation_nodes": kw.get("nodes", 1),
        "array": {
            "job_id": 0,
            "limits": {"max": {"running": {"tasks": 0}}},
            "task": None,
            "task_id": None,
        },
        "time": {
            "elapsed": max(end - start, 0) if start else 0,
            "eligible": submit,
            "end": end,
            "start": start,
            "submission": submit,
            "suspended": 0,
            "system": {"seconds": 0, "microseconds": 0},
            "total": {"seconds": 0, "microseconds": 0},
            "user": {"seconds": 0, "microseconds": 0},
            "limit": kw.get("limit", 60),
        },
        "association": {"account": "physics", "cluster": "linux", "partition": None, "user": "bob"},
        "cluster": "linux",
        "constraints": "",
        "derived_exit_code": exit_22("SUCCESS", 0),
        "exit_code": kw.get("exit_code", exit_22("SUCCESS", 0)),
        "flags": ["CLEAR_SCHEDULING", "STARTED_ON_SUBMIT"],
        "group": "bob",
        "het": {"job_id": 0, "job_offset": None},
        "job_id": job_id,
        "name": kw.get("name", "sim.sh"),
        "mcs": {"label": ""},
        "nodes": "node[01-02]",
        "partition": kw.get("partition", "debug"),
        "priority": 4294901758,
        "qos": "normal",
        "required": {"CPUs": kw.get("cpus", 4), "memory": 2000},
        "kill_request_user": None,
        "reservation": {"id": 0, "name": 0},
        "state": {"current": state, "reason": "None"},
        "steps": [
            {"step": {"job_id": job_id, "id": f"{job_id}.batch", "name": "batch"}, "state": state}
        ],
        "tres": {
            "allocated": kw.get("alloc", tres(4, 2000, 1)),
            "requested": kw.get("req", tres(4, 2000, 1)),
        },
        "user": kw.get("user", "bob"),
        "wckey": {"wckey": "", "flags": []},
        "working_directory": "/home/bob",
    }


def job_24(job_id: int, states: list[str], submit: int, start: int, end: int, **kw: Any) -> dict:
    """One job as Slurm 24.11's ``sacct --json`` (data_parser/v0.0.41) writes it."""
    code = kw.get("return_code", 0)
    return {
        "account": kw.get("account", "biology"),
        "comment": {"administrator": "", "job": "", "system": ""},
        "allocation_nodes": 1,
        "array": {
            "job_id": 0,
            "limits": {"max": {"running": {"tasks": 0}}},
            "task_id": unset(),
            "task": "",
        },
        "association": {
            "account": "biology",
            "cluster": "hpc",
            "partition": "",
            "user": "rpowers",
            "id": 10,
        },
        "cluster": "hpc",
        "derived_exit_code": {
            "status": ["SUCCESS"],
            "return_code": num(0),
            "signal": {"id": unset(), "name": ""},
        },
        "time": {
            "elapsed": max(end - start, 0),
            "eligible": submit,
            "end": end,
            "planned": num(1),
            "start": start,
            "submission": submit,
            "suspended": 0,
            "system": {"seconds": 0, "microseconds": 0},
            "limit": kw.get("limit", num(30)),
            "total": {"seconds": 0, "microseconds": 0},
            "user": {"seconds": 0, "microseconds": 0},
        },
        "exit_code": {
            "status": ["SUCCESS" if code == 0 else "ERROR"],
            "return_code": num(code),
            "signal": {"id": unset(), "name": ""},
        },
        "extra": "",
        "failed_node": "",
        "flags": ["STARTED_ON_SCHEDULE", "START_RECEIVED"],
        "group": "slurm",
        "het": {"job_id": 0, "job_offset": unset()},
        "job_id": job_id,
        "name": kw.get("name", "allocation"),
        "licenses": "",
        "mcs": {"label": ""},
        "nodes": "ia1",
        "partition": "ia",
        "hold": False,
        "priority": num(545),
        "qos": "normal",
        "required": {"CPUs": 1, "memory_per_cpu": num(512), "memory_per_node": unset()},
        "kill_request_user": "",
        "reservation": {"id": 0, "name": ""},
        "script": "",
        "state": {"current": states, "reason": "None"},
        "steps": [],
        "submit_line": "",
        "tres": {
            "allocated": kw.get("alloc", tres(1, 512, 1, {"gpu:h100": 2, "gpu:h200": 4})),
            "requested": kw.get("req", tres(1, 512, 1, {"gpu:h100": 6})),
        },
        "used_gres": "",
        "user": "rpowers",
        "wckey": {"wckey": "", "flags": []},
        "working_directory": "/home/rpowers",
    }


META_22 = {
    "plugin": {"type": "openapi/dbv0.0.38", "name": "Slurm OpenAPI DB v0.0.38"},
    "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"},
}
META_24 = {
    "plugin": {
        "type": "openapi/slurmdbd",
        "name": "Slurm OpenAPI slurmdbd",
        "data_parser": "data_parser/v0.0.41",
        "accounting_storage": "accounting_storage/slurmdbd",
    },
    "client": {"source": "[admin]:42010(fd:11)", "user": "", "group": ""},
    "command": [],
    "slurm": {
        "version": {"major": "24", "micro": "7", "minor": "11"},
        "release": "24.11.7",
        "cluster": "hpc",
    },
}


def write(tmp_path: Path, doc: Any, name: str = "sacct.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_slurm_22_05_shape(tmp_path: Path) -> None:
    doc = {
        "meta": META_22,
        "errors": [],
        "jobs": [
            job_22(
                101,
                "COMPLETED",
                1_700_000_000,
                1_700_000_060,
                1_700_003_660,
                nodes=2,
                req=tres(8, 16000, 2, {"gpu": 2}),
            ),
            job_22(102, "CANCELLED", 1_700_000_100, 0, 1_700_000_200, limit=1440),
            job_22(
                103,
                "FAILED",
                1_700_000_300,
                1_700_000_300,
                1_700_000_310,
                exit_code=exit_22("FAILED", 3),
                req=[],
                alloc=[],
                cpus=2,
                name="bad",
            ),
        ],
    }
    result = read_log(write(tmp_path, doc))
    assert result.format == "sacct-json" and result.n_errors == 0
    jobs = result.jobs.set_index("job_id")
    one = jobs.loc["101"]
    assert (one["user"], one["account"], one["partition"], one["job_name"]) == (
        "bob",
        "physics",
        "debug",
        "sim.sh",
    )
    assert (one["cpus"], one["gpus"], one["nodes"], one["mem_mb"]) == (8, 2, 2, 16000)
    assert (one["time_limit"], one["wait_time"], one["run_time"]) == (3600, 60, 3600)
    assert (one["state"], one["exit_code"]) == ("COMPLETED", 0)
    two = jobs.loc["102"]
    assert two["state"] == "CANCELLED" and math.isnan(two["start_time"])
    assert math.isnan(two["run_time"]) and two["time_limit"] == 86400
    three = jobs.loc["103"]
    assert (three["state"], three["exit_code"], three["cpus"]) == ("FAILED", 3, 2)
    assert math.isnan(three["gpus"])  # no TRES at all: unknown


def test_slurm_24_11_shape(tmp_path: Path) -> None:
    doc = {
        "jobs": [
            job_24(9617, ["COMPLETED"], 1780298495, 1780298496, 1780298526),
            job_24(
                9618,
                ["TIMEOUT"],
                1780298500,
                1780298600,
                1780300400,
                limit={"set": True, "infinite": True, "number": 0},
                return_code=0,
            ),
            job_24(
                9619,
                ["FAILED", "REQUEUED"],
                1780298501,
                1780298601,
                1780298602,
                limit={"set": True, "infinite": False, "number": 525600},
                return_code=1,
                req=tres(2, 1024, 1),
                alloc=tres(2, 1024, 1),
            ),
        ],
        "meta": META_24,
        "errors": [],
        "warnings": [],
    }
    result = read_log(write(tmp_path, doc), "sacct-json")
    assert result.n_errors == 0
    jobs = result.jobs.set_index("job_id")
    one = jobs.loc["9617"]
    assert (one["gpus"], one["cpus"], one["mem_mb"], one["nodes"]) == (6, 1, 512, 1)
    assert (one["time_limit"], one["run_time"], one["wait_time"]) == (1800, 30, 1)
    assert one["state"] == "COMPLETED" and one["exit_code"] == 0
    assert math.isnan(jobs.loc["9618", "time_limit"])  # infinite limit
    assert math.isnan(jobs.loc["9619", "time_limit"])  # backfill's 365 days: no limit either
    assert jobs.loc["9618", "state"] == "TIMEOUT"
    three = jobs.loc["9619"]
    assert (three["state"], three["exit_code"], three["gpus"]) == ("FAILED", 1, 0)


def test_json_streams_in_chunks_and_reports_bad_jobs(tmp_path: Path) -> None:
    good = [job_24(i, ["COMPLETED"], 1000 + i, 2000 + i, 3000 + i) for i in range(1, 6)]
    bad_order = job_24(7, ["COMPLETED"], 5000, 4000, 4500)  # started before submission
    doc = {"jobs": [*good, {"no": "id"}, bad_order, good[0]], "meta": META_24}
    path = write(tmp_path, doc)
    chunks = list(iter_log(path, chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1, 0]
    result = read_log(path)
    assert len(result.jobs) == 5 and result.n_errors == 3
    reasons = [e.reason for e in result.errors]
    assert "no job_id" in reasons[0]
    assert "start before submit" in reasons[1]
    assert "duplicate job id '1'" in reasons[2]
    text = path.read_text().splitlines()
    for error in result.errors:  # each line number points at the opening brace of its job
        assert text[error.line - 1].strip() == "{"


def test_json_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    doc = json.dumps({"jobs": [job_24(1, ["COMPLETED"], 10, 20, 30)]}, indent=2)
    broken = doc.replace('"job_id": 1,', '"job_id": 1,,')
    path = tmp_path / "broken.json"
    path.write_text(broken)
    line = 1 + broken[: broken.index(",,")].count("\n")
    result = read_log(path)
    assert result.n_errors == 1 and result.errors[0].line == line
    assert "invalid JSON" in result.errors[0].reason
    with pytest.raises(LogFormatError, match=f":{line}: invalid JSON"):
        read_log(path, strict=True)


def test_json_reads_across_buffer_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import predictor.logs.sacct_json as sacct_json

    jobs = [job_22(i, "COMPLETED", 100 * i, 100 * i + 5, 100 * i + 50) for i in range(1, 8)]
    path = write(tmp_path, {"meta": META_22, "errors": [], "jobs": jobs})
    whole = read_log(path)
    monkeypatch.setattr(sacct_json, "READ_CHARS", 7)  # values and numbers split across reads
    pieces = read_log(path)
    assert pieces.jobs.equals(whole.jobs) and len(pieces.jobs) == 7


def test_json_without_jobs_array_or_submission(tmp_path: Path) -> None:
    path = write(tmp_path, {"meta": META_24, "nodes": []})
    with pytest.raises(LogFormatError, match='no "jobs" array'):
        read_log(path, "sacct-json")
    job = job_24(5, ["PENDING"], 100, 0, 0)
    del job["time"]["submission"]
    result = read_log(write(tmp_path, {"jobs": [job]}, "nosubmit.json"))
    assert result.n_errors == 1 and "no time.submission" in result.errors[0].reason


def test_json_line_numbers_survive_buffer_refills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import predictor.logs.sacct_json as sacct_json

    jobs = [job_24(i, ["COMPLETED"], 1000 + i, 2000 + i, 3000 + i) for i in range(1, 6)]
    jobs[2] = {"no": "id"}
    jobs.append(jobs[0])  # duplicate
    path = write(tmp_path, {"jobs": jobs, "meta": META_24})
    expected = read_log(path).errors
    monkeypatch.setattr(sacct_json, "READ_CHARS", 11)
    assert read_log(path).errors == expected
    assert [e.line for e in expected] == sorted({e.line for e in expected})
    text = path.read_text().splitlines()
    assert all(text[e.line - 1].strip() == "{" for e in expected)
