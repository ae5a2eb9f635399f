"""Foresight's hooks inside the real slurmctld: job_submit.lua, the priority daemon, the feed.

The Foresight service runs on this host at 127.0.0.1:8765 (the URL in
``slurm_hooks/job_submit_foresight.conf``, which the cluster mounts beside the
hook), with a real model trained on a slice of a real log. Outage tests swap it
for a stopped port, a server that never answers, or one that answers garbage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests
from cluster_helpers import wait_until

from slurm_hooks.completion_feed import CompletionFeed
from slurm_hooks.devcluster import DevCluster
from slurm_hooks.priority_daemon import PriorityDaemon
from slurm_hooks.service_client import ServiceClient
from slurm_hooks.slurm_adapter import SlurmAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from service_support import make_home, trained_home_dir

ROOT = Path(__file__).resolve().parents[2]
PORT = 8765
URL = f"http://127.0.0.1:{PORT}"
TIMEOUT_MS = 300  # slurm_hooks/job_submit_foresight.conf
FOOTPRINT = "-p", "cpu", "-N", "2", "--exclusive"  # the whole cpu partition (n5, n6)


class HostService:
    """``foresight serve`` on this host, on the hook's port."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "FORESIGHT_HOME": str(self.home)}
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "foresight"), "serve", "--host", "127.0.0.1",
             "--port", str(PORT), "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self._ready, 90, "the Foresight service's /readyz", poll=0.5)

    def _ready(self) -> bool:
        try:
            return requests.get(URL + "/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


class _Stub(BaseHTTPRequestHandler):
    """A stand-in service on the hook's port: answers by ``mode``."""

    mode = "hang"
    factors: ClassVar[dict[str, int]] = {}
    hints: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if self.mode == "hang":
            threading.Event().wait(10)
            return
        if self.mode == "garbage":
            payload = b"\x00\xffnot json at all"
        elif self.path.endswith(":batch"):
            payload = json.dumps({"results": [
                {"job_id": j["job_id"], "site_factor": self.factors.get(j["name"], 0),
                 "runtime_s": 60.0, "model_version": "stub"} for j in body["jobs"]
            ]}).encode()
        else:
            payload = json.dumps({
                "runtime_s": 60.0, "runtime_interval_s": [30.0, 120.0], "gpu_time_s": 0.0,
                "priority": -4.0, "site_factor": 1234, "policy": "qssf", "model_version": "stub",
                "hints": {"status": "ok", "avoid_nodes": self.hints, "prefer_nodes": []},
            }).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def service(cluster: DevCluster, data: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    """The real service with a real model, on the hook's port (the container's is paused)."""
    container_was_running = cluster.containers().get(cluster.name("service")) == "running"
    if container_was_running:
        cluster.stop_service()
    home = make_home(trained_home_dir(data, tmp_path_factory),
                     tmp_path_factory.mktemp("hooks") / "home")
    svc = HostService(home)
    svc.start()
    cluster.reload_hook()
    yield svc
    svc.stop()
    if container_was_running:
        cluster.start_service()


class StubServer:
    """:class:`_Stub` listening on the hook's port until :meth:`stop`."""

    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = ThreadingHTTPServer(("127.0.0.1", PORT), _Stub)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def stub(cluster: DevCluster, service: HostService) -> Iterator[StubServer]:
    """Replace the real service with :class:`_Stub` for one test."""
    service.stop()
    server = StubServer()
    cluster.reload_hook()
    yield server
    server.stop()
    service.start()
    cluster.reload_hook()


def show_job(slurm: SlurmAdapter, job_id: str) -> dict[str, str]:
    text = slurm.run(["scontrol", "show", "job", job_id])
    return dict(re.findall(r"(\w+)=(\S*)", text))


def blocker(slurm: SlurmAdapter, sbatch: Callable[..., str]) -> str:
    """A job holding the whole cpu partition, once it runs (so later jobs must queue)."""
    job = sbatch(*FOOTPRINT, "-J", "blocker", "-t", "5", "--wrap", "sleep 300")
    wait_until(lambda: slurm.queue().set_index("job_id").loc[job, "state"] == "RUNNING", 60,
               "the blocker to run")
    return job


def test_submission_gets_site_factor_and_prediction_shown_by_sacct(
    cluster: DevCluster, service: HostService, slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> None:
    since = time.time()
    job = sbatch("-J", "hooked", "-t", "3", "--wrap", "sleep 1")
    fields = show_job(slurm, job)
    assert fields["AdminComment"].startswith("foresight:runtime=")
    factor = int(re.search(r";sf=(\d+);", fields["AdminComment"]).group(1))
    assert factor > 0
    line = next(x for x in cluster.hook_log(since) if "name=hooked" in x)
    assert f"site_factor={factor}" in line and "admin_comment" in line

    def recorded():
        rows = slurm.jobs(since).set_index("job_id")
        return job in rows.index and rows.loc[job, "state"] == "COMPLETED" and rows.loc[job]
    row = wait_until(recorded, 90, f"job {job} COMPLETED in sacct")
    assert row["admin_comment"].startswith("foresight:runtime=")


def test_a_job_without_time_limit_is_predicted(
    cluster: DevCluster, service: HostService, slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> None:
    """No ``-t`` on a partition with ``MaxTime=INFINITE`` and no DefaultTime: the hook sends
    no limit and the service predicts the job from its history (no fail-open). Held: once
    Slurm's backfill starts such a job it shows 365-00:00:00 (read back as no limit)."""
    since = time.time()
    job = sbatch("-J", "unlimited", "--hold", "--wrap", "true")
    fields = show_job(slurm, job)
    assert fields["TimeLimit"] == "UNLIMITED"
    assert fields["AdminComment"].startswith("foresight:runtime=")
    line = next(x for x in cluster.hook_log(since) if "name=unlimited" in x)
    assert "fail-open" not in line and "site_factor=" in line


def test_jobs_run_in_qssf_order_when_the_cluster_is_full(
    service: HostService, slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> None:
    block = blocker(slurm, sbatch)
    long = sbatch(*FOOTPRINT, "-J", "long", "-t", "120", "--wrap", "sleep 10")
    short = sbatch(*FOOTPRINT, "-J", "short", "-t", "2", "--wrap", "sleep 10")
    factors = slurm.site_factors()  # what Slurm itself holds for the pending jobs
    for job in (long, short):
        recorded = re.search(r";sf=(\d+);", show_job(slurm, job)["AdminComment"]).group(1)
        assert factors[job] == int(recorded)
    assert factors[short] > factors[long]  # QSSF: less predicted service, higher factor
    slurm.run(["scancel", block])

    def first_started():
        q = slurm.queue().set_index("job_id")
        running = [j for j in (long, short) if j in q.index and q.loc[j, "state"] == "RUNNING"]
        return running[0] if running else None
    assert wait_until(first_started, 90, "one of the two jobs to start") == short


@pytest.mark.parametrize("outage", ["stopped", "hang", "garbage"])
def test_submissions_are_accepted_unchanged_when_the_service_fails(
    cluster: DevCluster, stub: StubServer, slurm: SlurmAdapter, sbatch: Callable[..., str],
    outage: str,
) -> None:
    if outage == "stopped":
        stub.stop()  # nothing listens on the hook's port
    _Stub.mode = outage
    since = time.time()
    jobs = [sbatch("-J", f"outage-{outage}", "-t", "1", "--wrap", "true") for _ in range(5)]
    for job in jobs:  # accepted, and nothing of Foresight's was applied
        fields = show_job(slurm, job)
        assert fields.get("AdminComment", "") in ("", "(null)")
        assert fields.get("ExcNodeList", "(null)") == "(null)"
    lines = [x for x in cluster.hook_log(since) if f"name=outage-{outage}" in x]
    assert len(lines) == 5
    took = [float(m.group(1)) for x in lines if (m := re.search(r"\(([\d.]+) ms\)", x))]
    assert took and max(took) <= TIMEOUT_MS  # every call ended within its deadline
    assert all("fail-open" in x or "circuit open" in x for x in lines)
    assert "circuit open" in lines[-1]  # three failures opened the breaker


def test_a_hint_naming_an_unknown_node_is_dropped_not_rejected(
    cluster: DevCluster, stub: StubServer, slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> None:
    _Stub.mode, _Stub.hints = "good", ["nosuchnode", "n2"]
    since = time.time()
    job = sbatch("-p", "gpu", "-J", "hinted", "-t", "1", "--wrap", "true")
    assert show_job(slurm, job)["ExcNodeList"] == "n2"
    line = next(x for x in cluster.hook_log(since) if "name=hinted" in x)
    assert "hints_dropped=nosuchnode(unknown)" in line


def test_priority_daemon_reorders_pending_jobs_when_scores_change(
    stub: StubServer, slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> None:
    _Stub.mode = "good"
    block = blocker(slurm, sbatch)
    names = ["pd-a", "pd-b", "pd-c"]
    ids = {sbatch(*FOOTPRINT, "-J", n, "-t", "2", "--wrap", "true"): n for n in names}
    daemon = PriorityDaemon(slurm, ServiceClient(URL, timeout=5))

    def order() -> list[str]:
        factors = slurm.site_factors()
        return sorted(names, key=lambda n: -factors[next(j for j, m in ids.items() if m == n)])

    _Stub.factors = {"pd-a": 300, "pd-b": 200, "pd-c": 100}
    report = daemon.cycle()
    assert report.error is None and report.updated >= 3
    assert order() == ["pd-a", "pd-b", "pd-c"]
    _Stub.factors = {"pd-a": 100, "pd-b": 200, "pd-c": 300}  # a new model, new scores
    daemon.cycle()
    assert order() == ["pd-c", "pd-b", "pd-a"]
    slurm.run(["scancel", block, *ids])


def test_completions_reach_history_including_after_a_service_restart(
    service: HostService, slurm: SlurmAdapter, sbatch: Callable[..., str], tmp_path: Path
) -> None:
    client = ServiceClient(URL, timeout=5)
    feed = CompletionFeed(slurm, client, watermark_file=tmp_path / "wm.json", overlap_s=60,
                          first_lookback_s=120)

    def finished(job: str):
        rows = slurm.jobs(time.time() - 600).set_index("job_id")
        return job in rows.index and rows.loc[job, "state"] == "COMPLETED" and rows.loc[job]

    first = sbatch("-J", "feed-1", "-t", "1", "--wrap", "sleep 1")
    row1 = wait_until(lambda: finished(first), 90, f"job {first} in sacct")
    assert feed.poll().error is None
    assert client.complete([{**row1.to_dict(), "job_id": first}]) == (0, 1)  # already there

    service.stop()
    second = sbatch("-J", "feed-2", "-t", "1", "--wrap", "sleep 1")
    row2 = wait_until(lambda: finished(second), 90, f"job {second} in sacct")
    down = feed.poll()
    assert down.error and "service unavailable" in down.error
    service.start()
    caught_up = feed.poll()
    assert caught_up.error is None and caught_up.new >= 1
    assert client.complete([{**row2.to_dict(), "job_id": second}]) == (0, 1)


def test_foresight_check_finds_the_dev_cluster_installed_as_the_readme_says(
    cluster: DevCluster, service: HostService
) -> None:
    from slurm_hooks.install_check import run_checks

    checks = {c.name: c for c in run_checks(cluster.adapter())}
    failed = {n: c.detail for n, c in checks.items() if c.status == "fail"}
    assert not failed
    for name in ("JobSubmitPlugins", "PriorityType", "AccountingStoreFlags", "job_submit.lua",
                 "job_submit_foresight.conf", "Lua job table", "lua modules", "service"):
        assert checks[name].status == "ok", (name, checks[name].detail)
    assert "(this version)" in checks["job_submit.lua"].detail  # the checkout's hook is mounted
    # the dev cluster's ResumeTimeout (60 s) is below the planner's default boot latency
    power = checks["power saving"]
    assert power.status == "warn" and "ResumeTimeout" in power.detail
    # the service's history (trained on a 1990s log, fed by the completion test) against
    # the cluster's sacct: either up to date or naming how many completions are missing
    assert checks["history"].status in ("ok", "warn")
    assert "ended jobs in the history" in checks["history"].detail
