"""What job_submit.lua costs Slurm: sbatch throughput and latency, with and without it.

Runs against the dev cluster (``foresight cluster up``; wrap the command in
``flock /tmp/foresight-cluster.lock`` when the cluster is shared). The service
is the one answering ready on 127.0.0.1:8765 (the cluster's service container
after ``make demo``, or any ``foresight serve``); when none is ready, this
benchmark trains a model on the KTH SP2 log into a temporary ``FORESIGHT_HOME``
and runs ``foresight serve`` itself (default 2 workers x 2 threads), stopping
it at the end (a service container without a model is paused meanwhile).

Each mode submits held jobs (``sbatch --hold``, so scheduling adds no noise)
from inside the slurmctld container, timing every call there, then cancels them:

* ``no_hook``: ``JobSubmitPlugins`` removed and ``scontrol reconfigure`` (the baseline);
* ``empty_lua``: Slurm's job_submit/lua plugin running a script that does nothing
  (what any Lua hook costs before its first line; "hook vs empty" is then what
  Foresight's script adds on top of it);
* ``hook``: the hook asking the live service;
* ``breaker_open``: the service replaced by a server that accepts and never
  answers, the circuit already open (what an outage costs after the first failures);
* ``first_failures``: the calls that open the circuit (each waits for the hook's deadline).

The machine is shared and its load drifts, so the modes are measured in
**interleaved rounds** (no_hook/hook, then hook/no_hook, ...; the same for
no_hook/breaker_open), and every difference comes with a 95% bootstrap
confidence interval (rounds, then calls within them, resampled). The hook also logs its
time per call in slurmctld's log: the round trip to the service (``(x ms)``) and
``total_ms``, all of the time slurmctld spent in Foresight's code for that
submission (the column "hook total"), a precise measure of what it adds there; the
sbatch-level difference includes everything (Slurm's Lua plugin too) but carries
sbatch's noise.

``--parallel P`` keeps P ``sbatch`` calls in flight at once (a burst from
several users); throughput is then compared by wall time per round.

Slurm's Lua plugin rebuilds its ``slurm.jobs`` table of every job slurmctld
holds (pending, running, and ended within ``MinJobAge``) once per second while
jobs change, inside a submission: what it costs grows with that count (about
2.5 µs per job here, docs/cluster.md). So every round records the count
(``held``), and ``--held N`` first submits N held jobs (without the hook;
cancelled at the end) to measure under a realistic queue.

``--server-time`` also reads sdiag's totals for ``REQUEST_SUBMIT_BATCH_JOB``
before and after each call (outside its timing): slurmctld's own time for
that submission, the job_submit plugin and lock waits included, without
sbatch's process start, munge and connection (the jobs/s column then includes
the sdiag calls; the ratio, from the calls' own times, does not).

Targets (issue 6): throughput with the hook >= 0.85x no_hook; added p99 < 5 ms;
first failures < the hook's timeout; added p99 with the circuit open < 1 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests

from slurm_hooks.devcluster import ClusterSpec, DevCluster
from slurm_hooks.hook_conf import HOOK_CONF_NAME, read_hook_conf

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench"
PORT = 8765
SERVICE = f"http://127.0.0.1:{PORT}"
HOOK_CONF = ROOT / "slurm_hooks" / HOOK_CONF_NAME
TARGETS = {"throughput_ratio": 0.85, "added_p99_ms": 5.0, "open_added_p99_ms": 1.0}

# Runs inside the slurmctld container: N timed sbatch calls (P at a time), then scancel.
# With "server", sdiag's submit-RPC totals are read before and after each call (outside
# its timing): slurmctld's own time for that one submission.
SUBMIT = r"""
import json, re, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
n, name, parallel = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
server = sys.argv[4:] == ["server"]
RPC = re.compile(r"REQUEST_SUBMIT_BATCH_JOB\s+\(\s*4003\)\s+count:(\d+)\s+"
                 r"ave_time:\d+\s+total_time:(\d+)")
def rpc_total():
    m = RPC.search(subprocess.run(["sdiag"], capture_output=True, text=True).stdout)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
def one(_):
    before = rpc_total() if server else None
    s = time.perf_counter()
    out = subprocess.run(["sbatch", "--parsable", "--hold", "-J", name, "-t", "5",
                          "-o", "/dev/null", "--wrap", "true"], capture_output=True, text=True)
    took = time.perf_counter() - s
    job = out.stdout.strip().split(";")[0] if out.returncode == 0 else None
    after = rpc_total() if server else None
    rpc = (after[1] - before[1]) / 1e6 if server and after[0] - before[0] == 1 else None
    return took, job, rpc
t0 = time.perf_counter()
with ThreadPoolExecutor(parallel) as pool:
    done = list(pool.map(one, range(n)))
wall = time.perf_counter() - t0
lat, ids = [d[0] for d in done], [d[1] for d in done if d[1]]
for i in range(0, len(ids), 500):
    subprocess.run(["scancel", *ids[i:i + 500]])
print(json.dumps({"latency_s": lat, "wall_s": wall, "accepted": len(ids),
                  "server_s": [d[2] for d in done if d[2] is not None]}))
"""
_MS = re.compile(r"\(([\d.]+) ms\)")  # the round trip to the service
_TOTAL = re.compile(r" total_ms=([\d.]+)")  # all of the hook's time in slurmctld
#: The ``empty_lua`` mode's script: Slurm's Lua plugin with nothing of Foresight's.
EMPTY_LUA = """-- bench.hooks: an empty job_submit.lua (what the plugin costs on its own)
function slurm_job_submit(job_desc, part_list, submit_uid) return slurm.SUCCESS end
function slurm_job_modify(job_desc, job_rec, part_list, modify_uid) return slurm.SUCCESS end
"""
SCRIPT = "/etc/slurm/job_submit.lua"


def hook_conf() -> dict[str, float]:
    """``timeout_ms`` and ``breaker_failures`` from the hook's configuration file."""
    values, _ = read_hook_conf(HOOK_CONF.read_text(), str(HOOK_CONF))
    return {key: float(values[key]) for key in ("timeout_ms", "breaker_failures")}


class Bench:
    """The cluster, the hook's on/off switch, timed submissions and the hook's log."""

    def __init__(self, cluster: DevCluster, parallel: int = 1, server_time: bool = False) -> None:
        self.cluster = cluster
        self.parallel = parallel
        self.server_time = server_time
        self.hook_on: bool | None = None
        self.conf: str | None = None  # slurmctld's slurm.conf as the bench found it
        self.script_target: str | None = None  # where job_submit.lua linked, while swapped

    def ctld(self, *argv: str, stdin: str | None = None) -> str:
        argv = ("docker", "exec", "-i", self.cluster.name("slurmctld"), *argv)
        return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              check=True).stdout  # fmt: skip

    def set_hook(self, enabled: bool) -> None:
        """Remove ``JobSubmitPlugins=lua``, or put the configuration back exactly as it was
        (so its hash matches the nodes' copy), and reconfigure (a fresh Lua state)."""
        if self.hook_on == enabled:
            return
        if self.conf is None:
            self.conf = self.ctld("cat", "/etc/slurm/slurm.conf")
        conf = self.conf
        if not enabled:
            lines = [x for x in conf.splitlines() if not x.startswith("JobSubmitPlugins=")]
            conf = "\n".join(lines) + "\n"
        elif "\nJobSubmitPlugins=lua" not in conf:
            conf += "JobSubmitPlugins=lua\n"
        self.ctld("sh", "-c", "cat > /etc/slurm/slurm.conf", stdin=conf)
        self.ctld("scontrol", "reconfigure")
        time.sleep(3)
        self.hook_on = enabled

    def set_empty_script(self, empty: bool) -> None:
        """Swap the dev cluster's ``job_submit.lua`` link for :data:`EMPTY_LUA`, or put the
        link back; slurmctld loads the changed script (a fresh Lua state) at the next call."""
        if empty == (self.script_target is not None):
            return
        if empty:
            self.script_target = self.ctld("readlink", SCRIPT).strip()
            time.sleep(1.1)  # the plugin compares whole-second mtimes with its last load
            self.ctld("sh", "-c", f"rm {SCRIPT} && cat > {SCRIPT}", stdin=EMPTY_LUA)
        else:
            self.ctld("ln", "-sfn", self.script_target, SCRIPT)
            self.script_target = None
            self.cluster.reload_hook()  # a new mtime, so the hook is loaded again

    def held(self) -> int:
        """Jobs slurmctld holds: pending, running and ended within ``MinJobAge``."""
        return len(self.ctld("squeue", "-h", "-t", "all", "-o", "%i").split())

    def room_error(self, adding: int) -> str | None:
        """Why ``adding`` more job records would push slurmctld to ``MaxJobCount`` (where
        ``sbatch`` sleeps and retries, stalling a round), or None."""
        config = self.cluster.adapter().config()
        limit = int(config.get("MaxJobCount", "10000"))
        held = self.held()
        if held + adding < limit:
            return None
        return (f"slurmctld holds {held} job records and this run adds up to {adding} more "
                f"(ended ones stay for MinJobAge = {config.get('MinJobAge', '?')}): that reaches "
                f"MaxJobCount = {limit}, where sbatch stalls and retries. Wait for ended jobs "
                "to be purged, or lower -n / --held.")  # fmt: skip

    def preload(self, n: int) -> None:
        """Submit ``n`` held jobs (``bench-held``) with the hook off, for a realistic queue."""
        self.set_hook(False)
        self.ctld("sh", "-c", f"for i in $(seq {n}); do sbatch --hold -J bench-held -t 5 "
                              "-o /dev/null --wrap true >/dev/null; done")  # fmt: skip

    def submit(self, n: int, name: str) -> dict[str, Any]:
        """``n`` timed sbatch calls; latencies (ms), rate, and what the hook logged for them."""
        held = self.held()
        since = time.time()
        load = os.getloadavg()[0]
        argv = [str(n), name, str(self.parallel)] + (["server"] if self.server_time else [])
        result = json.loads(self.ctld("python3", "-", *argv, stdin=SUBMIT))
        lines = [x for x in self.cluster.hook_log(since) if f"name={name} " in x]
        return {
            "lat_ms": (np.asarray(result["latency_s"]) * 1000).tolist(),
            "server_ms": (np.asarray(result["server_s"]) * 1000).tolist(),
            "wall_s": result["wall_s"], "accepted": result["accepted"], "n": n,
            "rate": n / result["wall_s"], "load": load, "held": held,
            "hook_ms": [float(m.group(1)) for x in lines if (m := _MS.search(x))],
            "total_ms": [float(m.group(1)) for x in lines if (m := _TOTAL.search(x))],
            "scored": sum("site_factor=" in x for x in lines),
            "fail_open": sum("fail-open" in x for x in lines),
            "circuit_open": sum("circuit open" in x for x in lines),
        }  # fmt: skip


class Hanging:
    """Accepts connections on the service port and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", PORT))
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
            except OSError:  # closed by close()
                return

    def close(self) -> None:
        self.stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


class Service:
    """What answers on :data:`PORT`: a ready service found there, or one started here.

    A ready service (the cluster's container after ``make demo``, or any
    ``foresight serve``) is used as it is. Otherwise a model is trained on the
    KTH SP2 log into a temporary home and ``foresight serve`` runs here; a
    service container that is up but not ready (no model) is stopped for the
    run and started again at the end.
    """

    def __init__(self, cluster: DevCluster, workers: int) -> None:
        self.cluster, self.workers = cluster, workers
        container = cluster.containers().get(cluster.name("service")) == "running"
        found = ready()
        self.container = container and found  # the container is what answers
        self.external = found and not container
        self.paused_container = container and not found
        self.proc: subprocess.Popen | None = None
        self.home: Path | None = None

    def ensure(self) -> str:
        """Make sure a ready service answers; returns what it is."""
        if self.container or self.external:
            return "the cluster's service container" if self.container else SERVICE
        from bench.service import start_server, train_model
        from predictor.state import data_dir

        if self.paused_container:
            self.cluster.stop_service()
        self.home = Path(tempfile.mkdtemp(prefix="foresight-bench-hooks-"))
        version = train_model(self.home, data_dir() / "hpc_swf" / "KTH-SP2-1996-2.1-cln.swf.gz")
        self.proc = start_server(self.home, PORT, self.workers)
        return f"foresight serve ({self.workers} workers, model {version}) started here"

    def stop(self) -> None:
        """Take the service off the port (for the outage modes)."""
        if self.container:
            self.cluster.stop_service()
        elif self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        """Bring back what :meth:`stop` stopped (the container only: ours is not needed again)."""
        if self.container:
            self.cluster.start_service()

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
        if self.paused_container:
            self.cluster.start_service()


def ready() -> bool:
    try:
        return requests.get(SERVICE + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


Stat = Callable[[np.ndarray, np.ndarray], float]


def throughput_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """Throughput of ``a`` over ``b``: the inverse ratio of their mean time per call."""
    return float(b.mean() / a.mean())


def quantile_added(q: float) -> Stat:
    """The ``q``-th percentile of ``a`` minus that of ``b``."""
    return lambda a, b: float(np.percentile(a, q) - np.percentile(b, q))


def bootstrap(
    rounds_a: list[dict], rounds_b: list[dict], stat: Stat, n_boot: int = 1000, seed: int = 0,
    key: str = "lat_ms",
) -> tuple[float, float, float]:
    """``stat`` of the two modes' latencies with a 95% two-level bootstrap interval.

    Round ``i`` of each mode ran side by side, so each replicate draws round
    indices with replacement (the same for both modes: what the interleaving
    pairs stays paired), then calls within each drawn round. The interval thus
    holds both the calls' noise and the machine's drift between rounds, which a
    resampling of calls alone would hide.
    """
    rng = np.random.default_rng(seed)
    lat_a = [np.asarray(r[key]) for r in rounds_a]
    lat_b = [np.asarray(r[key]) for r in rounds_b]
    est = stat(np.concatenate(lat_a), np.concatenate(lat_b))
    boots = np.empty(n_boot)
    for i in range(n_boot):
        pick = rng.integers(0, len(lat_a), len(lat_a))
        a = np.concatenate([rng.choice(lat_a[j], lat_a[j].size) for j in pick])
        b = np.concatenate([rng.choice(lat_b[j], lat_b[j].size) for j in pick])
        boots[i] = stat(a, b)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return est, float(lo), float(hi)


def interleaved(bench: Bench, modes: tuple[str, str], rounds: int, n: int,
                before: dict[str, Any]) -> dict[str, list[dict]]:  # fmt: skip
    """``rounds`` rounds of ``n`` calls per mode, the order alternating (A B C, C B A, ...)."""
    out: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(rounds):
        for mode in modes if r % 2 == 0 else modes[::-1]:
            before[mode]()
            out[mode].append(bench.submit(n, f"bench-{mode.replace('_', '')}-{r}"))
    return out


def wall_ratio(
    rounds_a: list[dict], rounds_b: list[dict], n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Throughput of ``a`` over ``b`` from the rounds' wall times, with a 95% interval
    over paired rounds (with several submitters at once, calls overlap: their mean
    latency is not the time per job, the wall time is)."""
    rng = np.random.default_rng(seed)
    n_a = np.array([r["n"] for r in rounds_a], dtype=float)
    w_a = np.array([r["wall_s"] for r in rounds_a])
    n_b = np.array([r["n"] for r in rounds_b], dtype=float)
    w_b = np.array([r["wall_s"] for r in rounds_b])
    est = float((n_a.sum() / w_a.sum()) / (n_b.sum() / w_b.sum()))
    picks = rng.integers(0, len(rounds_a), (n_boot, len(rounds_a)))
    boots = (n_a[picks].sum(1) / w_a[picks].sum(1)) / (n_b[picks].sum(1) / w_b[picks].sum(1))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return est, float(lo), float(hi)


def summarize(mode: str, rounds: list[dict], base: list[dict], parallel: int = 1) -> dict[str, Any]:
    lat = np.concatenate([r["lat_ms"] for r in rounds])
    base_lat = np.concatenate([r["lat_ms"] for r in base])
    hook_ms = np.concatenate([r["hook_ms"] for r in rounds])
    total_ms = np.concatenate([r.get("total_ms", []) for r in rounds])
    out = {
        "mode": mode, "n": int(lat.size), "rate": lat.size / sum(r["wall_s"] for r in rounds),
        "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
        "accepted": sum(r["accepted"] for r in rounds),
        "scored": sum(r["scored"] for r in rounds),
        "fail_open": sum(r["fail_open"] for r in rounds),
        "circuit_open": sum(r["circuit_open"] for r in rounds),
        "load": [round(r["load"], 2) for r in rounds],
        "held": [min(r["held"] for r in rounds), max(r["held"] for r in rounds)],
    }  # fmt: skip
    if rounds is not base:
        out["ratio"] = (
            bootstrap(rounds, base, throughput_ratio)
            if parallel == 1
            else wall_ratio(rounds, base)
        )
        out["ratio_wall"] = (lat.size / sum(r["wall_s"] for r in rounds)) / (
            base_lat.size / sum(r["wall_s"] for r in base)
        )
        pairs = [a["rate"] / b["rate"] for a, b in zip(rounds, base, strict=True)]
        out["ratio_rounds_median"] = float(np.median(pairs))  # robust to one stalled round
        out["added_p50_ms"] = bootstrap(rounds, base, quantile_added(50))
        out["added_p99_ms"] = bootstrap(rounds, base, quantile_added(99))
    server = np.concatenate([r.get("server_ms", []) for r in rounds])
    if server.size:
        out["server_p50_ms"] = float(np.percentile(server, 50))
        out["server_p99_ms"] = float(np.percentile(server, 99))
        if rounds is not base:
            out["added_server_p99_ms"] = bootstrap(
                rounds, base, quantile_added(99), key="server_ms"
            )
    for key, values in (("hook_self", hook_ms), ("hook_total", total_ms)):
        if values.size:
            out[f"{key}_p50_ms"] = float(np.percentile(values, 50))
            out[f"{key}_p99_ms"] = float(np.percentile(values, 99))
            out[f"{key}_max_ms"] = float(values.max())
    return out


def _ci(triple: tuple[float, float, float], fmt: str = "{:+.2f}") -> str:
    est, lo, hi = triple
    return f"{fmt.format(est)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def report(rows: list[dict[str, Any]], first: dict[str, Any] | None, timeout_ms: float) -> None:
    print(f"{'mode':<14}{'n':>6}{'jobs/s':>8}  {'vs no hook [95% CI] ~median':<30}"
          f"{'p50':>7}{'p99':>8}  {'added p50 ms [95% CI]':<24}{'added p99 ms [95% CI]':<26}"
          f"{'hook total p50/p99 ms':<23}scored/fail-open/circuit-open")  # fmt: skip
    for r in rows:
        ratio = _ci(r["ratio"], "{:.3f}") if "ratio" in r else "1 (baseline)"
        if "ratio_rounds_median" in r:
            ratio += f" ~{r['ratio_rounds_median']:.2f}"
        a50 = _ci(r["added_p50_ms"]) if "added_p50_ms" in r else ""
        a99 = _ci(r["added_p99_ms"]) if "added_p99_ms" in r else ""
        own = (f"{r['hook_total_p50_ms']:.3f} / {r['hook_total_p99_ms']:.3f}"
               if "hook_total_p50_ms" in r else "")  # fmt: skip
        print(f"{r['mode']:<14}{r['n']:>6}{r['rate']:>8.1f}  {ratio:<30}{r['p50_ms']:>7.2f}"
              f"{r['p99_ms']:>8.2f}  {a50:<24}{a99:<26}{own:<23}"
              f"{r['scored']}/{r['fail_open']}/{r['circuit_open']}")  # fmt: skip
    for r in rows:
        if "server_p50_ms" in r:
            added = r.get("added_server_p99_ms")
            added = f", added p99 {_ci(added)}" if added else ""
            print(f"  {r['mode']}: slurmctld's own time per submission (sdiag) p50 "
                  f"{r['server_p50_ms']:.2f}, p99 {r['server_p99_ms']:.2f} ms{added}")  # fmt: skip
    if first is not None:
        print(
            f"first failures with a hanging service: sbatch {first['sbatch_ms']} ms, "
            f"hook total {first['total_ms']} ms (timeout {timeout_ms:g} ms); added over the "
            f"no-hook p50: p50 {first['added_p50_ms']:.1f} ms, max {first['added_max_ms']:.1f} ms"
        )


def plot(path: Path, modes: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def measured(key: str) -> bool:
        return any(r.get(key) for rounds in modes.values() for r in rounds)

    # (key, x label, tail): the sbatch CDF; slurmctld's own times and the hook's total_ms
    # as the share of calls slower than x on a log scale, where the tails show
    panels = [("lat_ms", "sbatch latency inside the slurmctld container, ms", False)]
    if measured("server_ms"):
        panels.append(("server_ms", "slurmctld's own time per submission (sdiag), ms", True))
    if measured("total_ms"):
        panels.append(("total_ms", "time slurmctld spent in the hook (total_ms), ms", True))
    colors = {mode: f"C{i}" for i, mode in enumerate(modes)}  # one colour per mode throughout
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4), squeeze=False)
    for ax, (key, xlabel, tail) in zip(axes[0], panels, strict=True):
        for mode, rounds in modes.items():
            ms = np.sort(np.concatenate([r.get(key, []) for r in rounds]))
            if not ms.size:  # no hook in this mode: nothing of Foresight's to time
                continue
            share = np.arange(1, ms.size + 1) / ms.size
            held = f", {min(r['held'] for r in rounds)}-{max(r['held'] for r in rounds)} jobs held"
            ax.plot(ms[:-1] if tail else ms, (1 - share[:-1]) if tail else share,
                    color=colors[mode], label=f"{mode} (n={ms.size}{held})")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        if tail:
            ax.set_yscale("log")
            ax.axhline(0.01, color="grey", lw=0.8, ls=":")  # p99
        if key == "total_ms":
            ax.axvline(TARGETS["open_added_p99_ms"], color="grey", lw=0.8, ls="--",
                       label="1 ms: the circuit-open target")  # fmt: skip
        ax.set_ylabel("share of calls slower than x" if tail else "fraction of calls")
        ax.legend(fontsize="small")
    fig.suptitle("job_submit.lua: latency per mode (interleaved rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="sbatch calls per mode (all rounds)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per comparison")
    parser.add_argument("--workers", type=int, default=2, help="workers of a service started here")
    parser.add_argument("--no-outage", action="store_true", help="skip the outage modes")
    parser.add_argument("--parallel", type=int, default=1,
                        help="sbatch calls in flight at once (1: one after another)")  # fmt: skip
    parser.add_argument("--server-time", action="store_true",
                        help="also read slurmctld's time per submission from sdiag")  # fmt: skip
    parser.add_argument("--held", type=int, default=0,
                        help="held jobs to submit first (the job count matters)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    if args.server_time and args.parallel > 1:
        parser.error("--server-time needs --parallel 1 (sdiag's totals are per message type)")
    dev = DevCluster()
    cluster = DevCluster(ClusterSpec(version=dev.running_version() or ClusterSpec().version))
    if not cluster.is_up():
        raise SystemExit("the dev cluster is not up: run `foresight cluster up` first")
    conf = hook_conf()
    bench, service = Bench(cluster, args.parallel, args.server_time), Service(cluster, args.workers)
    per_round = max(args.n // args.rounds, 1)
    calls = per_round * args.rounds * 3  # no_hook, empty_lua, hook
    if not args.no_outage:  # no_hook, breaker_open and the calls that open the circuit
        calls += (per_round * 2 + int(conf["breaker_failures"]) + 1) * args.rounds
    if problem := bench.room_error(args.held + calls):
        raise SystemExit(problem)
    modes: dict[str, list[dict]] = {}
    first = None
    try:
        print(f"service: {service.ensure()}; Slurm {cluster.spec.version}; "
              f"{args.rounds} rounds x {per_round} calls per mode, {args.parallel} at a time",
              flush=True)  # fmt: skip

        if args.held:
            print(f"submitting {args.held} held jobs first", flush=True)
            bench.preload(args.held)

        def lua(empty: bool) -> None:
            bench.set_hook(True)
            bench.set_empty_script(empty)

        modes.update(
            interleaved(
                bench,
                ("no_hook", "empty_lua", "hook"),
                args.rounds,
                per_round,
                {"no_hook": lambda: bench.set_hook(False),
                 "empty_lua": lambda: lua(True), "hook": lambda: lua(False)},
            )
        )  # fmt: skip
        if not args.no_outage and service.external:
            print("an outside service holds the port: outage modes skipped")
        elif not args.no_outage:
            service.stop()
            hanging = Hanging()
            trips: list[dict] = []

            def trip() -> None:  # a fresh Lua state, then open its circuit
                bench.set_empty_script(False)
                bench.set_hook(True)
                cluster.reload_hook()
                trips.append(
                    bench.submit(int(conf["breaker_failures"]) + 1, f"bench-trip-{len(trips)}")
                )

            try:
                outage = interleaved(bench, ("no_hook", "breaker_open"), args.rounds, per_round,
                                     {"no_hook": lambda: bench.set_hook(False),
                                      "breaker_open": trip})  # fmt: skip
            finally:
                hanging.close()
                service.restart()
            modes["no_hook_outage"] = outage["no_hook"]
            modes["breaker_open"] = outage["breaker_open"]
            k = int(conf["breaker_failures"])
            failed = np.array([x for t in trips for x in t["lat_ms"][:k]])
            base50 = float(
                np.percentile(np.concatenate([r["lat_ms"] for r in outage["no_hook"]]), 50)
            )
            first = {"sbatch_ms": [round(float(x), 1) for x in failed],
                     "hook_ms": [round(x, 1) for t in trips for x in t["hook_ms"][:k]],
                     "total_ms": [round(x, 1) for t in trips for x in t["total_ms"][:k]],
                     "added_p50_ms": float(np.percentile(failed, 50)) - base50,
                     "added_max_ms": float(failed.max()) - base50}  # fmt: skip
    finally:
        bench.set_empty_script(False)
        bench.hook_on = None
        bench.set_hook(True)
        cluster.reload_hook()
        service.cleanup()
        if args.held:
            bench.ctld("scancel", "-n", "bench-held")
    p = args.parallel
    rows = [summarize("no_hook", modes["no_hook"], modes["no_hook"], p),
            summarize("empty_lua", modes["empty_lua"], modes["no_hook"], p),
            summarize("hook", modes["hook"], modes["no_hook"], p),
            summarize("hook vs empty", modes["hook"], modes["empty_lua"], p)]  # fmt: skip
    if "breaker_open" in modes:
        rows.append(summarize("no_hook", modes["no_hook_outage"], modes["no_hook_outage"], p))
        rows.append(summarize("breaker_open", modes["breaker_open"], modes["no_hook_outage"], p))
    report(rows, first, conf["timeout_ms"])
    print("load average (1 min) per round: "
          + "; ".join(f"{r['mode']} {r['load']}" for r in rows))  # fmt: skip
    print("jobs slurmctld held during the rounds: "
          + "; ".join(f"{r['mode']} {r['held'][0]}-{r['held'][1]}" for r in rows))  # fmt: skip
    print("hook vs empty: the hook against an empty job_submit.lua (Foresight's share; "
          "empty_lua vs no hook is Slurm's Lua plugin)")
    basis = ("mean time per call, 95% CI over rounds and calls" if p == 1
             else "jobs per second of wall time, 95% CI over paired rounds")  # fmt: skip
    print(f"vs no hook: {basis}; ~ median of the paired rounds' ratios (one stalled round "
          "moves the mean, not this)")
    print(
        f"targets: throughput >= {TARGETS['throughput_ratio']}x, added p99 < "
        f"{TARGETS['added_p99_ms']:g} ms; circuit open: added p99 < "
        f"{TARGETS['open_added_p99_ms']:g} ms; first failures < {conf['timeout_ms']:g} ms"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    stem = "hooks" if p == 1 else f"hooks_parallel{p}"
    (OUT / f"{stem}.json").write_text(json.dumps(
        {"rows": rows, "first_failures": first, "conf": conf, "parallel": p,
         "rounds": {m: [{k: v for k, v in r.items() if k not in ("lat_ms", "server_ms")}
                        for r in rs] for m, rs in modes.items()}}, indent=2) + "\n")  # fmt: skip
    plot(OUT / f"{stem}.png", modes)
    print(f"wrote {OUT / f'{stem}.json'} and {OUT / f'{stem}.png'}")


if __name__ == "__main__":
    sys.exit(main())
