"""job_submit.lua, run by a real Lua 5.1 with lua-socket against a real local HTTP server.

The hook must accept every job unchanged within its deadline when the service is
down, hanging or answering garbage; must stop calling once its breaker opens; and
must only ever exclude nodes that exist, leaving enough to run the job. It keeps
one keep-alive connection across calls (the harness, like slurmctld, keeps one
Lua state), replacing it when the server closed it, never past the deadline.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from slurm_hooks.hook_conf import reserve_ms

HOOK = Path(__file__).resolve().parent.parent / "slurm_hooks" / "job_submit.lua"
HARNESS = Path(__file__).resolve().parent / "lua" / "harness.lua"
LUA = shutil.which("lua5.1")

pytestmark = pytest.mark.skipif(
    LUA is None, reason="lua5.1 with lua-socket/lua-cjson not installed (scripts/bootstrap.sh)"
)

JOB = {
    "user_name": "alice",
    "account": "physics",
    "partition": "gpu",
    "name": "train-resnet",
    "time_limit": 120,
    "min_cpus": 4,
    "min_nodes": 1,
    "tres_per_node": "gres/gpu:2",
}
PARTS = {"gpu": {"name": "gpu", "nodes": "n[1-4]"}}
GOOD = {
    "runtime_s": 3600.0,
    "runtime_interval_s": [1800.0, 7200.0],
    "gpu_time_s": 7200.0,
    "priority": 0.5,
    "site_factor": 4242,
    "model_version": "v7",
    "hints": {"avoid_nodes": ["n2", "zz9"], "prefer_nodes": ["n1"]},
}


class _Service(BaseHTTPRequestHandler):
    mode = "good"
    bodies: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        _Service.bodies.append(json.loads(self.rfile.read(length)))
        if self.mode == "hang":
            threading.Event().wait(5)
            return
        if self.mode == "garbage":
            payload, status = b"<html>not json", 200
        elif self.mode == "error":
            payload, status = b'{"error": "boom"}', 500
        elif self.mode == "invalid":
            payload, status = b'{"error": "bad fields", "fields": []}', 400
        else:
            payload, status = json.dumps(GOOD).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    server.daemon_threads = True
    _Service.mode = "good"
    _Service.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_hook(tmp_path: Path, port: int, calls: int = 1, job: dict | None = None,
             parts: dict | None = None, **conf: object) -> list[dict]:
    settings = {"url": f"http://127.0.0.1:{port}/v1/jobs/score", "timeout_ms": 200, **conf}
    cfg = tmp_path / "hook.conf"
    cfg.write_text("".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n"
                           for k, v in settings.items()))
    out = subprocess.run(
        [LUA, str(HARNESS), str(HOOK), str(calls), json.dumps(job or JOB),
         json.dumps(parts or PARTS)],
        capture_output=True, text=True, timeout=60, check=True,
        env={"FORESIGHT_HOOK_CONF": str(cfg), "PATH": "/usr/bin:/bin"},
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_good_answer_sets_site_factor_comment_and_valid_exclusions(tmp_path, service):
    [res] = run_hook(tmp_path, service.server_port)
    job = res["job"]
    assert res["rc"] == 0
    assert job["site_factor"] == 4242
    assert job["admin_comment"].startswith("foresight:runtime=3600;lo=1800;hi=7200")
    assert "model=v7" in job["admin_comment"]
    assert job["exc_nodes"] == "n2"  # zz9 is no node of the partition: dropped
    assert "hints_dropped=zz9(unknown)" in res["logs"][0]
    sent = _Service.bodies[0]
    assert sent["user"] == "alice" and sent["time_limit"] == 7200 and sent["gpus"] == 2
    assert sent["cpus"] == 4 and sent["nodes"] == 1 and "mem_mb" not in sent


def test_each_decision_logs_the_hooks_total_time(tmp_path, service):
    """total_ms covers the whole decision: at least the round trip, at most the call."""
    _Service.mode = "hang"
    results = run_hook(tmp_path, service.server_port, calls=3, timeout_ms=100,
                       breaker_failures=2)
    lines = [line for res in results for line in res["logs"]]
    totals = [float(re.search(r" total_ms=([\d.]+)$", line).group(1)) for line in lines]
    trips = [float(re.search(r"\(([\d.]+) ms\)", line).group(1)) for line in lines[:2]]
    assert all(t <= res["ms"] for t, res in zip(totals, results, strict=True))
    assert totals[0] >= trips[0] > 50 and totals[1] >= trips[1] > 50  # two timed failures
    assert "circuit open" in lines[2] and totals[2] < 1.0


def test_memory_is_sent_as_the_jobs_total(tmp_path, service):
    run_hook(tmp_path, service.server_port,
             job={**JOB, "min_nodes": 2, "min_mem_per_node": 4000, "tres_per_node": "gpu:1"})
    run_hook(tmp_path, service.server_port, job={**JOB, "min_mem_per_cpu": 1000})
    per_node, per_cpu = _Service.bodies
    assert per_node["mem_mb"] == 8000 and per_node["gpus"] == 2
    assert per_cpu["mem_mb"] == 4000


@pytest.mark.parametrize("mode", ["hang", "garbage", "error"])
def test_bad_service_leaves_job_unchanged_within_timeout(tmp_path, service, mode):
    _Service.mode = mode
    [res] = run_hook(tmp_path, service.server_port, timeout_ms=200)
    assert res["rc"] == 0
    assert res["job"] == JOB
    assert "fail-open" in res["logs"][0]
    assert res["ms"] < 200  # the whole hook, not just its socket work, fits the deadline


def test_service_down_fails_open_and_breaker_opens(tmp_path):
    results = run_hook(tmp_path, _free_port(), calls=5, breaker_failures=3)
    assert all(r["rc"] == 0 and r["job"] == JOB for r in results)
    assert all("fail-open" in r["logs"][0] for r in results[:3])
    assert all("circuit open" in r["logs"][0] for r in results[3:])
    assert max(r["ms"] for r in results[3:]) < 1.0


def test_hanging_service_trips_breaker_then_calls_are_instant(tmp_path, service):
    _Service.mode = "hang"
    results = run_hook(tmp_path, service.server_port, calls=4, timeout_ms=150,
                       breaker_failures=2)
    assert [("circuit open" in r["logs"][0]) for r in results] == [False, False, True, True]
    assert results[-1]["ms"] < 1.0


def test_exclusions_never_leave_too_few_nodes(tmp_path, service):
    GOOD["hints"]["avoid_nodes"] = ["n1", "n2", "n3", "n4"]
    try:
        [res] = run_hook(tmp_path, service.server_port, job={**JOB, "min_nodes": 2})
    finally:
        GOOD["hints"]["avoid_nodes"] = ["n2", "zz9"]
    assert res["job"]["exc_nodes"] == "n1,n2"  # two of four nodes must stay usable


def test_dry_run_changes_nothing_but_logs_the_decision(tmp_path, service):
    [res] = run_hook(tmp_path, service.server_port, dry_run=True)
    assert res["job"] == JOB
    assert res["logs"][0].startswith("foresight: submit user=alice")
    assert "dry-run site_factor=4242" in res["logs"][0]


def test_each_action_can_be_turned_off(tmp_path, service):
    [res] = run_hook(tmp_path, service.server_port, set_site_factor=False, apply_hints=False)
    assert "site_factor" not in res["job"] and "exc_nodes" not in res["job"]
    assert "admin_comment" in res["job"]


def test_hostlist_expansion(tmp_path):
    script = (f'slurm = {{SUCCESS=0, log_info=function() end}}; dofile("{HOOK}"); '
              'local s = foresight_hook.expand_hostlist("n[1-3,7],gpu[08-10],login"); '
              'local t = {}; for k in pairs(s) do t[#t+1] = k end; table.sort(t); '
              'print(table.concat(t, " "))')
    out = subprocess.run([LUA, "-e", script], capture_output=True, text=True, check=True,
                         env={"FORESIGHT_HOOK_CONF": str(tmp_path / "none.conf")})
    assert out.stdout.split() == ["gpu08", "gpu09", "gpu10", "login", "n1", "n2", "n3", "n7"]


def test_the_python_reserve_is_the_lua_hook_s(tmp_path):
    timeouts = [10, 30, 50, 75, 100, 300, 1000, 5000]
    script = (f'slurm = {{SUCCESS=0, log_info=function() end}}; dofile("{HOOK}"); '
              f'for _, t in ipairs({{{",".join(map(str, timeouts))}}}) do '
              'print(string.format("%.6f", foresight_hook.reserve_s(t / 1000) * 1000)) end')
    out = subprocess.run([LUA, "-e", script], capture_output=True, text=True, check=True,
                         env={"FORESIGHT_HOOK_CONF": str(tmp_path / "none.conf")})
    lua = [float(x) for x in out.stdout.split()]
    assert lua == pytest.approx([reserve_ms(t) for t in timeouts])
    assert lua[5] == pytest.approx(60.0) and lua[0] == pytest.approx(5.0)  # 20%; at most half


def test_rejected_fields_fail_open_without_tripping_the_breaker(tmp_path, service):
    _Service.mode = "invalid"
    results = run_hook(tmp_path, service.server_port, calls=4, breaker_failures=2)
    assert all(r["job"] == JOB and "fail-open: HTTP 400" in r["logs"][0] for r in results)
    assert len(_Service.bodies) == 4  # every call still reached the service


def test_job_without_time_limit_uses_the_partition_default(tmp_path, service):
    job = {k: v for k, v in JOB.items() if k != "time_limit"}
    parts = {"gpu": {"name": "gpu", "nodes": "n[1-4]", "default_time": 30, "max_time": 600}}
    [res] = run_hook(tmp_path, service.server_port, job=job, parts=parts)
    assert res["job"]["site_factor"] == 4242
    assert _Service.bodies[0]["time_limit"] == 1800


def test_a_job_naming_several_partitions_uses_them_for_limit_and_hints(tmp_path, service):
    job = {k: v for k, v in JOB.items() if k != "time_limit"} | {"partition": "nosuch,gpu"}
    parts = {"cpu": {"name": "cpu", "nodes": "c[1-2]", "default_time": 5, "flag_default": 1},
             "gpu": {"name": "gpu", "nodes": "n[1-4]", "default_time": 30}}
    [res] = run_hook(tmp_path, service.server_port, job=job, parts=parts)
    assert _Service.bodies[0]["time_limit"] == 1800  # gpu's DefaultTime, not the default cpu's
    assert res["job"]["exc_nodes"] == "n2"  # n2 is a gpu node; zz9 is nobody's


class RawService:
    """An HTTP/1.1 keep-alive server on raw sockets whose answer to each request is scripted.

    Actions, by request number (then ``ok``): ``ok`` (keep-alive answer), ``ok_close``
    (answer, then close the connection without saying so), ``drop`` (close without
    answering), ``hang`` (never answer), ``chunked`` (chunked transfer encoding).
    """

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[dict] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(buf) < length:
                    buf += conn.recv(65536)
                self.requests.append(json.loads(buf[:length]))
                buf = buf[length:]
                n = len(self.requests) - 1
                action = self.script[n] if n < len(self.script) else "ok"
                if action == "drop":
                    return
                if action == "hang":
                    threading.Event().wait(5)
                    return
                payload = json.dumps(GOOD).encode()
                if action == "chunked":
                    half = len(payload) // 2
                    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p)
                                    for p in (payload[:half], payload[half:])) + b"0\r\n\r\n"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
                if action == "ok_close":
                    return

    def close(self) -> None:
        self.sock.close()


def _connection_of(res: dict) -> str:
    return re.search(r"conn=(\w+)", res["logs"][0]).group(1)


def test_one_connection_is_kept_across_calls(tmp_path):
    server = RawService([])
    results = run_hook(tmp_path, server.port, calls=5)
    server.close()
    assert all(r["job"]["site_factor"] == 4242 for r in results)
    assert server.connections == 1 and len(server.requests) == 5
    assert [_connection_of(r) for r in results] == ["new"] + ["reused"] * 4


def test_a_connection_the_server_closed_while_idle_is_replaced_before_sending(tmp_path):
    server = RawService(["ok_close", "ok_close", "ok"])
    results = run_hook(tmp_path, server.port, calls=3)
    server.close()
    assert all(r["job"]["site_factor"] == 4242 for r in results)
    assert server.connections == 3 and len(server.requests) == 3  # nothing sent into a dead socket
    assert [_connection_of(r) for r in results] == ["new", "new", "new"]


def test_a_connection_closed_under_a_request_is_retried_once_within_the_call(tmp_path):
    server = RawService(["ok", "drop", "ok"])  # the 2nd request's connection dies unanswered
    results = run_hook(tmp_path, server.port, calls=2)
    server.close()
    assert all(r["job"]["site_factor"] == 4242 for r in results)
    assert server.connections == 2 and len(server.requests) == 3
    assert all(r["ms"] < 200 for r in results)


def test_a_fresh_connection_that_fails_is_not_retried(tmp_path):
    server = RawService(["drop"])
    [res] = run_hook(tmp_path, server.port, calls=1)
    server.close()
    assert res["job"] == JOB and "fail-open: receive: closed" in res["logs"][0]
    assert len(server.requests) == 1


def test_a_hang_on_a_reused_connection_fails_open_in_time_then_reconnects(tmp_path):
    server = RawService(["ok", "hang", "ok"])
    results = run_hook(tmp_path, server.port, calls=3, timeout_ms=150)
    server.close()
    ok1, hung, ok2 = results
    assert ok1["job"]["site_factor"] == 4242 and ok2["job"]["site_factor"] == 4242
    assert hung["job"] == JOB and "fail-open: receive: timeout" in hung["logs"][0]
    assert hung["ms"] < 150
    assert _connection_of(ok2) == "new" and server.connections == 2


def test_a_chunked_answer_is_read(tmp_path):
    server = RawService(["chunked", "chunked"])
    results = run_hook(tmp_path, server.port, calls=2)
    server.close()
    assert [r["job"]["site_factor"] for r in results] == [4242, 4242]
    assert server.connections == 1
