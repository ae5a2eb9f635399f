"""OpenAPI-driven fuzzing (schemathesis) and hypothesis bodies against the in-process app.

No generated request may produce a 5xx, and every answer must match the
status codes and schemas ``/openapi.json`` declares. Bounded: a few dozen
examples per operation and generation mode, well under a minute in total.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from service_support import POWER_OK, TOKEN, FakeSlurm, FakeView, make_home, node, trained_home_dir

from predictor.config import load_config
from predictor.models.interference import InterferenceModel
from predictor.service import create_app


@pytest.fixture(scope="session")
def trained_home(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_home_dir(data, tmp_path_factory)


EXAMPLES = 15
#: The schema cannot express cross-field rules (end_time >= start_time), so a
#: schema-valid body may still get a 400; "no 5xx" and conformance are checked.
EXCLUDED = [schemathesis.checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def app(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """The app with placement hints on (a fake Slurm with two busy nodes) and an energy view."""
    home = make_home(trained_home, tmp_path_factory.mktemp("fuzz") / "home")
    jobs = [{"job_id": "1", "user": "u", "account": "", "job_name": "j", "node_list": "n1"}]
    slurm = FakeSlurm(jobs, [node("n1"), node("n2")])
    app = create_app(load_config(environ={}, state_dir=home), watch=False, slurm=slurm,
                     interference_model=InterferenceModel("heuristic"),
                     cluster_view=FakeView(POWER_OK))  # fmt: skip
    app.extensions["foresight"].profiles.post("u", "j", {"gpu_util": 80})
    app.extensions["foresight"].placement.refresh()
    return app


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error(app: Flask, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9  # every route but /openapi.json itself
    if mode is GenerationMode.NEGATIVE:  # only inputs can be made invalid
        operations = [op for op in operations if len(op.body) or len(op.path_parameters)]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)  # fmt: skip
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=EXCLUDED
            )

        run()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
job_like = st.dictionaries(
    st.sampled_from(["user", "time_limit", "cpus", "gpus", "nodes", "mem_mb", "tres_per_node",
                     "submit_time", "job_id", "partition", "extra"]),
    json_values,
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(["/v1/jobs/score", "/v1/jobs/score:batch", "/v1/jobs/complete"]),
       body=job_like | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))  # fmt: skip
def test_arbitrary_bodies_get_json_answers_never_5xx(app: Flask, route: str, body: object) -> None:
    if route.endswith("batch") and isinstance(body, dict):
        body = {"jobs": [body]}
    data = body if isinstance(body, str) else json.dumps(body)
    resp = app.test_client().post(route, data=data, content_type="application/json")
    assert resp.status_code in (200, 400), resp.get_data(as_text=True)
    payload = resp.get_json()
    if resp.status_code == 400:
        assert payload["error"]
    else:
        assert "results" in payload or "runtime_s" in payload or "new" in payload
