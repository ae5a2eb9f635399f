"""The WSGI fast path of ``POST /v1/jobs/score``: the route's own answers, only cheaper."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from service_support import TOKEN, make_home, sample_jobs, trained_home_dir

from predictor.config import load_config
from predictor.service import create_app
from predictor.service.fast_path import SCORE_PATH, ScoreFastPath


@pytest.fixture
def home(data: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return make_home(trained_home_dir(data, tmp_path_factory), tmp_path / "home")


def _app(home: Path, **overrides: Any) -> Flask:
    return create_app(load_config(environ={}, state_dir=home, **overrides), watch=False)


def _call(wsgi: Callable[..., Any], body: bytes, **extra: str) -> tuple[str, dict]:
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": SCORE_PATH, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8765", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), **extra,
    }  # fmt: skip
    status: list[str] = []
    out = b"".join(wsgi(environ, lambda s, _h, _e=None: status.append(s)))
    return status[0], json.loads(out)


def test_the_fast_path_answers_what_the_flask_route_answers(home: Path) -> None:
    app = _app(home)
    assert isinstance(app.wsgi_app, ScoreFastPath)
    flask_only = app.wsgi_app.wsgi_app
    for job in sample_jobs(home, 30):
        job = {k: v for k, v in job.items() if k != "submit_time"}  # now: no ageing between calls
        body = json.dumps({**job, "surprise": 1}).encode()  # unknown fields: a warning each way
        fast, routed = _call(app.wsgi_app, body), _call(flask_only, body)
        assert fast[0] == routed[0] == "200 OK"
        assert fast[1] == routed[1]
        assert fast[1]["warnings"] == ["unknown field 'surprise' ignored"]


def test_a_job_without_time_limit_takes_the_fast_path(home: Path) -> None:
    app = _app(home)
    job = {k: v for k, v in sample_jobs(home, 1)[0].items()
           if k not in ("time_limit", "submit_time")}  # fmt: skip
    body = json.dumps(job).encode()
    calls: list[bytes] = []
    flask_only = app.wsgi_app.wsgi_app

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        calls.append(environ["PATH_INFO"].encode())
        return flask_only(environ, start_response)

    fast = _call(ScoreFastPath(counted, app.wsgi_app.service), body)
    assert fast[0] == "200 OK" and calls == []  # answered without Flask
    assert fast == _call(flask_only, body)
    lo, hi = fast[1]["runtime_interval_s"]
    assert 0 < lo <= fast[1]["runtime_s"] <= hi < float("inf")


@pytest.mark.parametrize(
    ("body", "status"),
    [(b'{"time_limit": 60}', "400 BAD REQUEST"), (b"not json", "400 BAD REQUEST"),
     (b'{"user": "a", "time_limit": 0}', "400 BAD REQUEST"),
     (b'{"user": "a", "time_limit": "60"}', "400 BAD REQUEST")],
)  # fmt: skip
def test_bad_bodies_get_the_routes_own_errors(home: Path, body: bytes, status: str) -> None:
    app = _app(home)
    fast, routed = _call(app.wsgi_app, body), _call(app.wsgi_app.wsgi_app, body)
    assert fast == routed and fast[0] == status


def test_no_model_token_and_size_limits_are_the_routes(home: Path) -> None:
    job = json.dumps(sample_jobs(home, 1)[0]).encode()
    closed = _app(home, scoring_open=False)
    assert _call(closed.wsgi_app, job)[0] == "401 UNAUTHORIZED"
    assert _call(closed.wsgi_app, job, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")[0] == "200 OK"
    small = _app(home, max_body_bytes=1024)
    big = json.dumps({**json.loads(job), "name": "x" * 2000}).encode()
    assert _call(small.wsgi_app, big)[0] == "413 REQUEST ENTITY TOO LARGE"
    for version in (home / "models").glob("**/model.pkl"):
        version.unlink()
    empty = _app(home)
    status, body = _call(empty.wsgi_app, job)
    assert status == "503 SERVICE UNAVAILABLE" and "foresight train" in body["error"]


def test_a_failure_while_scoring_is_the_routes_json_500(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(home)
    service = app.extensions["foresight"]

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(service.scorer, "score_row", broken)
    status, body = _call(app.wsgi_app, json.dumps(sample_jobs(home, 1)[0]).encode())
    assert status == "500 INTERNAL SERVER ERROR"
    assert body == {"error": "internal error: RuntimeError"}


def test_a_non_finite_prediction_is_a_500_not_a_site_factor(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(home)
    model = app.extensions["foresight"].slot.current.model
    monkeypatch.setattr(model, "predict_one", lambda _features: (float("nan"), 1.0, 2.0))
    status, body = _call(app.wsgi_app, json.dumps(sample_jobs(home, 1)[0]).encode())
    assert status == "500 INTERNAL SERVER ERROR"
    assert body == {"error": "internal error: PredictionError"}


def test_fast_path_requests_are_counted_in_the_metrics(home: Path) -> None:
    app = _app(home)
    client = app.test_client()
    for job in sample_jobs(home, 7):
        assert client.post(SCORE_PATH, json=job).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    line = next(x for x in text.splitlines() if x.startswith("foresight_http_requests_total{")
                and 'route="/v1/jobs/score"' in x and 'status="200"' in x)  # fmt: skip
    assert line.endswith(" 7.0")
    assert 'foresight_http_request_duration_seconds_count{route="/v1/jobs/score"} 7.0' in text
    assert "foresight_jobs_scored_total 7.0" in text
