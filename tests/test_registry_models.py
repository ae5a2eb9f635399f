"""ModelRegistry: save/activate/rollback, corrupted artifacts, feature-schema mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from predictor.features import FEATURE_NAMES
from predictor.models.duration import DurationConfig, DurationModel
from predictor.registry import ModelLoadError, ModelRegistry


def _model(seed: int = 0) -> DurationModel:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, len(FEATURE_NAMES))).astype(np.float32)
    run = np.exp(3 + X[:, 0])
    return DurationModel(DurationConfig(n_estimators=5)).fit(X, run)


def test_save_activate_rollback(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v1 = reg.save(_model(), data_digest="sha256:x", metrics={"a": 1})
    v2 = reg.save(_model(1))
    assert reg.versions() == [v1, v2] and reg.active() == v2
    meta = reg.metadata(v1)
    assert meta["data_digest"] == "sha256:x" and meta["feature_names"] == list(FEATURE_NAMES)
    assert {"xgboost", "numpy"} <= set(meta["libraries"]) and meta["created"]
    assert reg.rollback() == v1 and reg.active() == v1
    reg.activate(v2)
    assert reg.active() == v2
    assert isinstance(reg.load(), DurationModel)


def test_save_without_activation_and_empty_registry(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    with pytest.raises(ModelLoadError, match="no active model"):
        reg.load()
    v = reg.save(_model(), activate=False)
    assert reg.active() is None and reg.versions() == [v]
    with pytest.raises(ModelLoadError, match="no earlier active version"):
        reg.rollback()


def test_corrupted_artifact_names_path_and_reason(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v = reg.save(_model())
    model_file = tmp_path / "duration" / v / "model.pkl"
    model_file.write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError) as err:
        reg.load(v)
    assert str(model_file) in str(err.value) and "corrupted" in err.value.reason
    with pytest.raises(ModelLoadError):
        reg.activate(v)  # a broken version is never activated


def test_schema_mismatch_refuses_to_load(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v = reg.save(_model())
    meta_path = tmp_path / "duration" / v / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["feature_schema_version"] = 999
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="feature schema v999"):
        reg.load(v)


def test_failed_save_writes_nothing(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    with pytest.raises(RuntimeError):
        reg.save(DurationModel())  # unfitted: save fails mid-way
    assert reg.versions() == [] and reg.active() is None
