"""``foresight evaluate interference``: the issue's JSON shape, train/test mode, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from predictor.cli import app

MODELS = ["DCGAN", "ResNet18", "PointNet", "TD3"]


@pytest.fixture
def lucid_slice(data: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = data / "interference"
    pairs = pd.read_csv(folder / "lucid_colocate_info.csv", index_col=0)
    pairs = pairs[pairs.model1.isin(MODELS) & pairs.model2.isin(MODELS)].iloc[::4]
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    held_out = pairs.model1.eq("TD3") | pairs.model2.eq("TD3")
    pairs[~held_out].to_csv(train)
    pairs[held_out].to_csv(test)
    return train, test, folder / "lucid_single_data.csv"


def test_grouped_cv_json_shape(lucid_slice: tuple[Path, Path, Path]) -> None:
    train, _, profiles = lucid_slice
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "interference",
            "--pairs",
            str(train),
            "--profiles",
            str(profiles),
            "--folds",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_train"] == report["n_test"] == len(pd.read_csv(train))
    assert set(report["predictors"]) == {"xgboost", "random_forest", "heuristic"}
    for metrics in report["predictors"].values():
        assert set(metrics) == {"mae", "mape", "precision_15", "recall_15"}
        assert 0 <= metrics["mae"] < 0.5


def test_train_test_mode_scores_held_out_family(
    lucid_slice: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    train, test, profiles = lucid_slice
    plot = tmp_path / "plot.png"
    result = CliRunner().invoke(app, ["evaluate", "interference", "--pairs", str(train),
                                      "--profiles", str(profiles), "--test-pairs", str(test),
                                      "--plot", str(plot)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "xgboost" in result.stdout and "heuristic" in result.stdout
    assert plot.stat().st_size > 1000


def test_missing_profiles_exit_with_a_named_error(
    lucid_slice: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    train, _, profiles = lucid_slice
    df = pd.read_csv(profiles)
    df[df.model != "DCGAN"].to_csv(tmp_path / "few.csv", index=False)
    result = CliRunner().invoke(app, ["evaluate", "interference", "--pairs", str(train),
                                      "--profiles", str(tmp_path / "few.csv")])  # fmt: skip
    assert result.exit_code == 1
    assert "no solo profile" in result.output and "DCGAN" in result.output


def test_leave_family_out_scores_every_family(lucid_slice: tuple[Path, Path, Path]) -> None:
    train, _, profiles = lucid_slice
    result = CliRunner().invoke(app, ["evaluate", "interference", "--pairs", str(train),
                                      "--profiles", str(profiles), "--holdout", "family",
                                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    train_pairs = pd.read_csv(train)
    # each pair is scored once per held-out family it contains
    expected = sum(((train_pairs.model1 == f) | (train_pairs.model2 == f)).sum() for f in MODELS)
    assert report["n_test"] == expected
    bad = CliRunner().invoke(app, ["evaluate", "interference", "--pairs", str(train),
                                   "--profiles", str(profiles), "--holdout", "model"])  # fmt: skip
    assert bad.exit_code == 2 and "--holdout" in bad.output
