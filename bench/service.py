"""Benchmark of the prediction service: ``python -m bench.service``.

1. trains a real duration model (``--log``, default the KTH SP2 log) into a
   temporary ``FORESIGHT_HOME``;
2. measures in-process where one score's time goes (parse, features, model,
   policy, JSON), the score's CPU through the WSGI fast path against the
   Flask route (interleaved), and the in-process batch of 10,000 jobs;
3. starts ``foresight serve`` (gunicorn, 127.0.0.1, a free port) and drives it
   from a second process over keep-alive connections (a minimal raw-socket
   HTTP/1.1 client, so the client's own CPU stays small): the
   ``/healthz`` round trip (baseline), ``/v1/jobs/score`` at a fixed open-loop
   rate (latency counted from each request's scheduled send time, so queueing
   is not hidden), a closed-loop saturation run (maximum sustained rate), the
   10,000-job batch over HTTP, and each worker's RSS;
4. prints the numbers, ratios to the baseline and the targets, and writes
   ``out/bench/service.json`` and ``out/bench/service.png``.

``--hints`` instead measures placement hints inside ``/v1/jobs/score`` in
process (:func:`hint_bench`): the real duration model, the real interference
model (XGBoost on the Lucid data), Lucid solo profiles for the running and the
new jobs, and a node snapshot of N nodes x 8 running jobs; the same score
route with hints off is the baseline. Writes ``out/bench/service_hints.json``
and ``.png``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from predictor.state import PROJECT_ROOT, data_dir

TARGETS = {"p50_ms": 2.0, "p99_ms": 10.0, "batch_10k_s": 1.0, "worker_rss_mb": 300.0}
OUT_DIR = PROJECT_ROOT / "out" / "bench"


# --- workload ---------------------------------------------------------------
def job_bodies(log: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` realistic job descriptors from the tail of a real log (as job_submit sends them)."""
    from predictor.logs import read_log

    jobs = read_log(log).jobs
    tail = jobs.tail(max(n, 2000)).sample(n=n, replace=n > len(jobs), random_state=seed)
    now = time.time()
    bodies = []
    for row in tail.itertuples(index=False):
        body: dict[str, Any] = {
            "user": row.user or "u0",
            "account": row.account,
            "partition": row.partition,
            "qos": row.qos,
            "name": row.job_name,
            "time_limit": float(row.time_limit) if row.time_limit > 0 else 3600.0,
            "cpus": int(max(row.cpus, 1)) if np.isfinite(row.cpus) else 1,
            "nodes": int(row.nodes) if np.isfinite(row.nodes) and row.nodes >= 1 else 1,
            "submit_time": now,
        }
        if np.isfinite(row.gpus) and row.gpus > 0:
            body["gpus"] = int(row.gpus)
        if np.isfinite(row.mem_mb):
            body["mem_mb"] = float(row.mem_mb)
        bodies.append(body)
    return bodies


# --- client side (runs in a second process) ----------------------------------
class RawClient:
    """A minimal keep-alive HTTP/1.1 client over one socket (pre-built requests, cheap CPU).

    ``http.client`` costs several times more CPU per request; on a 2-core
    machine shared with the server that CPU would be measured as server latency.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    @staticmethod
    def build(method: str, path: str, body: bytes | None = None) -> bytes:
        """The bytes of one request."""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if body is None:
            return (head + "\r\n").encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    def roundtrip(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, read one response; returns (status, body)."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        while len(rest) < length:
            self.buf = rest
            self._fill()
            rest = self.buf
        self.buf = rest[length:]
        return status, rest[:length]

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def _open_loop(port: int, requests: list[bytes], rate: float, seconds: float) -> dict:
    """One connection sending at ``rate``/s; latency measured from the scheduled send time."""
    client = RawClient(port)
    n = int(rate * seconds)
    lat, service = np.empty(n), np.empty(n)
    errors = 0
    start = time.perf_counter() + 0.05
    for i in range(n):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent = time.perf_counter()
        status, _ = client.roundtrip(requests[i % len(requests)])
        errors += status != 200
        done = time.perf_counter()
        lat[i], service[i] = done - due, done - sent
    elapsed = time.perf_counter() - start
    client.close()
    return {"lat": lat.tolist(), "service": service.tolist(), "errors": errors,
            "achieved": n / elapsed}  # fmt: skip


def _closed_loop(port: int, requests: list[bytes], seconds: float) -> dict:
    """One connection sending back-to-back for ``seconds``."""
    client = RawClient(port)
    lat, errors = [], 0
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        errors += client.roundtrip(requests[i % len(requests)])[0] != 200
        lat.append(time.perf_counter() - t0)
        i += 1
    client.close()
    return {"lat": lat, "errors": errors, "count": i}


def _client_worker(kind: str, args: tuple, out: Any) -> None:
    fn = {"open": _open_loop, "closed": _closed_loop}[kind]
    out.send(fn(*args))
    out.close()


def run_clients(kind: str, per_client_args: list[tuple]) -> list[dict]:
    """Run one client process per args tuple (spawned: a clean second process)."""
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for args in per_client_args:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client_worker, args=(kind, args, send))
        proc.start()
        pipes.append(recv)
        procs.append(proc)
    results = [p.recv() for p in pipes]
    for proc in procs:
        proc.join()
    return results


def pct(values: list[float] | np.ndarray, q: float) -> float:
    """Percentile in milliseconds."""
    return float(np.percentile(np.asarray(values) * 1e3, q))


# --- server side --------------------------------------------------------------
def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int, workers: int) -> subprocess.Popen:
    """``foresight serve`` in the background; returns once ``/readyz`` answers 200."""
    env = dict(os.environ, FORESIGHT_HOME=str(home))
    exe = Path(sys.executable).with_name("foresight")
    cmd = [str(exe), "serve", "--port", str(port), "--workers", str(workers)]
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"foresight serve exited: {(home / 'serve.log').read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("foresight serve did not become ready in 120 s")


def _children(master_pid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(master_pid):
            pids.append(int(stat.parent.name))
    return pids


def workers_cpu_s(master_pid: int) -> float:
    """CPU seconds (user + system) used so far by all gunicorn workers of ``master_pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _children(master_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def worker_rss_mb(master_pid: int) -> list[float]:
    """RSS of each gunicorn worker (children of the master), MB."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(master_pid):
            out.append(int(fields["VmRSS"].split()[0]) / 1024)
    return out


# --- in-process breakdown -----------------------------------------------------
def breakdown(home: Path, bodies: list[dict[str, Any]], n: int) -> dict[str, float]:
    """Median microseconds per stage of one score, measured in this process."""
    from predictor.config import load_config
    from predictor.service import create_app
    from predictor.service.app import freeze_long_lived_objects
    from predictor.service.schemas import JobDescriptor, ScoreResult
    from predictor.service.scoring import StageTimes, pending_row

    app = create_app(load_config(environ={}, state_dir=home), watch=False)
    freeze_long_lived_objects()  # as each gunicorn worker does after start-up
    service = app.extensions["foresight"]
    loaded = service.slot.current
    raw = [json.dumps(b).encode() for b in bodies]
    stages: dict[str, list[float]] = {k: [] for k in ("parse", "features", "model", "policy",
                                                       "json", "route_total")}  # fmt: skip
    client = app.test_client()
    for i in range(n):
        body = raw[i % len(raw)]
        t0 = time.perf_counter()
        job = JobDescriptor.model_validate_json(body)
        row = pending_row(job, time.time())
        t1 = time.perf_counter()
        times = StageTimes()
        s = service.scorer.score_row(loaded, row, service.history.store, time.time(), times=times)
        t2 = time.perf_counter()
        ScoreResult(
            runtime_s=float(s.runtime[0]), runtime_interval_s=[float(s.lo[0]), float(s.hi[0])],
            gpu_time_s=float(s.gpu_time[0]), priority=float(s.priority[0]),
            site_factor=int(s.site_factor[0]), policy="qssf", model_version=loaded.version,
        ).model_dump_json()  # fmt: skip
        t3 = time.perf_counter()
        stages["parse"].append(t1 - t0)
        stages["features"].append(times.features)
        stages["model"].append(times.model)
        stages["policy"].append(times.policy)
        stages["json"].append(t3 - t2)
        t4 = time.perf_counter()
        client.post("/v1/jobs/score", data=body, content_type="application/json")
        stages["route_total"].append(time.perf_counter() - t4)
    result = {k: statistics.median(v) * 1e6 for k, v in stages.items()}
    result.update(wsgi_cpu(app, raw, n))
    batch = json.dumps({"jobs": (bodies * (10_000 // len(bodies) + 1))[:10_000]}).encode()
    batch_times, batch_cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        resp = client.post("/v1/jobs/score:batch", data=batch, content_type="application/json")
        batch_times.append(time.perf_counter() - t0)
        batch_cpu.append(time.process_time() - c0)
        assert resp.status_code == 200, resp.get_data()[:300]
    result["batch_10k_inprocess_s"] = min(batch_times)
    result["batch_10k_inprocess_cpu_s"] = min(batch_cpu)
    service.history.close()
    return result


def wsgi_cpu(app: Any, raw: list[bytes], n: int) -> dict[str, float]:
    """Thread-CPU µs (median) of one score through the WSGI fast path and through Flask.

    Calls both WSGI callables directly with the same prepared request, interleaved
    (``app.wsgi_app`` is :class:`~predictor.service.fast_path.ScoreFastPath`, whose
    ``wsgi_app`` is Flask's own), so the ratio is what the fast path saves.
    """
    import io

    paths = {"wsgi_fast_path": app.wsgi_app, "wsgi_flask_route": app.wsgi_app.wsgi_app}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    for i in range(n):
        body = raw[i % len(raw)]
        for name, wsgi in paths.items() if i % 2 else reversed(paths.items()):
            environ = {
                "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/jobs/score", "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr, "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(body)),
            }  # fmt: skip
            c0 = time.thread_time()
            b"".join(wsgi(environ, lambda *_: None))
            cpu[name].append(time.thread_time() - c0)
    return {k: statistics.median(v) * 1e6 for k, v in cpu.items()}


# --- placement hints ------------------------------------------------------------
class StaticSlurm:
    """A node snapshot source with fixed contents (the adapter's ``queue``/``nodes``/``run``)."""

    def __init__(self, jobs: list[dict[str, Any]], nodes: list[Any]) -> None:
        self.jobs, self._nodes = jobs, nodes

    def queue(self, *, states: Any = ("RUNNING",), **_: Any) -> Any:
        import pandas as pd

        return pd.DataFrame([{**j, "state": "RUNNING"} for j in self.jobs])

    def nodes(self) -> list[Any]:
        return self._nodes

    def run(self, argv: list[str], *, check: bool = True) -> str:
        raise RuntimeError(f"no Slurm in the benchmark ({argv})")


def hint_bench(home: Path, bodies: list[dict[str, Any]], n: int, nodes: int,
               per_node: int = 8) -> dict[str, Any]:  # fmt: skip
    """Hint cost inside /v1/jobs/score: ``nodes`` nodes x ``per_node`` running jobs.

    Every request is a different (user, job name) with its own explicit profile, so
    each one misses the per-snapshot cache (the worst case); a second pass repeats
    the keys (hits). Returns wall and thread-CPU percentiles in ms, and the score
    route's round trip with hints on and off (the baseline).
    """
    from predictor.config import load_config
    from predictor.interference.evaluation import load_lucid_profiles
    from predictor.models.interference import default_model
    from predictor.service import create_app
    from predictor.service.app import freeze_long_lived_objects
    from slurm_hooks.slurm_adapter import NodeInfo

    t0 = time.perf_counter()
    model = default_model()
    model_s = time.perf_counter() - t0
    lucid = load_lucid_profiles(data_dir() / "interference" / "lucid_single_data.csv")
    profiles = lucid.drop(columns=["model_family"]).to_dict("records")
    clean = [{k: v for k, v in p.items() if v is not None and v == v} for p in profiles]
    names = [f"n{i:03d}" for i in range(nodes)]
    jobs = [{"job_id": str(1000 + i), "user": f"r{i}", "account": "a", "job_name": "run",
             "node_list": names[i // per_node]} for i in range(nodes * per_node)]  # fmt: skip
    slurm = StaticSlurm(jobs, [NodeInfo(name, "MIXED", (), 64, 8, 8, (), ("gpu",))
                               for name in names])  # fmt: skip
    config = load_config(environ={}, state_dir=home)
    off = create_app(config, watch=False).test_client()
    app = create_app(config, watch=False, slurm=slurm, interference_model=model)
    service = app.extensions["foresight"]
    rng = np.random.default_rng(0)
    for job in jobs:
        service.profiles.post(job["user"], "run", clean[int(rng.integers(len(clean)))])
    reqs = []
    for i in range(n):
        body = {**bodies[i % len(bodies)], "user": f"u{i}", "name": "train", "partition": "gpu"}
        service.profiles.post(body["user"], "train", clean[int(rng.integers(len(clean)))])
        reqs.append(body)
    service.placement.refresh()
    freeze_long_lived_objects()
    on = app.test_client()
    placement = service.placement
    out: dict[str, Any] = {"nodes": nodes, "per_node": per_node, "n": n,
                           "interference_model": model.kind, "model_load_s": model_s}  # fmt: skip
    for label in ("miss", "hit"):
        if label == "miss":
            placement.forget_cached()
        wall, cpu, statuses = [], [], set()
        for body in reqs:
            w0, c0 = time.perf_counter(), time.thread_time()
            hints = placement.hints(body["user"], body["name"], body["account"],
                                    body["partition"], 1)  # fmt: skip
            cpu.append(time.thread_time() - c0)
            wall.append(time.perf_counter() - w0)
            statuses.add(hints.status if hints else None)
        out[label] = {"wall_p50_ms": pct(wall, 50), "wall_p99_ms": pct(wall, 99),
                      "cpu_p50_ms": pct(cpu, 50), "cpu_p99_ms": pct(cpu, 99),
                      "statuses": sorted(map(str, statuses)), "_wall": wall}  # fmt: skip
    placement.forget_cached()
    timed: dict[str, tuple[list[float], list[float]]] = {
        "score_hints_off": ([], []), "score_hints_on": ([], [])
    }  # fmt: skip
    for body in reqs:  # interleaved, so both see the same machine load
        for label, client in (("score_hints_off", off), ("score_hints_on", on)):
            w0, c0 = time.perf_counter(), time.thread_time()
            resp = client.post("/v1/jobs/score", json=body)
            timed[label][1].append(time.thread_time() - c0)
            timed[label][0].append(time.perf_counter() - w0)
            if resp.status_code != 200:
                raise RuntimeError(f"score answered {resp.status_code}: {resp.get_data()[:300]!r}")
    for label, (wall, cpu) in timed.items():
        out[label] = {"wall_p50_ms": pct(wall, 50), "wall_p99_ms": pct(wall, 99),
                      "cpu_p50_ms": pct(cpu, 50), "cpu_p99_ms": pct(cpu, 99)}  # fmt: skip
    out["loadavg_1m"] = os.getloadavg()[0]
    return out


def hints_main(args: argparse.Namespace) -> None:
    """``--hints``: train the duration model, then :func:`hint_bench` for 1 and 16 nodes."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    results = []
    with tempfile.TemporaryDirectory(prefix="foresight-bench-") as tmp:
        home = Path(tmp)
        with console.status("training a duration model on the real log"):
            version = train_model(home, args.log)
        bodies = job_bodies(args.log, 500)
        for nodes in args.hint_nodes:
            with console.status(f"hints: {nodes} node(s) x 8 running jobs, {args.hint_n} requests"):
                results.append(hint_bench(home, bodies, args.hint_n, nodes))
    table = Table(title=f"placement hints inside /v1/jobs/score (model {version}, in process)")
    for col in ("nodes x jobs", "measure", "wall p50 / p99 ms", "thread CPU p50 / p99 ms",
                "vs baseline"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in results:
        base = r["score_hints_off"]
        for key, name in (("miss", "hint, cache miss"), ("hit", "hint, cache hit"),
                          ("score_hints_off", "score, hints off (baseline)"),
                          ("score_hints_on", "score, hints on (misses)")):  # fmt: skip
            m = r[key]
            ratio = f"{m['wall_p50_ms'] / base['wall_p50_ms']:.2f}x p50 wall" if key.startswith(
                "score") else "target p99 < 2 ms"  # fmt: skip
            table.add_row(f"{r['nodes']} x {r['per_node']}", name,
                          f"{m['wall_p50_ms']:.3f} / {m['wall_p99_ms']:.3f}",
                          f"{m['cpu_p50_ms']:.3f} / {m['cpu_p99_ms']:.3f}", ratio)  # fmt: skip
    console.print(table)
    console.print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on "
                  f"{os.cpu_count()} CPUs; interference model: {results[0]['interference_model']}"
                  f" (loaded in {results[0]['model_load_s']:.1f} s)")  # fmt: skip
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        for key in ("miss", "hit"):
            ms = np.sort(np.asarray(r[key].pop("_wall")) * 1e3)
            ax.plot(ms, np.arange(1, len(ms) + 1) / len(ms),
                    label=f"{r['nodes']} x {r['per_node']} jobs, {key}")  # fmt: skip
    ax.axvline(2.0, ls="--", c="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("hint time inside /v1/jobs/score, ms (wall)")
    ax.set_ylabel("fraction of requests")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT_DIR / "service_hints.png", dpi=120)
    plt.close(fig)
    (OUT_DIR / "service_hints.json").write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {OUT_DIR / 'service_hints.json'} and {OUT_DIR / 'service_hints.png'}")


# --- model --------------------------------------------------------------------
def train_model(home: Path, log: Path) -> str:
    """Train and activate a real model in ``home`` (the duration engineer's ``foresight train``)."""
    env = dict(os.environ, FORESIGHT_HOME=str(home))
    exe = Path(sys.executable).with_name("foresight")
    subprocess.run([str(exe), "train", "--log", str(log)], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    from predictor.registry import ModelRegistry

    version = ModelRegistry(home / "models").active()
    if version is None:
        raise RuntimeError("foresight train left no active model")
    return version


# --- report -------------------------------------------------------------------
def plot(path: Path, open_lat: np.ndarray, base_lat: np.ndarray, rate: float) -> None:
    """Latency CDFs of /v1/jobs/score at ``rate`` and of the /healthz baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for lat, label in (
        (base_lat, "/healthz (baseline)"),
        (open_lat, f"/v1/jobs/score @ {rate:g}/s"),
    ):
        ms = np.sort(lat * 1e3)
        ax.plot(ms, np.arange(1, len(ms) + 1) / len(ms), label=label)
    for q, name in ((TARGETS["p50_ms"], "p50 target"), (TARGETS["p99_ms"], "p99 target")):
        ax.axvline(q, ls="--", c="grey", lw=0.8)
        ax.text(q, 0.02, name, rotation=90, fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (from scheduled send time)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("foresight serve on loopback")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--log", type=Path, default=data_dir() / "hpc_swf/KTH-SP2-1996-2.1-cln.swf.gz"
    )
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="open-loop duration")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2, help="client connections (processes)")
    parser.add_argument(
        "--hints", action="store_true", help="measure placement hints inside /v1/jobs/score instead"
    )
    parser.add_argument("--hint-n", type=int, default=2000, help="requests per hint scenario")
    parser.add_argument("--hint-nodes", type=int, nargs="+", default=[1, 16],
                        help="node counts (x 8 running jobs each)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.hints:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # as `foresight serve` sets for workers
        hints_main(args)
        return

    from rich.console import Console

    console = Console()
    with tempfile.TemporaryDirectory(prefix="foresight-bench-") as tmp:
        home = Path(tmp)
        with console.status("training a model on the real log"):
            t0 = time.perf_counter()
            version = train_model(home, args.log)
            train_s = time.perf_counter() - t0
        console.print(f"model {version} trained on {args.log.name} in {train_s:.1f} s")
        bodies = job_bodies(args.log, 2000)
        raw = [json.dumps(b).encode() for b in bodies]
        with console.status("in-process breakdown"):
            stages = breakdown(home, bodies, 2000)
        port = free_port()
        with console.status("starting foresight serve"):
            server = start_server(home, port, args.workers)
        try:
            results = _drive(console, server, port, raw, bodies, args)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    results.update(stages=stages, model_version=version, train_s=train_s, log=str(args.log))
    _report(console, results, args)


def _drive(console: Any, server: subprocess.Popen, port: int, raw: list[bytes],
           bodies: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    per = args.rate / args.clients
    health = [RawClient.build("GET", "/healthz")]
    scores = [RawClient.build("POST", "/v1/jobs/score", body) for body in raw]
    with console.status("baseline: /healthz"):
        cpu0 = workers_cpu_s(server.pid)
        base = run_clients("open", [(port, health, per, args.seconds / 2)] * args.clients)
        base_cpu = workers_cpu_s(server.pid) - cpu0
    with console.status(f"/v1/jobs/score at {args.rate:g}/s for {args.seconds:g} s"):
        chunks = [scores[i :: args.clients] for i in range(args.clients)]
        cpu0 = workers_cpu_s(server.pid)
        score = run_clients("open", [(port, c, per, args.seconds) for c in chunks])
        score_cpu = workers_cpu_s(server.pid) - cpu0
    with console.status("saturation (closed loop, 4 connections, 5 s)"):
        sat = run_clients("closed", [(port, scores, 5.0)] * 4)
    batch = RawClient.build(
        "POST", "/v1/jobs/score:batch", json.dumps({"jobs": (bodies * 5)[:10_000]}).encode()
    )
    client = RawClient(port)
    batch_times, batch_cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), workers_cpu_s(server.pid)
        status, answer = client.roundtrip(batch)
        batch_times.append(time.perf_counter() - t0)
        batch_cpu.append(workers_cpu_s(server.pid) - c0)
        if status != 200:
            raise RuntimeError(f"batch answered {status}: {answer[:300]!r}")
    client.close()
    rss = worker_rss_mb(server.pid)
    base_lat = np.concatenate([np.asarray(r["lat"]) for r in base])
    open_lat = np.concatenate([np.asarray(r["lat"]) for r in score])
    sat_count = sum(r["count"] for r in sat)
    return {
        "baseline_p50_ms": pct(base_lat, 50), "baseline_p99_ms": pct(base_lat, 99),
        "p50_ms": pct(open_lat, 50), "p99_ms": pct(open_lat, 99), "p999_ms": pct(open_lat, 99.9),
        "service_p50_ms": pct(np.concatenate([r["service"] for r in score]), 50),
        "service_p99_ms": pct(np.concatenate([r["service"] for r in score]), 99),
        "loadavg_1m": os.getloadavg()[0],
        "offered_rate": args.rate, "achieved_rate": sum(r["achieved"] for r in score),
        "errors": sum(r["errors"] for r in score) + sum(r["errors"] for r in sat),
        "max_sustained_rate": sat_count / 5.0,
        "saturated_p50_ms": pct(np.concatenate([r["lat"] for r in sat]), 50),
        "batch_10k_s": min(batch_times), "batch_10k_server_cpu_s": min(batch_cpu),
        "worker_rss_mb": rss,
        "server_cpu_per_score_ms": score_cpu / max(len(open_lat), 1) * 1e3,
        "server_cpu_per_healthz_ms": base_cpu / max(len(base_lat), 1) * 1e3,
        "_lat": (open_lat, base_lat),
    }  # fmt: skip


def _report(console: Any, r: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.table import Table

    open_lat, base_lat = r.pop("_lat")
    st = r["stages"]
    table = Table(title=f"foresight serve, {args.workers} workers, loopback, {os.cpu_count()} CPUs")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("vs baseline / target", justify="right")
    b50 = r["baseline_p50_ms"]
    idle_rate = (os.cpu_count() or 1) / max(r["server_cpu_per_score_ms"], 1e-9) * 1e3
    rss = max(r["worker_rss_mb"]) if r["worker_rss_mb"] else float("nan")
    rows = [
        ("/healthz p50 (baseline)", f"{b50:.2f} ms", "1.00x"),
        (f"score p50 @ {r['offered_rate']:g}/s", f"{r['p50_ms']:.2f} ms",
         f"{r['p50_ms'] / b50:.2f}x base; target < {TARGETS['p50_ms']:g} ms"),
        (f"score p99 @ {r['offered_rate']:g}/s", f"{r['p99_ms']:.2f} ms",
         f"{r['p99_ms'] / r['baseline_p99_ms']:.2f}x base p99; target < {TARGETS['p99_ms']:g} ms"),
        ("score p99.9", f"{r['p999_ms']:.2f} ms", ""),
        ("score send->answer p50 / p99",
         f"{r['service_p50_ms']:.2f} / {r['service_p99_ms']:.2f} ms", "excludes client lateness"),
        ("machine load average (1 min)", f"{r['loadavg_1m']:.1f}", f"{os.cpu_count()} CPUs"),
        ("achieved rate", f"{r['achieved_rate']:.0f}/s", f"offered {r['offered_rate']:g}/s"),
        ("max sustained rate (closed loop, 4 conns)", f"{r['max_sustained_rate']:.0f}/s",
         f"p50 {r['saturated_p50_ms']:.2f} ms"),
        ("server CPU per score (workers' utime+stime)", f"{r['server_cpu_per_score_ms']:.2f} ms",
         f"{r['server_cpu_per_score_ms'] / r['server_cpu_per_healthz_ms']:.2f}x healthz "
         f"({r['server_cpu_per_healthz_ms']:.2f} ms); ~{idle_rate:.0f}/s on idle cores"),
        ("batch 10,000 jobs over HTTP (wall)", f"{r['batch_10k_s']:.3f} s",
         f"target < {TARGETS['batch_10k_s']:g} s"),
        ("batch 10,000 jobs over HTTP (server CPU)", f"{r['batch_10k_server_cpu_s']:.3f} s",
         "wall time on an idle core"),
        ("batch 10,000 jobs in-process (wall / CPU)",
         f"{st['batch_10k_inprocess_s']:.3f} / {st['batch_10k_inprocess_cpu_s']:.3f} s", ""),
        ("worker RSS (max)", f"{rss:.0f} MB", f"target < {TARGETS['worker_rss_mb']:g} MB"),
        ("errors (non-200)", str(r["errors"]), ""),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    route_total = st["route_total"]
    parts = Table(title="one score in-process, median µs (where the time goes)")
    for col in ("stage", "µs", "share of the test client's round trip"):
        parts.add_column(col, justify="right")
    for key in ("parse", "features", "model", "policy", "json", "route_total"):
        parts.add_row(key, f"{st[key]:.0f}", f"{st[key] / route_total:.0%}")
    parts.add_row("WSGI fast path (thread CPU)", f"{st['wsgi_fast_path']:.0f}",
                  f"{st['wsgi_fast_path'] / st['wsgi_flask_route']:.2f}x the Flask route")
    parts.add_row("WSGI Flask route (thread CPU)", f"{st['wsgi_flask_route']:.0f}", "1.00x")
    console.print(parts)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "service.json").write_text(json.dumps(r, indent=2, default=float) + "\n")
    plot(OUT_DIR / "service.png", open_lat, base_lat, r["offered_rate"])
    console.print(f"wrote {OUT_DIR / 'service.json'} and {OUT_DIR / 'service.png'}")


if __name__ == "__main__":
    main()
