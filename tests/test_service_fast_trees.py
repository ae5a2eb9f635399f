"""The lean single-row path through XGBoost trees: exact, or not used at all."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xgboost as xgb
from service_support import make_home, sample_jobs, trained_home_dir

from predictor.config import load_config
from predictor.registry import ModelRegistry
from predictor.service import create_app, fast_trees
from predictor.service.fast_trees import CompiledTrees, lean_model

#: The single-row walks this install has (the C one is built where a compiler was there).
WALKS = ["numpy"] + (["c"] if fast_trees._tree_walk is not None else [])


def _booster(objective: str = "reg:absoluteerror", rounds: int = 40, seed: int = 0) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 12)).astype(np.float32)
    X[rng.random(X.shape) < 0.2] = np.nan  # missing values learn default directions
    y = np.nan_to_num(X[:, 0]) * 3 + np.nan_to_num(X[:, 3]) ** 2 + rng.normal(0, 0.1, 600)
    if objective == "count:poisson":
        y = np.abs(y)
    params = {"objective": objective, "max_depth": 6, "eta": 0.3, "nthread": 1}
    return xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=rounds)


@pytest.mark.parametrize("walk", WALKS)
@pytest.mark.parametrize("objective", ["reg:absoluteerror", "reg:squarederror"])
def test_compiled_trees_match_the_booster_row_by_row(objective: str, walk: str) -> None:
    booster = _booster(objective)
    compiled = CompiledTrees(booster, walk=walk)
    assert compiled.walk == walk
    X = np.concatenate([compiled.probe_rows(300, seed=3),
                        np.random.default_rng(4).normal(size=(300, 12)).astype(np.float32)])
    want = booster.inplace_predict(X)
    got = np.array([compiled.inplace_predict(x[None])[0] for x in X])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("walk", WALKS)
def test_a_row_of_the_wrong_length_is_refused_not_read_past_its_end(walk: str) -> None:
    compiled = CompiledTrees(_booster(), walk=walk)
    with pytest.raises(ValueError, match="a row of 12 features expected, got 11"):
        compiled.predict_row(np.zeros(11, dtype=np.float32))
    assert compiled.predict_row([0] * 12) == compiled.predict_row(np.zeros(12))  # ints: floats


@pytest.mark.skipif(fast_trees._tree_walk is None, reason="C extension not built on this install")
def test_the_c_walk_refuses_what_it_cannot_read() -> None:
    compiled = CompiledTrees(_booster(), walk="c")
    walk = fast_trees._tree_walk.walk
    with pytest.raises(TypeError, match="must be real number"):
        walk(["x"] * 12, compiled._nodes, compiled._roots)
    with pytest.raises(ValueError, match="has no feature"):
        walk([0.0], compiled._nodes, compiled._roots)
    with pytest.raises(ValueError, match="points outside its"):
        walk([0.0] * 12, compiled._nodes[:24], compiled._roots)
    # a split whose right child is itself, and every value goes right
    loop = np.array([(0, -np.inf, 0)], dtype=fast_trees._NODE).tobytes()
    with pytest.raises(ValueError, match="tree 0 does not reach a leaf"):
        walk([1.0] * 12, loop, np.zeros(1, dtype=np.int32).tobytes())
    with pytest.raises(TypeError, match=r"walk\(row: list\[float\], nodes: bytes, roots: bytes\)"):
        walk((0.0,) * 12, compiled._nodes, compiled._roots)


def test_an_unknown_walk_is_refused() -> None:
    with pytest.raises(ValueError, match="walk must be auto, c or numpy, not 'rust'"):
        CompiledTrees(_booster(), walk="rust")


def test_a_split_s_left_child_is_the_next_node() -> None:
    compiled = CompiledTrees(_booster(rounds=5))
    splits = np.flatnonzero(compiled.key >= 0)
    assert splits.size > 0
    assert (compiled.right[splits] > splits + 1).all()  # the right subtree starts after the left
    assert compiled.roots[0] == 0 and (np.diff(compiled.roots) > 0).all()


def test_several_rows_go_to_the_booster_itself() -> None:
    booster = _booster()
    compiled = CompiledTrees(booster)
    X = compiled.probe_rows(50)
    np.testing.assert_array_equal(compiled.inplace_predict(X), booster.inplace_predict(X))


def test_lean_model_swaps_the_estimator_on_a_copy() -> None:
    booster = _booster()
    model = SimpleNamespace(estimator=booster)
    lean = lean_model(model)
    assert isinstance(lean.estimator, CompiledTrees)
    assert model.estimator is booster  # the registry's object is left alone


def test_an_objective_that_transforms_the_margin_keeps_the_booster(caplog) -> None:
    model = SimpleNamespace(estimator=_booster("count:poisson"))
    with caplog.at_level(logging.WARNING):
        assert lean_model(model) is model
    assert "count:poisson transforms the margin" in caplog.text


def test_a_model_without_a_booster_is_served_as_it_is() -> None:
    model = SimpleNamespace(estimator=object())
    assert lean_model(model) is model
    assert lean_model(None) is None


def test_the_service_scores_with_the_lean_path_and_the_same_numbers(
    data: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    home = make_home(trained_home_dir(data, tmp_path_factory), tmp_path / "home")
    app = create_app(load_config(environ={}, state_dir=home), watch=False)
    service = app.extensions["foresight"]
    served = service.slot.current.model
    assert isinstance(served.estimator, CompiledTrees)
    registry = ModelRegistry(home / "models")
    original = registry.load(registry.active())
    client = app.test_client()
    for job in sample_jobs(home, 20):
        answer = client.post("/v1/jobs/score", json=job).get_json()
        lean = served.predict_one(_features(service, job))
        exact = original.predict_one(_features(service, job))
        assert lean == pytest.approx(exact, rel=1e-5)
        assert answer["runtime_s"] == pytest.approx(exact[0], rel=1e-4)
    service.history.close()


def test_one_job_scores_as_a_batch_of_one_does(
    data: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from predictor.service.schemas import JobDescriptor
    from predictor.service.scoring import pending_row

    home = make_home(trained_home_dir(data, tmp_path_factory), tmp_path / "home")
    service = create_app(load_config(environ={}, state_dir=home), watch=False).extensions[
        "foresight"
    ]
    loaded, store, scorer = service.slot.current, service.history.store, service.scorer
    jobs = sample_jobs(home, 12)
    variants = [*jobs, *({**j, "time_limit": None} for j in jobs[:4]),
                *({**j, "sibling_runtime_s": 123.0} for j in jobs[4:8]),
                *({**j, "gpus": 2, "submit_time": 1.0} for j in jobs[8:])]  # fmt: skip
    for job in variants:
        row = pending_row(JobDescriptor.model_validate(job), 1.7e9)
        one, batch = scorer.score_row(loaded, row, store, 1.7e9), scorer.score_rows(
            loaded, [row], store, 1.7e9
        )
        for field in ("runtime", "lo", "hi", "gpu_time", "priority"):
            assert getattr(one, field)[0] == pytest.approx(getattr(batch, field)[0], rel=1e-5)
        assert abs(one.site_factor[0] - batch.site_factor[0]) <= 1
    service.history.close()


def _features(service, job: dict) -> list[float]:
    from predictor.service.schemas import JobDescriptor
    from predictor.service.scoring import feature_row, pending_row

    row = pending_row(JobDescriptor.model_validate(job), float(job.get("submit_time", 0) or 0))
    return feature_row(row, service.history.store)


def test_any_failure_while_compiling_keeps_the_booster(caplog) -> None:
    class Booster:  # the name lean_model looks for, but unreadable
        def save_raw(self, *_args: object) -> bytes:
            raise RuntimeError("cannot dump")

    model = SimpleNamespace(estimator=Booster())
    with caplog.at_level(logging.WARNING):
        assert lean_model(model) is model
    assert "cannot dump" in caplog.text
