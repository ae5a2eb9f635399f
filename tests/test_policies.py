"""Policies: pure functions of a queue snapshot, their orderings and the site-factor helper."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import POLICY_NAMES, get_policy, priority_to_site_factor
from policies.base import job_size


def _queue(**cols: list[float]) -> pd.DataFrame:
    return pd.DataFrame(cols)


def test_unknown_policy_lists_known_names() -> None:
    with pytest.raises(ValueError) as err:
        get_policy("lottery")
    for name in POLICY_NAMES:
        assert name in str(err.value)


def test_names_are_case_insensitive_and_params_override() -> None:
    assert get_policy(" QSSF ").name == "qssf"
    assert get_policy("qssf", max_wait=3600.0).max_wait == 3600.0
    with pytest.raises(ValueError, match="max_wait"):
        get_policy("qssf", max_wait=0)


def test_fifo_orders_by_submit_time() -> None:
    q = _queue(submit_time=[30.0, 10.0, 20.0])
    assert np.argsort(-get_policy("fifo")(q, 100.0)).tolist() == [1, 2, 0]


def test_sjf_orders_by_true_gpu_time() -> None:
    q = _queue(submit_time=[0.0, 0.0, 0.0], gpus=[4, 1, 1], cpus=[0, 0, 0], run_time=[10, 30, 20])
    # service: 40, 30, 20 GPU-seconds
    assert np.argsort(-get_policy("sjf")(q, 0.0)).tolist() == [2, 1, 0]


def test_qssf_uses_predictions_and_cpu_time_for_cpu_jobs() -> None:
    q = _queue(
        submit_time=[0.0, 0.0, 0.0],
        gpus=[0, 0, 0],
        cpus=[1, 8, 2],
        run_time=[1.0, 1.0, 1.0],  # the truth is ignored
        predicted_runtime=[100.0, 10.0, 30.0],  # CPU-time: 100, 80, 60
    )
    prio = get_policy("qssf", max_wait=np.inf)(q, 0.0)
    assert np.argsort(-prio).tolist() == [2, 1, 0]


def test_qssf_ageing_rule_is_as_documented() -> None:
    qssf = get_policy("qssf", max_wait=1000.0)
    q = _queue(
        submit_time=[0.0, 100.0, 900.0, 950.0],
        gpus=[1, 2, 1, 1],
        cpus=[0, 0, 0, 0],
        predicted_runtime=[5000.0, 10.0, 30.0, 1.0],
    )
    # below max_wait: -ln(1 + GPUs x prediction), shortest predicted service first
    np.testing.assert_allclose(qssf(q, 999.0), -np.log1p([5000.0, 20.0, 30.0, 1.0]))
    assert np.argsort(-qssf(q, 999.0)).tolist() == [3, 1, 2, 0]
    # the first job reaches max_wait at t=1000 and jumps ahead of everything
    assert np.argsort(-qssf(q, 1000.0)).tolist() == [0, 3, 1, 2]
    # promoted jobs run oldest first, ahead of the rest
    assert np.argsort(-qssf(q, 1100.0)).tolist() == [0, 1, 3, 2]
    with pytest.raises(ValueError, match="predicted_runtime"):
        qssf(_queue(submit_time=[0.0], gpus=[1], predicted_runtime=[np.nan]), 0.0)


def test_las_two_queues_fifo_within() -> None:
    las = get_policy("las", threshold=100.0)
    q = _queue(submit_time=[0.0, 5.0, 10.0], attained_service=[500.0, 0.0, 50.0])
    assert np.argsort(-las(q, 20.0)).tolist() == [1, 2, 0]
    assert las.preemption_class(q, 20.0).tolist() == [1, 0, 0]


def test_multifactor_matches_slurm_normalisation() -> None:
    mf = get_policy("multifactor")  # weights 1000/1000, max age 7 days, favour large
    q = _queue(
        submit_time=[0.0, 0.0],
        gpus=[0, 0],
        cpus=[25, 100],
        cluster_size=[100, 100],
    )
    now = 3.5 * 86400  # half of PriorityMaxAge
    np.testing.assert_allclose(mf(q, now), [500 + 250, 500 + 1000])
    older = mf(q, 30 * 86400.0)  # the age factor saturates at 1
    np.testing.assert_allclose(older, [1000 + 250, 1000 + 1000])
    small = get_policy("multifactor", favor_small=True)(q, now)
    np.testing.assert_allclose(small, [500 + 750, 500 + 0])


def test_policies_accept_plain_mappings_like_the_service() -> None:
    snapshot = {
        "submit_time": np.array([0.0, 1.0]),
        "gpus": np.array([1.0, 2.0]),
        "cpus": np.array([4.0, 8.0]),
        "run_time": np.array([10.0, 5.0]),
        "predicted_runtime": np.array([10.0, 5.0]),
    }
    for name in POLICY_NAMES:
        prio = get_policy(name)(snapshot, 2.0)
        assert prio.shape == (2,) and np.isfinite(prio).all()


def test_job_size_is_gpus_else_cpus() -> None:
    q = _queue(gpus=[2, 0, np.nan], cpus=[16, 4, np.nan])
    assert job_size(q).tolist() == [2.0, 4.0, 1.0]


def test_site_factor_ranks_into_integer_range() -> None:
    out = priority_to_site_factor(np.array([-5.0, 3.0, 3.0, 10.0]), scale=1000)
    assert out.dtype == np.int64
    assert out.tolist() == [0, 500, 500, 1000]
    assert priority_to_site_factor(np.array([1.0]), scale=7).tolist() == [7]
    assert priority_to_site_factor(np.array([])).size == 0
    with pytest.raises(ValueError):
        priority_to_site_factor(np.array([np.nan]))


def test_qssf_caps_predictions_at_the_time_limit() -> None:
    q = _queue(
        submit_time=[0.0, 0.0],
        gpus=[0, 0],
        cpus=[1, 1],
        predicted_runtime=[500.0, 100.0],
        time_limit=[60.0, np.nan],  # Slurm ends the first job by 60 s
    )
    prio = get_policy("qssf")(q, 0.0)
    np.testing.assert_allclose(prio, -np.log1p([60.0, 100.0]))


_maybe_nan = st.one_of(st.floats(0, 1e7), st.just(math.nan))


@settings(max_examples=400, deadline=None)
@given(
    predicted=st.one_of(st.floats(-10, 1e8), st.just(math.inf)),
    limit=st.one_of(st.floats(-1, 1e7), st.just(math.nan), st.just(0.0)),
    gpus=st.one_of(st.integers(0, 64).map(float), st.just(math.nan)),
    cpus=st.one_of(st.integers(0, 512).map(float), st.just(math.nan)),
    submit=_maybe_nan,
    wait=st.one_of(st.none(), st.floats(-100, 2e6)),
    max_wait=st.sampled_from([3600.0, 7 * 86400.0, math.inf]),
)
def test_qssf_scores_one_job_as_its_vectorised_call_does(
    predicted: float, limit: float, gpus: float, cpus: float, submit: float,
    wait: float | None, max_wait: float,
) -> None:  # fmt: skip
    policy = get_policy("qssf", max_wait=max_wait)
    job = {"predicted_runtime": predicted, "time_limit": limit, "gpus": gpus, "cpus": cpus,
           "submit_time": submit}  # fmt: skip
    if wait is not None:
        job["wait"] = wait
    want = policy({k: np.array([v]) for k, v in job.items()}, 1e7)[0]
    assert policy.score_one(job, 1e7) == want


def test_qssf_one_job_without_a_prediction_is_refused_as_in_the_vectorised_call() -> None:
    job = {"predicted_runtime": math.nan, "submit_time": 0.0}
    with pytest.raises(ValueError, match="predicted_runtime has missing values"):
        get_policy("qssf").score_one(job, 10.0)
