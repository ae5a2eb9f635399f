"""Request schemas: strict types, bad fields named, TRES strings, unknown fields reported."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from predictor.service.errors import field_errors
from predictor.service.schemas import (
    BatchRequest,
    CompletedJob,
    JobDescriptor,
    gpus_per_node_from_tres,
)


@pytest.mark.parametrize(
    ("tres", "gpus"),
    [
        ("gres/gpu:2", 2),
        ("gres:gpu:4", 4),
        ("gpu:a100:8", 8),
        ("gres/gpu:tesla:2,gres/shard:1", 2),
        ("gres/gpu", 1),
        ("gres/gpu=3", 3),
        ("gres/gpu:v100", 1),
        ("cpu=4,mem=8G", 0),
        ("", 0),
    ],
)
def test_tres_per_node(tres: str, gpus: int) -> None:
    assert gpus_per_node_from_tres(tres) == gpus


def test_tres_gpus_times_nodes_and_explicit_gpus_win() -> None:
    job = JobDescriptor.model_validate({"user": "u", "time_limit": 60, "nodes": 3,
                                        "tres_per_node": "gres/gpu:2"})  # fmt: skip
    assert job.total_gpus() == 6
    job = JobDescriptor.model_validate({"user": "u", "time_limit": 60, "gpus": 1,
                                        "tres_per_node": "gres/gpu:2"})  # fmt: skip
    assert job.total_gpus() == 1


def _bad_fields(body: object) -> set[str]:
    with pytest.raises(ValidationError) as info:
        JobDescriptor.model_validate_json(json.dumps(body))
    return {f.field for f in field_errors(info.value)}


def test_each_bad_field_is_named() -> None:
    body = {"time_limit": "60", "cpus": 2.5, "gpus": -1, "tres_per_node": "gpu:x:y:z",
            "nodes": True, "submit_time": -5}  # fmt: skip
    assert _bad_fields(body) == {"user", "time_limit", "cpus", "gpus", "tres_per_node",
                                 "nodes", "submit_time"}  # fmt: skip


def test_not_an_object_is_named_body() -> None:
    assert _bad_fields([1, 2]) == {"body"}


def test_batch_errors_carry_the_job_index() -> None:
    body = {"jobs": [{"user": "a", "time_limit": 60}, {"user": 7, "time_limit": 60}]}
    with pytest.raises(ValidationError) as info:
        BatchRequest.model_validate_json(json.dumps(body))
    assert [f.field for f in field_errors(info.value)] == ["jobs.1.user"]


def test_unknown_fields_are_kept_aside() -> None:
    job = JobDescriptor.model_validate_json(b'{"user":"u","time_limit":60,"zz":1,"aa":null}')
    assert job.unknown_fields() == ["aa", "zz"]


def test_time_limit_optional_but_positive_when_given() -> None:
    assert JobDescriptor.model_validate({"user": "u"}).time_limit is None
    assert JobDescriptor.model_validate({"user": "u", "time_limit": None}).time_limit is None
    assert _bad_fields({"user": "u", "time_limit": 0}) == {"time_limit"}
    assert _bad_fields({"user": "u", "time_limit": -60}) == {"time_limit"}


def test_completed_job_end_before_start_rejected() -> None:
    with pytest.raises(ValidationError, match="end_time is before start_time"):
        CompletedJob.model_validate({"job_id": 1, "user": "u", "submit_time": 0,
                                     "start_time": 10, "end_time": 5})  # fmt: skip


names = st.text(max_size=20)
valid_job = st.fixed_dictionaries(
    {"user": names},
    optional={
        "time_limit": st.floats(1, 1e6) | st.none(),  # absent or null: no limit (UNLIMITED)
        "account": names, "partition": names, "qos": names, "name": names,
        "cpus": st.integers(1, 10_000), "gpus": st.integers(0, 64),
        "nodes": st.integers(1, 1000), "mem_mb": st.floats(0, 1e7),
        "submit_time": st.floats(0, 4e9), "job_id": st.integers(0, 2**40) | st.text(min_size=1),
        "tres_per_node": st.sampled_from(["gres/gpu:2", "gres:gpu:1", "gpu:v100:4", ""]),
        "features": names,
    },
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(valid_job)
def test_valid_descriptors_validate(body: dict) -> None:
    job = JobDescriptor.model_validate_json(json.dumps(body))
    assert job.user == body["user"]
    assert job.total_gpus() >= 0
    assert job.unknown_fields() == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(JobDescriptor.model_fields)), json_values))
def test_arbitrary_bodies_validate_or_name_fields(body: dict) -> None:
    try:
        JobDescriptor.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        errors = field_errors(exc)
        assert errors
        assert all(e.field == "body" or e.field.split(".")[0] in JobDescriptor.model_fields
                   for e in errors)  # fmt: skip
