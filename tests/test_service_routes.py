"""The service's routes, in process, against a real model trained on a slice of a real log."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from service_support import (
    TOKEN,
    corrupt_version,
    duplicate_version,
    make_home,
    sample_jobs,
    trained_home_dir,
)

from predictor.config import load_config
from predictor.service import create_app
from predictor.service.schemas import BatchResponse, ScoreResult


@pytest.fixture(scope="session")
def trained_home(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_home_dir(data, tmp_path_factory)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def home(trained_home: Path, tmp_path: Path) -> Path:
    """A private copy of the trained state directory (tests may change it)."""
    return make_home(trained_home, tmp_path / "home")


def _app(home: Path, **overrides: object) -> Flask:
    return create_app(load_config(environ={}, state_dir=home, **overrides), watch=False)


@pytest.fixture
def app(home: Path) -> Flask:
    return _app(home)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


JOB = {"user": "alice", "account": "acct", "partition": "1", "time_limit": 3600, "cpus": 8}


def test_score_answers_a_real_prediction(client: FlaskClient) -> None:
    resp = client.post("/v1/jobs/score", json={**JOB, "tres_per_node": "gres/gpu:2", "nodes": 2})
    assert resp.status_code == 200, resp.json
    result = ScoreResult.model_validate(resp.json)
    lo, hi = result.runtime_interval_s
    assert 0 < lo <= result.runtime_s <= hi
    assert result.gpu_time_s == pytest.approx(result.runtime_s * 4)
    assert result.priority < 0  # QSSF: minus predicted service of a fresh job
    assert 0 <= result.site_factor <= 1_000_000
    assert result.policy == "qssf" and result.model_version
    assert result.warnings == []


def _finite_result(result: ScoreResult) -> None:
    lo, hi = result.runtime_interval_s
    assert all(math.isfinite(v) for v in (lo, result.runtime_s, hi, result.priority))
    assert 0 < lo <= result.runtime_s <= hi
    assert 0 <= result.site_factor <= 1_000_000


def test_a_job_without_time_limit_is_predicted(client: FlaskClient, trained_home: Path) -> None:
    """Slurm's UNLIMITED: no ``time_limit`` (or null) is scored from the job's history."""
    job = {k: v for k, v in sample_jobs(trained_home, 1)[0].items() if k != "time_limit"}
    resp = client.post("/v1/jobs/score", json=job)
    assert resp.status_code == 200, resp.json
    result = ScoreResult.model_validate(resp.json)
    _finite_result(result)
    assert result.warnings == [] and result.policy == "qssf"
    null = client.post("/v1/jobs/score", json={**job, "time_limit": None})
    assert null.status_code == 200 and null.json["runtime_s"] == result.runtime_s
    stranger = client.post("/v1/jobs/score", json={"user": "nobody-seen-before"})
    assert stranger.status_code == 200, stranger.json
    _finite_result(ScoreResult.model_validate(stranger.json))


def test_batch_mixes_jobs_with_and_without_a_limit(client: FlaskClient, trained_home: Path) -> None:
    now = time.time()
    jobs = [{**job, "submit_time": now} for job in sample_jobs(trained_home, 20)]
    for job in jobs[::2]:
        del job["time_limit"]
    resp = client.post("/v1/jobs/score:batch", json={"jobs": jobs})
    assert resp.status_code == 200, resp.json
    results = BatchResponse.model_validate(resp.json).results
    assert [r.job_id for r in results] == [j["job_id"] for j in jobs]
    for job, batch_result in zip(jobs, results, strict=True):
        _finite_result(batch_result)
        single = ScoreResult.model_validate(client.post("/v1/jobs/score", json=job).json)
        assert single.runtime_s == pytest.approx(batch_result.runtime_s)
        assert single.runtime_interval_s == pytest.approx(batch_result.runtime_interval_s)


def test_batch_matches_single_on_one_site_factor_scale(
    client: FlaskClient, trained_home: Path
) -> None:
    now = time.time()  # fresh submissions: no job is old enough for QSSF's ageing promotion
    jobs = [{**job, "submit_time": now} for job in sample_jobs(trained_home, 50)]
    resp = client.post("/v1/jobs/score:batch", json={"jobs": jobs})
    assert resp.status_code == 200, resp.json
    results = BatchResponse.model_validate(resp.json).results
    assert len(results) == len(jobs)
    for job, batch_result in zip(jobs[:5], results[:5], strict=True):
        single = ScoreResult.model_validate(client.post("/v1/jobs/score", json=job).json)
        assert single.runtime_s == pytest.approx(batch_result.runtime_s)
        assert single.priority == pytest.approx(batch_result.priority)
        # the hook's single score and the daemon's batch re-score must agree in Slurm's queue
        assert abs(single.site_factor - batch_result.site_factor) <= 1
    order = sorted(range(len(results)), key=lambda i: results[i].priority)
    factors = [results[i].site_factor for i in order]
    assert factors == sorted(factors) and len(set(factors)) > 1


def test_ended_siblings_run_time_replaces_the_prediction(client: FlaskClient) -> None:
    """The priority daemon's ``sibling_runtime_s``: QSSF ranks by it, the interval covers it."""
    now = time.time()
    model = client.post("/v1/jobs/score:batch", json={"jobs": [{**JOB, "submit_time": now}]})
    plain = BatchResponse.model_validate(model.json).results[0]
    for sibling in (plain.runtime_s / 50, plain.runtime_s * 50):
        job = {**JOB, "submit_time": now, "sibling_runtime_s": sibling}
        got = BatchResponse.model_validate(
            client.post("/v1/jobs/score:batch", json={"jobs": [job]}).json
        ).results[0]
        assert got.runtime_s == pytest.approx(sibling)
        lo, hi = got.runtime_interval_s
        assert lo <= got.runtime_s <= hi
        assert (got.priority > plain.priority) == (sibling < plain.runtime_s)  # shorter first
        single = ScoreResult.model_validate(client.post("/v1/jobs/score", json=job).json)
        assert single.runtime_s == pytest.approx(sibling) and single.warnings == []
    bad = client.post("/v1/jobs/score", json={**JOB, "sibling_runtime_s": 0})
    assert bad.status_code == 400 and bad.json["fields"][0]["field"] == "sibling_runtime_s"


def test_unknown_fields_ignored_reported_and_counted(client: FlaskClient) -> None:
    resp = client.post("/v1/jobs/score", json={**JOB, "colour": "blue", "shoe": 9})
    assert resp.status_code == 200
    assert resp.json["warnings"] == [
        "unknown field 'colour' ignored",
        "unknown field 'shoe' ignored",
    ]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'foresight_unknown_fields_total{route="/v1/jobs/score"} 2.0' in metrics


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"time_limit": 60}, {"user"}),
        ({**JOB, "cpus": "8", "time_limit": 0}, {"cpus", "time_limit"}),
        ({**JOB, "gpus": 1.5, "nodes": 0}, {"gpus", "nodes"}),
        ({**JOB, "tres_per_node": "gres/gpu:lots:of"}, {"tres_per_node"}),
        ([JOB], {"body"}),
    ],
)
def test_bad_fields_are_named(client: FlaskClient, body: object, fields: set[str]) -> None:
    resp = client.post("/v1/jobs/score", json=body)
    assert resp.status_code == 400
    assert {f["field"] for f in resp.json["fields"]} == fields


def test_batch_unknown_fields_at_both_levels(client: FlaskClient) -> None:
    resp = client.post("/v1/jobs/score:batch", json={"jobs": [{**JOB, "x": 1}], "y": 2})
    assert resp.status_code == 200
    assert resp.json["warnings"] == ["unknown field 'y' ignored"]
    assert resp.json["results"][0]["warnings"] == ["unknown field 'jobs.0.x' ignored"]


def test_batch_bad_field_names_job_index(client: FlaskClient) -> None:
    resp = client.post("/v1/jobs/score:batch", json={"jobs": [JOB, {**JOB, "cpus": -1}]})
    assert resp.status_code == 400
    assert [f["field"] for f in resp.json["fields"]] == ["jobs.1.cpus"]


def test_non_json_and_oversize(home: Path) -> None:
    client = _app(home, max_body_bytes=2048).test_client()
    resp = client.post("/v1/jobs/score", data=b"user=alice", content_type="text/plain")
    assert resp.status_code == 400 and "not valid JSON" in resp.json["error"]
    resp = client.post("/v1/jobs/score", json={**JOB, "name": "x" * 200, "pad": "y" * 4000})
    assert resp.status_code == 413 and "2048" in resp.json["error"]


def test_batch_over_job_limit(home: Path) -> None:
    client = _app(home, max_batch_jobs=3).test_client()
    resp = client.post("/v1/jobs/score:batch", json={"jobs": [JOB] * 4})
    assert resp.status_code == 413 and "max_batch_jobs" in resp.json["error"]


def test_complete_is_idempotent_and_feeds_history(client: FlaskClient, app: Flask) -> None:
    record = {"job_id": "t-1", "user": "newcomer", "time_limit": 7200, "cpus": 2,
              "submit_time": 1.7e9, "start_time": 1.7e9 + 10, "end_time": 1.7e9 + 610}  # fmt: skip
    history = app.extensions["foresight"].history.store
    before = len(history)
    first = client.post("/v1/jobs/complete", json=record)
    again = client.post("/v1/jobs/complete", json=record)
    assert (first.status_code, first.json["new"]) == (200, True)
    assert (again.status_code, again.json["new"]) == (200, False)
    assert len(history) == before + 1
    stats = history.stats("user", "newcomer")
    assert stats is not None and stats.n == 1


def test_complete_replay_seen_by_another_worker(home: Path) -> None:
    """Two apps on one state dir stand in for two gunicorn workers."""
    a, b = _app(home).test_client(), _app(home).test_client()
    record = {"job_id": "w-1", "user": "u", "submit_time": 1.7e9, "start_time": 1.7e9,
              "end_time": 1.7e9 + 60}  # fmt: skip
    assert a.post("/v1/jobs/complete", json=record).json["new"] is True
    assert b.post("/v1/jobs/complete", json=record).json["new"] is False


def test_no_model_means_503_with_training_hint(tmp_path: Path) -> None:
    client = _app(tmp_path / "empty").test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "foresight train --log" in ready.json["detail"]
    resp = client.post("/v1/jobs/score", json=JOB)
    assert resp.status_code == 503 and "foresight train --log" in resp.json["error"]
    assert client.get("/healthz").status_code == 200


def test_training_hint_names_a_log_that_exists(tmp_path: Path) -> None:
    """An installed service has no shipped data: the hint says which log to give, not a
    path that does not exist."""
    shipped = tmp_path / "kth.swf"
    shipped.write_text("; a log\n")
    for log, expected in ((shipped, str(shipped)), (tmp_path / "gone.swf", "YOUR_LOG")):
        detail = _app(tmp_path / "empty", default_log=log).test_client().get("/readyz").json
        assert f"foresight train --log {expected}" in detail["detail"]


def test_readyz_when_ready(client: FlaskClient) -> None:
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.json["model_version"]
    # what the history holds, for `foresight check` to compare with sacct
    assert resp.json["history_jobs"] > 0 and resp.json["history_newest_end"] > 0


def test_admin_routes_need_the_token(client: FlaskClient) -> None:
    assert client.post("/v1/models/reload").status_code == 401
    wrong = client.post("/v1/models/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = client.post("/v1/models/reload", headers=AUTH)
    assert ok.status_code == 200, ok.json


def test_scoring_can_be_protected(home: Path) -> None:
    client = _app(home, scoring_open=False).test_client()
    assert client.post("/v1/jobs/score", json=JOB).status_code == 401
    assert client.post("/v1/jobs/score", json=JOB, headers=AUTH).status_code == 200


def test_models_list_and_activate_unknown(client: FlaskClient) -> None:
    listing = client.get("/v1/models").json
    assert listing["serving"] == listing["active"]
    assert any(v["version"] == listing["active"] and v["serving"] for v in listing["versions"])
    assert client.post("/v1/models/nope/activate", headers=AUTH).status_code == 404


def test_corrupted_model_refused_and_old_keeps_serving(app: Flask, home: Path) -> None:
    client = app.test_client()
    service = app.extensions["foresight"]
    serving = service.slot.current.version
    bad = corrupt_version(service.slot.registry, serving)
    resp = client.post(f"/v1/models/{bad}/activate", headers=AUTH)
    assert resp.status_code == 409, resp.json
    assert resp.json["path"] and resp.json["reason"]
    assert client.get("/v1/models").json["serving"] == serving
    assert service.slot.registry.active() == serving
    assert client.post("/v1/jobs/score", json=JOB).json["model_version"] == serving


def test_other_worker_follows_activation(home: Path) -> None:
    a, b = _app(home), _app(home)
    registry = a.extensions["foresight"].slot.registry
    current = a.extensions["foresight"].slot.current.version
    other = duplicate_version(registry, current)
    resp = a.test_client().post(f"/v1/models/{other}/activate", headers=AUTH)
    assert resp.status_code == 200 and resp.json == {"serving": other, "previous": current}
    b.extensions["foresight"].slot.poll()  # the watcher's step
    assert b.test_client().post("/v1/jobs/score", json=JOB).json["model_version"] == other


def test_metrics_exposition(client: FlaskClient) -> None:
    client.post("/v1/jobs/score", json=JOB)
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'foresight_http_requests_total{method="POST",route="/v1/jobs/score",status="200"}' in text
    )
    assert "foresight_http_request_duration_seconds_bucket" in text
    assert "foresight_predicted_runtime_seconds_count 1.0" in text
    assert "foresight_model_active{version=" in text


def test_openapi_matches_routes(app: Flask) -> None:
    doc = app.test_client().get("/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"}
    expected = {r.replace("<version>", "{version}") for r in rules}
    assert set(doc["paths"]) == expected
    body = doc["paths"]["/v1/jobs/score"]["post"]["requestBody"]["content"]["application/json"]
    schema = doc["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"user"}  # no time_limit: Slurm's UNLIMITED


def test_hot_swap_drops_no_request(app: Flask) -> None:
    """Scoring threads keep getting 200s while versions are swapped underneath them."""
    import threading

    service = app.extensions["foresight"]
    first = service.slot.current.version
    second = duplicate_version(service.slot.registry, first)
    stop = threading.Event()
    statuses: list[int] = []
    versions: set[str] = set()

    def score() -> None:
        client = app.test_client()
        while not stop.is_set():
            resp = client.post("/v1/jobs/score", json=JOB)
            statuses.append(resp.status_code)
            if resp.status_code == 200:
                versions.add(resp.json["model_version"])

    threads = [threading.Thread(target=score) for _ in range(2)]
    for t in threads:
        t.start()
    admin = app.test_client()
    for i in range(6):
        target = second if i % 2 == 0 else first
        assert admin.post(f"/v1/models/{target}/activate", headers=AUTH).status_code == 200
    stop.set()
    for t in threads:
        t.join()
    assert statuses and set(statuses) == {200}
    assert versions <= {first, second}


def test_reload_of_a_file_corrupted_in_place_keeps_old_model(app: Flask) -> None:
    client = app.test_client()
    service = app.extensions["foresight"]
    serving = service.slot.current.version
    model_file = service.slot.registry.area / serving / "model.pkl"
    model_file.write_bytes(b"garbage")
    resp = client.post("/v1/models/reload", headers=AUTH)
    assert resp.status_code == 409
    assert resp.json["path"] == str(model_file) and "corrupted" in resp.json["reason"]
    assert client.post("/v1/jobs/score", json=JOB).json["model_version"] == serving
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'foresight_model_swaps_total{outcome="refused"} 1.0' in metrics


def test_batch_submissions_recorded_off_the_request_path(home: Path) -> None:
    a, b = _app(home), _app(home)
    job = {**JOB, "user": "fresh-user", "job_id": 777}
    assert a.test_client().post("/v1/jobs/score:batch", json={"jobs": [job]}).status_code == 200
    history_a = a.extensions["foresight"].history
    assert history_a.store.stats("user", "fresh-user") is None  # queued, not yet written
    assert history_a.flush() == 1  # the watcher's step
    assert history_a.store.stats("user", "fresh-user").n_submitted == 1
    history_b = b.extensions["foresight"].history
    assert history_b.pull() == 1  # the other worker's watcher step
    assert history_b.store.stats("user", "fresh-user").n_submitted == 1
    assert history_b.pull() == 0  # nothing new since: nothing folded twice
