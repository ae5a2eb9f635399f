"""Metrics on hand-computed examples, the model API, causal replay, and a real-log check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictor.evaluation import runtime_metrics
from predictor.features import FEATURE_NAMES
from predictor.logs.schema import to_canonical
from predictor.models.duration import (
    CausalSchedule,
    DurationConfig,
    DurationModel,
    ModelSchemaError,
    anchor_log,
    causal_predictions,
)


def test_metrics_hand_computed() -> None:
    m = runtime_metrics(np.array([100.0, 50.0, 400.0]), np.array([100.0, 100.0, 100.0]))
    assert m["accuracy"] == pytest.approx((1 + 0.5 + 0.25) / 3)
    assert m["within_2x"] == pytest.approx(2 / 3)
    assert m["median_ape"] == pytest.approx(0.5)  # |p-a|/a = 0, .5, 3
    assert m["mae_log10"] == pytest.approx((0 + math.log10(2) + math.log10(4)) / 3)
    perfect = runtime_metrics(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0]))
    assert perfect["spearman"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        runtime_metrics(np.array([1.0]), np.array([0.0]))


def _synthetic(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 20, n)
    base = np.exp(rng.normal(6, 1.5, 20))[users]
    run = base * np.exp(rng.normal(0, 0.2, n))
    submit = np.sort(rng.uniform(0, 3e6, n))
    return to_canonical(pd.DataFrame({
        "job_id": np.arange(n).astype(str), "user": users.astype(str), "cpus": 1 + users % 4,
        "time_limit": base * 4, "submit_time": submit, "start_time": submit,
        "end_time": submit + run, "run_time": run,
    }))


def test_model_predicts_intervals_and_gpu_time(tmp_path: Path) -> None:
    jobs = _synthetic()
    pred = causal_predictions(jobs, schedule=CausalSchedule(first_fit=1000))
    assert list(pred.index) == list(jobs.index)
    assert {"runtime_s", "runtime_lo_s", "runtime_hi_s", "last2_s", "helios_s"} <= set(pred)
    tail = pred.iloc[1000:]
    assert (tail["runtime_lo_s"] <= tail["runtime_s"]).all()
    assert (tail["runtime_s"] <= tail["runtime_hi_s"]).all()
    assert (pred["model_fit"].iloc[:1000] == -1).all() and (tail["model_fit"] >= 0).all()
    acc = runtime_metrics(tail["runtime_s"].to_numpy(), jobs["run_time"].to_numpy()[1000:])
    assert acc["accuracy"] > 0.7  # per-user run times are tight around the user's level

    X = np.random.default_rng(1).normal(size=(600, len(FEATURE_NAMES)))
    model = DurationModel().fit(X, np.exp(4 + X[:, 0]))
    frame = model.predict(X[:5], gpus=np.array([0, 1, 2, 4, 8]))
    assert np.allclose(frame["gpu_time_s"], frame["runtime_s"] * [0, 1, 2, 4, 8])
    one = model.predict_one(X[0])
    assert one[0] == pytest.approx(frame["runtime_s"].iloc[0], rel=1e-5)
    model.save(tmp_path)
    again = DurationModel.load(tmp_path)
    assert np.allclose(again.predict(X[:5])["runtime_s"], frame["runtime_s"])


def test_anchor_scales_the_limit_by_the_most_specific_ratio() -> None:
    X = np.full((3, len(FEATURE_NAMES)), np.nan)
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    X[:, col["req_limit"]] = math.log1p(3600.0)
    X[:, col["all_limit_ratio"]] = math.log(0.5)
    X[:, col["all_last2"]] = math.log(100.0)
    X[0, col["user_limit_ratio"]] = math.log(0.1)  # the user's own ratio wins
    X[1:, col["user_med5"]] = math.log(42.0)
    X[2, col["req_limit"]] = np.nan  # no limit: the user's last-5 median
    assert np.exp(anchor_log(X)) == pytest.approx([360.0, 1800.0, 42.0])
    X[0, col["template_limit_ratio"]] = math.log(0.2)  # same user, shape and limit: first
    assert np.exp(anchor_log(X))[0] == pytest.approx(720.0)
    X[0, col["template_med5"]] = math.log(180.0)  # ... averaged with its last-5 median
    assert np.exp(anchor_log(X))[0] == pytest.approx(math.sqrt(720.0 * 180.0))
    model = DurationModel().fit(np.random.default_rng(3).normal(size=(100, X.shape[1])),
                                np.full(100, 60.0))
    for row in X:  # the one-row fast path computes the same anchor
        assert model.predict_one(row)[0] == pytest.approx(model.predict(row[None])["runtime_s"][0])


def test_model_of_another_anchor_version_refuses_to_load(tmp_path: Path) -> None:
    X = np.random.default_rng(2).normal(size=(100, len(FEATURE_NAMES)))
    model = DurationModel().fit(X, np.exp(4 + X[:, 0]))
    del model.anchor_version  # as pickled before the anchor was versioned
    model.save(tmp_path)
    with pytest.raises(ModelSchemaError, match="anchor v1"):
        DurationModel.load(tmp_path)


def test_causal_predictions_ignore_future_jobs() -> None:
    jobs = _synthetic(800)
    full = causal_predictions(jobs, schedule=CausalSchedule(first_fit=500, retrain_every=10**6))
    # changing run times of jobs that end after job k's submit cannot change job k's prediction
    k = 600
    later = jobs["end_time"] > jobs["submit_time"].iloc[k]
    changed = jobs.copy()
    changed.loc[later & (changed.index != k), "run_time"] *= 7.0
    changed.loc[later, "end_time"] = changed["start_time"] + changed["run_time"]
    again = causal_predictions(changed, schedule=CausalSchedule(first_fit=500,
                                                                retrain_every=10**6))
    assert again["runtime_s"].iloc[k] == pytest.approx(full["runtime_s"].iloc[k], rel=1e-6)
    assert again["last2_s"].iloc[k] == pytest.approx(full["last2_s"].iloc[k])


@pytest.mark.timeout(150)
def test_cli_train_and_evaluate_on_a_real_log_slice(
    data: Path, tmp_path: Path, foresight_home: Path
) -> None:
    """End to end: ``foresight train`` + ``foresight evaluate duration --json`` on 6000 KTH jobs."""
    import gzip
    import json

    from typer.testing import CliRunner

    from predictor.cli import app
    from predictor.registry import ModelRegistry

    with gzip.open(data / "hpc_swf" / "KTH-SP2-1996-2.1-cln.swf.gz", "rt") as fh:
        lines = fh.readlines()
    body = [ln for ln in lines if not ln.startswith(";")][:6000]
    log = tmp_path / "kth-slice.swf"
    log.write_text("".join([ln for ln in lines if ln.startswith(";")] + body))
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--log", str(log), "--json"])
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout.strip().splitlines()[-1])
    assert summary["n_jobs"] > 5000 and summary["skipped_lines"] == 0
    assert ModelRegistry().active() == summary["version"]
    evaluated = runner.invoke(app, ["evaluate", "duration", "--log", str(log), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert set(report) == {"log", "n_train", "n_test", "predictors"}
    preds = report["predictors"]
    assert {"foresight", "xgboost", "random_forest", "requested", "last2",
            "helios_naive"} == set(preds)
    assert preds["foresight"]["accuracy"] > preds["last2"]["accuracy"]


def test_baselines_without_inputs_are_omitted() -> None:
    from predictor.evaluation import evaluate_duration

    jobs = _synthetic(200).assign(user="", time_limit=np.nan)
    report = evaluate_duration(jobs, predictors=("requested", "last2", "helios_naive"))
    assert report["predictors"] == {}  # no users, names or limits: no baseline applies
    named = _synthetic(200).assign(time_limit=np.nan)
    report = evaluate_duration(named, predictors=("requested", "last2", "helios_naive"))
    assert set(report["predictors"]) == {"last2", "helios_naive"}
    assert report["n_train"] == 140 and report["n_test"] == 60


def test_fits_side_by_side_equal_fits_in_turn() -> None:
    from predictor.models.duration import fit_models

    X = np.random.default_rng(5).normal(size=(800, len(FEATURE_NAMES))).astype(np.float32)
    run = np.exp(4 + X[:, 0])
    rows = [np.arange(500), slice(100, 800), np.arange(0, 800, 2)]
    done: list[int] = []
    config = DurationConfig(n_estimators=20)
    parallel = fit_models(config, X, run, rows, workers=2, done=done.append)
    serial = fit_models(config, X, run, rows, workers=1)
    assert done == [1, 2, 3] and len(parallel) == 3
    for a, b in zip(parallel, serial, strict=True):
        assert a.n_train == b.n_train and a.fit_cpu_s > 0
        np.testing.assert_array_equal(a.predict_log(X[:50]), b.predict_log(X[:50]))
