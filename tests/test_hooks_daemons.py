"""Priority daemon and completion feed logic, with in-memory Slurm and service stand-ins.

The same classes run against the dockerized cluster in tests/integration.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient
from service_support import make_home, trained_home_dir

from predictor.config import load_config
from predictor.logs.schema import to_canonical
from predictor.service import create_app
from slurm_hooks.completion_feed import CompletionFeed
from slurm_hooks.priority_daemon import PriorityDaemon
from slurm_hooks.service_client import (
    ServiceClient,
    ServiceError,
    completion,
    descriptor,
    score_body,
)
from slurm_hooks.slurm_adapter import SlurmCommandError
from slurm_hooks.stopping import Stop


def queue_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    out = to_canonical(frame)
    out["site_factor"] = frame.get("site_factor", np.nan)
    return out


class FakeSlurm:
    """Holds a queue and accounting table; records updates; can be made to fail."""

    def __init__(self, pending: pd.DataFrame | None = None,
                 finished: pd.DataFrame | None = None) -> None:
        self.pending = pending
        self.finished = finished
        self.updates: list[tuple[str, int]] = []
        self.down = False

    def queue(self, states=("PENDING", "RUNNING")) -> pd.DataFrame:
        if self.down:
            raise SlurmCommandError(["squeue"], 1, "slurm_load_jobs error: Unable to contact")
        return self.pending

    def update_job(self, job_id, site_factor=None, admin_comment=None) -> None:
        self.updates.append((str(job_id), site_factor))
        mask = self.pending["job_id"] == str(job_id)
        self.pending.loc[mask, "site_factor"] = site_factor

    def jobs(self, since, until=None, states=None) -> pd.DataFrame:
        if self.down:
            raise SlurmCommandError(["sacct"], 1, "Connection refused")
        f = self.finished if self.finished is not None else to_canonical(pd.DataFrame())
        return f[f["end_time"] >= since].reset_index(drop=True)


class FakeService:
    """Scores by predicted run time; remembers completions by job id like the real one."""

    def __init__(self, factors: dict[str, int] | None = None) -> None:
        self.factors = factors or {}
        self.history: dict[str, dict] = {}
        self.down = False
        self.fail_after: int | None = None

    def score_batch(self, jobs: pd.DataFrame) -> pd.DataFrame:
        self.last_batch = jobs
        if self.down:
            raise ServiceError("POST /v1/jobs/score:batch: connection refused")
        return pd.DataFrame({"job_id": jobs["job_id"],
                             "site_factor": [self.factors[j] for j in jobs["job_id"]],
                             "runtime_s": 60.0, "model_version": "v1"})

    def complete(self, rows) -> tuple[int, int]:
        new = known = 0
        for row in rows:
            if self.down or (self.fail_after is not None and len(self.history) >= self.fail_after):
                raise ServiceError("POST /v1/jobs/complete: connection refused")
            body = completion(row)
            if body["job_id"] in self.history:
                known += 1
            else:
                self.history[body["job_id"]] = body
                new += 1
        return new, known


PENDING = [
    {"job_id": "1", "user": "a", "time_limit": 600, "submit_time": 100, "state": "PENDING",
     "site_factor": 10},
    {"job_id": "2", "user": "b", "time_limit": 600, "submit_time": 200, "state": "PENDING",
     "site_factor": 500},
    {"job_id": "3", "user": "c", "time_limit": 600, "submit_time": 300, "state": "PENDING",
     "site_factor": 0},
    {"job_id": "4", "user": "d", "time_limit": math.nan, "submit_time": 50, "state": "PENDING"},
]


def test_daemon_updates_only_changed_factors_largest_first_within_budget():
    slurm = FakeSlurm(queue_frame(PENDING))
    service = FakeService({"1": 10, "2": 100, "3": 900, "4": 50})
    daemon = PriorityDaemon(slurm, service, max_updates=1)
    report = daemon.cycle()
    assert report.pending == 4 and report.no_limit == 1 and report.scored == 4
    assert report.unchanged == 1  # job 1 already has its factor
    assert slurm.updates == [("3", 900)]  # |900-0| > |100-500| > |50-0|: largest change first
    assert report.deferred == 2
    report = daemon.cycle()  # next cycle picks up the deferred ones, largest first
    assert slurm.updates[-1] == ("2", 100) and report.deferred == 1


def test_daemon_scores_a_pending_job_without_a_time_limit():
    """Slurm's UNLIMITED (NaN here, 0 from ``-t 0``) is scored; its descriptor has no limit."""
    limitless = [{**PENDING[3], "job_id": "5", "time_limit": 0.0, "submit_time": 60}]
    slurm = FakeSlurm(queue_frame([PENDING[0], PENDING[3], *limitless]))
    service = FakeService({"1": 10, "4": 700, "5": 600})
    report = PriorityDaemon(slurm, service).cycle()
    assert (report.scored, report.no_limit, report.error) == (3, 2, None)
    assert sorted(slurm.updates) == [("4", 700), ("5", 600)]
    assert "no_limit=2" in report.line()
    bodies = {row["job_id"]: score_body(row) for row in service.last_batch.to_dict("records")}
    assert "time_limit" not in bodies["4"] and "time_limit" not in bodies["5"]
    assert bodies["1"]["time_limit"] == 600


def test_daemon_reorders_after_a_model_update():
    slurm = FakeSlurm(queue_frame(PENDING[:3]))
    service = FakeService({"1": 300, "2": 200, "3": 100})
    daemon = PriorityDaemon(slurm, service)
    daemon.cycle()
    order = list(slurm.pending.sort_values("site_factor", ascending=False)["job_id"])
    assert order == ["1", "2", "3"]
    service.factors = {"1": 100, "2": 200, "3": 300}  # a new model thinks job 3 is shortest
    daemon.cycle()
    order = list(slurm.pending.sort_values("site_factor", ascending=False)["job_id"])
    assert order == ["3", "2", "1"]


def test_daemon_survives_slurm_and_service_outages():
    slurm = FakeSlurm(queue_frame(PENDING[:2]))
    service = FakeService({"1": 1, "2": 2})
    daemon = PriorityDaemon(slurm, service, interval_s=0)
    slurm.down = True
    assert "cannot read the queue" in daemon.cycle().error
    slurm.down, service.down = False, True
    assert "service unavailable" in daemon.cycle().error
    service.down = False
    daemon.run(cycles=2)
    assert {j for j, _ in slurm.updates} == {"1", "2"}


@pytest.mark.timeout(120)
def test_a_stop_asked_during_a_cycle_lets_it_finish_then_ends_the_run():
    slurm = FakeSlurm(queue_frame(PENDING[:2]))
    service = FakeService({"1": 1, "2": 2})
    stop = Stop()
    scored = service.score_batch

    def score_then_stop(jobs):
        stop.request("test")  # SIGTERM arriving mid-cycle
        return scored(jobs)

    service.score_batch = score_then_stop
    started = time.monotonic()
    PriorityDaemon(slurm, service, interval_s=3600).run(stop=stop)
    assert time.monotonic() - started < 60  # no interval slept
    assert {j for j, _ in slurm.updates} == {"1", "2"}  # the cycle's updates all made


@pytest.mark.timeout(120)
def test_a_stop_cuts_the_feed_s_sleep_short(tmp_path):
    stop, polls = Stop(), []
    slurm = FakeSlurm(finished=None)
    read = slurm.jobs

    def read_then_stop(*args, **kwargs):
        polls.append(1)
        stop.request("test")
        return read(*args, **kwargs)

    slurm.jobs = read_then_stop
    started = time.monotonic()
    CompletionFeed(slurm, FakeService(), watermark_file=tmp_path / "wm.json").run(
        interval_s=3600, stop=stop
    )
    assert polls == [1] and time.monotonic() - started < 60


def test_daemon_dry_run_changes_nothing():
    slurm = FakeSlurm(queue_frame(PENDING[:3]))
    report = PriorityDaemon(slurm, FakeService({"1": 5, "2": 6, "3": 7}), dry_run=True).cycle()
    assert report.updated == 3 and slurm.updates == []


def test_daemon_scores_waiting_siblings_with_their_ended_siblings_run_time():
    now = time.time()
    burst = [{"job_id": str(i), "user": "sweep", "cpus": 4, "time_limit": 3600,
              "submit_time": now - 3000 + 10 * i} for i in range(4)]  # fmt: skip
    ended = to_canonical(pd.DataFrame([
        {**burst[0], "start_time": now - 2900, "end_time": now - 2500, "state": "COMPLETED"},
        {**burst[1], "start_time": now - 2900, "end_time": now - 2000, "state": "FAILED"},
    ]))  # fmt: skip
    queue = queue_frame([
        {**burst[2], "state": "RUNNING"},
        {**burst[3], "state": "PENDING"},
        {"job_id": "9", "user": "sweep", "cpus": 4, "time_limit": 3600, "state": "PENDING",
         "submit_time": now - 100},  # the same user and shape, but 40 min later: a new burst
    ])  # fmt: skip
    service = FakeService({"3": 5, "9": 6})
    daemon = PriorityDaemon(FakeSlurm(queue, ended), service)
    report = daemon.cycle()
    assert report.pending == 2 and report.scored == 2 and report.siblings == 1
    got = service.last_batch.set_index("job_id")["sibling_runtime_s"]
    assert got["3"] == pytest.approx(math.sqrt(400 * 900))  # geometric mean of 400 s and 900 s
    assert math.isnan(got["9"])
    body = score_body(service.last_batch.iloc[0].to_dict())
    assert body["sibling_runtime_s"] == pytest.approx(600.0)
    assert "sibling_runtime_s" not in score_body(service.last_batch.iloc[1].to_dict())


def test_daemon_scores_without_siblings_when_accounting_is_down():
    slurm = FakeSlurm(queue_frame(PENDING[:2]))
    slurm.jobs = lambda *a, **k: (_ for _ in ()).throw(  # sacct fails, squeue works
        SlurmCommandError(["sacct"], 1, "Connection refused"))  # fmt: skip
    service = FakeService({"1": 1, "2": 2})
    report = PriorityDaemon(slurm, service).cycle()
    assert report.error is None and report.scored == 2 and report.siblings == 0
    assert "sibling_runtime_s" not in service.last_batch.columns


class _FlaskSession:
    """``requests.Session.post`` answered by a Flask test client (no socket)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.headers: dict[str, str] = {}

    def post(self, url: str, json: Any, timeout: float) -> SimpleNamespace:
        resp = self.client.post(url.removeprefix("http://svc"), json=json)
        return SimpleNamespace(status_code=resp.status_code, text=resp.get_data(as_text=True),
                               json=lambda: resp.json)  # fmt: skip


def test_daemon_scores_limitless_pending_jobs_through_the_service(
    data: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    home = make_home(trained_home_dir(data, tmp_path_factory), tmp_path / "home")
    app = create_app(load_config(environ={}, state_dir=home), watch=False)
    client = ServiceClient("http://svc")
    client._session = _FlaskSession(app.test_client())  # type: ignore[assignment]
    now = time.time()  # fresh submissions: below QSSF's ageing promotion
    rows = [{"job_id": str(i), "user": str(i % 3), "cpus": 2 ** i,
             "time_limit": [np.nan, 0.0, 3600.0][i % 3], "submit_time": now - i,
             "state": "PENDING"} for i in range(6)]  # fmt: skip
    pending = to_canonical(pd.DataFrame(rows)).assign(site_factor=np.nan)
    slurm = FakeSlurm(pending)
    report = PriorityDaemon(slurm, client, siblings=False).cycle()  # type: ignore[arg-type]
    assert report.error is None, report.error
    assert (report.scored, report.no_limit, report.updated) == (6, 4, 6)
    factors = [dict(slurm.updates)[str(i)] for i in range(6)]
    assert all(0 < f < 1_000_000 for f in factors)
    assert len(set(factors)) > 1  # bigger jobs (more CPUs) rank lower under QSSF


T0 = time.time() - 5000


def finished_frame(n: int) -> pd.DataFrame:
    rows = [{"job_id": str(i), "user": "u", "time_limit": 600, "submit_time": T0 + i,
             "start_time": T0 + i, "end_time": T0 + 1000 + 10 * i, "state": "COMPLETED",
             "cpus": 1, "exit_code": 0} for i in range(n)]
    return to_canonical(pd.DataFrame(rows))


def test_feed_catches_up_after_a_service_outage_without_loss_or_double_count(tmp_path):
    slurm = FakeSlurm(finished=finished_frame(10))
    service = FakeService()
    feed = CompletionFeed(slurm, service, watermark_file=tmp_path / "wm.json",
                          overlap_s=100, first_lookback_s=10_000)
    service.fail_after = 4
    report = feed.poll()
    assert report.new == 4 and "service unavailable" in report.error
    assert report.watermark == T0 + 1030  # advanced only past accepted jobs
    service.fail_after = None
    report = feed.poll()
    assert report.error is None
    assert sorted(service.history, key=int) == [str(i) for i in range(10)]
    assert report.known >= 1  # the overlap re-sent some, and they were not double-counted
    assert feed.poll().new == 0


def test_feed_keeps_its_watermark_when_sacct_is_down(tmp_path):
    slurm = FakeSlurm(finished=finished_frame(3))
    feed = CompletionFeed(slurm, FakeService(), watermark_file=tmp_path / "wm.json")
    slurm.down = True
    report = feed.poll()
    assert "cannot read sacct" in report.error and not (tmp_path / "wm.json").exists()


def test_descriptor_drops_missing_values_and_clamps_counts():
    row = to_canonical(pd.DataFrame([{"job_id": "7", "user": "u", "time_limit": 60.0,
                                      "cpus": np.nan, "nodes": 0, "gpus": 2.0}])).iloc[0]
    body = descriptor(row)
    assert body == {"job_id": "7", "user": "u", "account": "", "partition": "", "qos": "",
                    "name": "", "time_limit": 60.0, "cpus": 1, "gpus": 2, "nodes": 1}


@pytest.mark.parametrize("limit", [math.nan, 0.0, math.inf, -60.0])
def test_descriptor_leaves_out_a_limit_that_is_no_limit(limit):
    row = {"job_id": "7", "user": "u", "time_limit": limit}
    assert "time_limit" not in descriptor(row) and "time_limit" not in completion(row)


@pytest.mark.parametrize("state", ["FAILED", "TIMEOUT"])
def test_completion_body_carries_state_and_times(state):
    row = finished_frame(1).iloc[0].to_dict() | {"state": state}
    body = completion(row)
    assert body["state"] == state
    assert (body["start_time"], body["end_time"]) == (T0, T0 + 1000)
