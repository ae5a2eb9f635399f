"""What job_submit.lua costs Slurm: sbatch throughput and latency, with and without it.

Runs against the dev cluster (``foresight cluster up``) and a ready Foresight
service on 127.0.0.1:8765 (the cluster's service container after ``make demo``,
or ``foresight serve``). Each mode submits N held jobs (``sbatch --hold``, so
scheduling adds no noise) from inside the slurmctld container, timing every
call there, then cancels them:

* ``no_hook``: ``JobSubmitPlugins`` removed and ``scontrol reconfigure`` (the baseline);
* ``hook``: the hook asking the live service;
* ``hanging``: the service replaced by a server that accepts and never answers
  (each call waits for the hook's deadline until the circuit breaker opens);
* ``breaker_open``: the circuit already open (what an outage costs after that).

Prints throughput relative to ``no_hook`` (target >= 0.85), added p99 latency
(target < 5 ms with the service up, < 1 ms with the circuit open), and the
first failures' latency (target: under the configured timeout).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import requests

from slurm_hooks.devcluster import ClusterSpec, DevCluster

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench"
SERVICE = "http://127.0.0.1:8765"
TIMEOUT_MS = 300  # slurm_hooks/job_submit_foresight.conf

# Runs inside the slurmctld container: N timed sbatch calls, then scancel.
SUBMIT = r"""
import json, subprocess, sys, time
n, name = int(sys.argv[1]), sys.argv[2]
lat, ids = [], []
t0 = time.perf_counter()
for _ in range(n):
    s = time.perf_counter()
    out = subprocess.run(["sbatch", "--parsable", "--hold", "-J", name, "-t", "5",
                          "-o", "/dev/null", "--wrap", "true"], capture_output=True, text=True)
    lat.append(time.perf_counter() - s)
    if out.returncode == 0:
        ids.append(out.stdout.strip().split(";")[0])
wall = time.perf_counter() - t0
for i in range(0, len(ids), 500):
    subprocess.run(["scancel", *ids[i:i + 500]])
print(json.dumps({"latency_s": lat, "wall_s": wall, "accepted": len(ids)}))
"""


def ctld(cluster: DevCluster, *argv: str, stdin: str | None = None) -> str:
    return subprocess.run(["docker", "exec", "-i", cluster.name("slurmctld"), *argv],
                          input=stdin, capture_output=True, text=True, check=True).stdout


def set_hook(cluster: DevCluster, enabled: bool) -> None:
    """Add or remove ``JobSubmitPlugins=lua`` in the controller's slurm.conf and reconfigure."""
    conf = ctld(cluster, "cat", "/etc/slurm/slurm.conf")
    lines = [x for x in conf.splitlines() if not x.startswith("JobSubmitPlugins=")]
    if enabled:
        lines.append("JobSubmitPlugins=lua")
    ctld(cluster, "sh", "-c", "cat > /etc/slurm/slurm.conf", stdin="\n".join(lines) + "\n")
    ctld(cluster, "scontrol", "reconfigure")
    time.sleep(3)


def hook_outcomes(cluster: DevCluster, since: float, name: str) -> dict[str, int]:
    """What the hook did for this mode's jobs, from its log lines: scored, failed open, skipped."""
    lines = [x for x in cluster.hook_log(since) if f"name={name} " in x]
    return {
        "scored": sum("site_factor=" in x for x in lines),
        "fail_open": sum("fail-open" in x for x in lines),
        "circuit_open": sum("circuit open" in x for x in lines),
    }


def submit(cluster: DevCluster, n: int, name: str) -> dict:
    since = time.time()
    result = json.loads(ctld(cluster, "python3", "-", str(n), name, stdin=SUBMIT))
    lat = np.array(result["latency_s"]) * 1000
    result.update(
        n=n, rate=n / result["wall_s"], p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)), first_ms=[round(float(x), 2) for x in lat[:5]],
        hook=hook_outcomes(cluster, since, name),
    )
    del result["latency_s"]
    return result


class Hanging:
    """Accepts connections on the service port and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 8765), reuse_port=False)
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                self.conns.append(self.sock.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="sbatch calls per mode")
    args = parser.parse_args()
    cluster = DevCluster(ClusterSpec())
    if not cluster.is_up():
        raise SystemExit("the dev cluster is not up: run `foresight cluster up` first")
    try:
        ready = requests.get(SERVICE + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        ready = False
    if not ready:
        raise SystemExit(f"no ready Foresight service at {SERVICE}: run `make demo` (or "
                         "`foresight train` + `foresight serve`) first")
    service_container = cluster.containers().get(cluster.name("service")) == "running"
    results: dict[str, dict] = {}
    try:
        set_hook(cluster, False)
        results["no_hook"] = submit(cluster, args.n, "bench-nohook")
        set_hook(cluster, True)
        cluster.reload_hook()
        results["hook"] = submit(cluster, args.n, "bench-hook")
        if service_container:
            cluster.stop_service()
            hanging = Hanging()
            try:
                cluster.reload_hook()
                results["hanging"] = submit(cluster, 20, "bench-hang")
                results["breaker_open"] = submit(cluster, args.n, "bench-open")
            finally:
                hanging.close()
                cluster.start_service()
    finally:
        set_hook(cluster, True)
        cluster.reload_hook()
    base = results["no_hook"]
    print(f"{'mode':<14}{'n':>6}{'jobs/s':>9}{'vs no hook':>12}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'added p99':>11}  hook: scored / fail-open / circuit-open")
    for mode, r in results.items():
        h = r["hook"]
        print(f"{mode:<14}{r['n']:>6}{r['rate']:>9.1f}{r['rate'] / base['rate']:>11.2f}x"
              f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['p99_ms'] - base['p99_ms']:>11.2f}"
              f"  {h['scored']} / {h['fail_open']} / {h['circuit_open']}")
    if "hanging" in results:
        print(f"first calls with a hanging service (ms): {results['hanging']['first_ms']} "
              f"(hook timeout {TIMEOUT_MS} ms)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "hooks.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT / 'hooks.json'}")


if __name__ == "__main__":
    main()
