"""``foresight serve`` for real: gunicorn, two workers, loopback, a trained model."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import TOKEN, make_home, trained_home_dir


@pytest.fixture(scope="session")
def trained_home(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_home_dir(data, tmp_path_factory)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(port: int, method: str, path: str, body: object = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read()


@contextlib.contextmanager
def _serving(home: Path, port: int, *options: str) -> Iterator[subprocess.Popen]:
    """``foresight serve`` on ``port`` until the block ends (then SIGTERM, exit 0 checked)."""
    exe = Path(sys.executable).with_name("foresight")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), *options],
        env=dict(os.environ, FORESIGHT_HOME=str(home)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while True:
            try:
                status, _ = _call(port, "GET", "/readyz")
                if status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.time() < deadline, "serve did not become ready"
            time.sleep(0.3)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0


@pytest.mark.timeout(90)
def test_serve_two_workers_end_to_end(trained_home: Path, tmp_path: Path) -> None:
    home = make_home(trained_home, tmp_path / "home")
    port = _free_port()
    with _serving(home, port, "--workers", "2"):
        job = {"user": "alice", "time_limit": 3600, "cpus": 4}
        for _ in range(6):
            status, body = _call(port, "POST", "/v1/jobs/score", job)
            assert status == 200 and json.loads(body)["runtime_s"] > 0
        status, _ = _call(port, "POST", "/v1/models/reload",
                          headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert status == 200
        status, text = _call(port, "GET", "/metrics")
        metrics = text.decode()
        line = 'foresight_http_requests_total{method="POST",route="/v1/jobs/score",status="200"}'
        assert status == 200 and f"{line} 6.0" in metrics  # counted across both workers


@pytest.mark.timeout(90)
def test_kept_alive_connections_share_one_worker(trained_home: Path, tmp_path: Path) -> None:
    """One worker, two threads: a lingering keep-alive connection never starves another.

    The hook's connection keeps its thread between requests (``StickyThreadWorker``);
    a second client's connection and requests are still answered meanwhile, and
    both connections keep working, alternating, and after an idle pause.
    """
    home = make_home(trained_home, tmp_path / "home")
    port = _free_port()
    job = json.dumps({"user": "alice", "time_limit": 3600, "cpus": 4}).encode()
    with _serving(home, port, "--workers", "1", "--threads", "2"):
        hook = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        daemon = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        other = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for round_ in range(3):
            for conn in (hook, hook, daemon, hook, other, daemon):
                conn.request("POST", "/v1/jobs/score", body=job,
                             headers={"Content-Type": "application/json"})  # fmt: skip
                resp = conn.getresponse()
                assert resp.status == 200 and json.loads(resp.read())["runtime_s"] > 0
                assert not resp.will_close  # kept alive, same socket next time
            if round_ == 1:
                time.sleep(0.8)  # longer than the linger: back to the poller, still alive
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        for c in (hook, daemon, other, conn):
            c.close()


@pytest.mark.timeout(90)
def test_kept_alive_scores_answer_like_the_route(trained_home: Path, tmp_path: Path) -> None:
    """Follow-up requests on a kept-alive connection (the worker's plain path) answer exactly
    as the first (gunicorn + Flask): same score, the route's own 400s, other routes, and
    two requests sent at once."""
    home = make_home(trained_home, tmp_path / "home")
    port = _free_port()
    job = {"user": "alice", "time_limit": 3600, "cpus": 4, "submit_time": 1.7e9}
    with _serving(home, port, "--workers", "1", "--threads", "2"):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)

        def ask(*raws: bytes) -> list[tuple[int, dict]]:
            sock.sendall(b"".join(raws))
            out, data = [], b""
            while len(out) < len(raws):
                while b"\r\n\r\n" not in data:
                    data += sock.recv(65536)
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(next(x for x in head.split(b"\r\n")
                                  if x.lower().startswith(b"content-length:"))[15:])  # fmt: skip
                while len(data) < length:
                    data += sock.recv(65536)
                out.append((int(head.split()[1]), json.loads(data[:length])))
                data = data[length:]
            return out

        def post(body: object, path: str = "/v1/jobs/score") -> bytes:
            raw = json.dumps(body).encode()
            return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw  # fmt: skip

        [(status, first)] = ask(post(job))  # a new connection: gunicorn's own path
        assert status == 200
        for _ in range(3):  # kept alive: the plain path
            [(status, again)] = ask(post(job))
            assert status == 200 and again["runtime_s"] == first["runtime_s"]
            assert again["site_factor"] == first["site_factor"]
        [(status, bad)] = ask(post({**job, "cpus": "many"}))
        assert status == 400 and [f["field"] for f in bad["fields"]] == ["cpus"]
        two = ask(post(job), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [s for s, _ in two] == [200, 200] and two[0][1]["runtime_s"] == first["runtime_s"]
        [(status, batch)] = ask(post({"jobs": [job]}, "/v1/jobs/score:batch"))
        # a batch goes through the booster and the vectorised policy: equal up to float32
        assert status == 200
        assert batch["results"][0]["runtime_s"] == pytest.approx(first["runtime_s"], rel=1e-6)
        sock.close()
        status, text = _call(port, "GET", "/metrics")
        line = 'foresight_http_requests_total{method="POST",route="/v1/jobs/score",status="200"}'
        assert f"{line} 5.0" in text.decode()  # the plain path's scores are counted too


@pytest.mark.timeout(120)
def test_train_on_start_trains_and_activates(data: Path, tmp_path: Path) -> None:
    from predictor.config import load_config
    from predictor.registry import ModelRegistry
    from predictor.service.bootstrap import train_default_model

    log = data / "extra" / "alea_hpc2n_subset.swf"  # small real log: quick to train
    cfg = load_config(environ={}, state_dir=tmp_path / "home", default_log=log,
                      train_on_start=True)  # fmt: skip
    version = train_default_model(cfg)
    assert ModelRegistry(cfg.model_dir).active() == version


def test_train_on_start_names_a_missing_log(tmp_path: Path) -> None:
    from predictor.config import load_config
    from predictor.service.bootstrap import BootstrapError, train_default_model

    cfg = load_config(environ={}, state_dir=tmp_path, default_log=tmp_path / "nope.swf")
    with pytest.raises(BootstrapError, match="nope"):
        train_default_model(cfg)
