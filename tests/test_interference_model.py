"""The interference model: symmetric pairs, baselines in one code path, save/load, pair_speeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictor.interference.evaluation import (
    PairTable,
    evaluate,
    interference_metrics,
    load_gavel,
    load_lucid,
    load_lucid_profiles,
)
from predictor.interference.profiles import ProfileError
from predictor.models.interference import (
    SLOW_CUT,
    InterferenceModel,
    boundary_weights,
    heuristic_speed,
    pair_feature_names,
    pair_features,
    pair_speeds,
)

SMALL_XGB = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.2}


@pytest.fixture(scope="module")
def lucid(data: Path) -> PairTable:
    folder = data / "interference"
    return load_lucid(folder / "lucid_colocate_info.csv", folder / "lucid_single_data.csv")


def test_heuristic_is_time_slicing_share() -> None:
    np.testing.assert_allclose(heuristic_speed([30, 80, 0], [50, 120, 0]), [1.0, 0.5, 1.0])
    model = InterferenceModel("heuristic")
    a, b = pd.DataFrame({"gpu_util": [80.0]}), pd.DataFrame({"gpu_util": [120.0]})
    speed_a, speed_b = model.predict_pairs(a, b)
    assert speed_a[0] == speed_b[0] == pytest.approx(0.5)


def test_feature_names_match_columns() -> None:
    fields = ("gpu_util", "gmem_util", "amp")
    x = pair_features(np.ones((3, 3)), np.ones((3, 3)), fields)
    assert x.shape[1] == len(pair_feature_names(fields))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="xgboost, random_forest, heuristic"):
        InterferenceModel("svm")  # type: ignore[arg-type]


def test_lucid_loader_joins_every_pair(lucid: PairTable) -> None:
    assert len(lucid) == 1091
    assert len(np.unique(lucid.group)) == 46
    assert lucid.a["gpu_util"].between(0, 100).all()
    assert set(lucid.a.columns) >= {"gpu_util", "gmem_util", "gmem_mb", "batch_size", "amp"}


@pytest.mark.parametrize("kind", ["xgboost", "random_forest"])
def test_one_model_gives_both_speeds_symmetrically(lucid: PairTable, kind: str) -> None:
    params = SMALL_XGB if kind == "xgboost" else {"n_estimators": 20}
    model = InterferenceModel(kind, params=params).fit(  # type: ignore[arg-type]
        lucid.a, lucid.b, lucid.speed_a, lucid.speed_b
    )
    sa, sb = model.predict_pairs(lucid.a[:50], lucid.b[:50])
    rb, ra = model.predict_pairs(lucid.b[:50], lucid.a[:50])
    np.testing.assert_allclose(sa, ra)
    np.testing.assert_allclose(sb, rb)
    # in-sample fit beats the heuristic clearly
    fitted = np.concatenate(model.predict_pairs(lucid.a, lucid.b))
    actual = np.concatenate([lucid.speed_a, lucid.speed_b])
    heur = heuristic_speed(np.r_[lucid.a.gpu_util, lucid.b.gpu_util],
                           np.r_[lucid.b.gpu_util, lucid.a.gpu_util])  # fmt: skip
    assert np.mean(np.abs(fitted - actual)) < np.mean(np.abs(heur - actual))


def test_xgboost_is_monotone_in_co_runner_load(lucid: PairTable) -> None:
    model = InterferenceModel("xgboost", params=SMALL_XGB).fit(
        lucid.a, lucid.b, lucid.speed_a, lucid.speed_b
    )
    me = lucid.a.iloc[[0] * 11].reset_index(drop=True)
    other = lucid.b.iloc[[0] * 11].reset_index(drop=True).assign(gpu_util=np.linspace(0, 100, 11))
    speeds = model.predict(me, other)
    # constrained features are monotone; the unconstrained utilisation share may wiggle a little
    assert np.max(np.diff(speeds)) < 0.01
    assert speeds[-1] < speeds[0] - 0.05


def test_partial_profiles_are_scored_by_a_model_without_those_fields(lucid: PairTable) -> None:
    model = InterferenceModel("xgboost", params=SMALL_XGB).fit(
        lucid.a, lucid.b, lucid.speed_a, lucid.speed_b
    )
    actual = np.concatenate([lucid.speed_a, lucid.speed_b])
    slurm_like = ["gmem_util", "batch_size", "amp"]  # what sacct's TRESUsage gives us
    a, b = lucid.a.drop(columns=slurm_like), lucid.b.drop(columns=slurm_like)
    routed = model._route(model._matrix(a), model._matrix(b))
    assert [key for key, _ in routed] == [tuple(slurm_like)]
    partial = np.concatenate(model.predict_pairs(a, b))
    heur = heuristic_speed(np.r_[lucid.a.gpu_util, lucid.b.gpu_util],
                           np.r_[lucid.b.gpu_util, lucid.a.gpu_util])  # fmt: skip
    assert np.mean(np.abs(partial - actual)) < np.mean(np.abs(heur - actual))
    util_only = np.concatenate(model.predict_pairs(lucid.a[["gpu_util"]], lucid.b[["gpu_util"]]))
    assert np.all(np.isfinite(util_only))
    assert np.mean(np.abs(util_only - actual)) < np.mean(np.abs(heur - actual))


def test_save_load_round_trip(lucid: PairTable, tmp_path: Path) -> None:
    model = InterferenceModel("xgboost", params=SMALL_XGB).fit(
        lucid.a, lucid.b, lucid.speed_a, lucid.speed_b
    )
    path = tmp_path / "interference.pkl"
    model.save(path)
    again = InterferenceModel.load(path)
    np.testing.assert_allclose(again.predict(lucid.a, lucid.b), model.predict(lucid.a, lucid.b))
    (tmp_path / "junk.pkl").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable interference model"):
        InterferenceModel.load(tmp_path / "junk.pkl")


def test_unfitted_model_refuses_to_predict() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        InterferenceModel("xgboost").predict([{"gpu_util": 50}], [{"gpu_util": 50}])


def test_pair_speeds_for_the_simulator() -> None:
    model = InterferenceModel("heuristic")
    assert pair_speeds({"gpu_util": 80}, {"gpu_util": 70}, model) == pytest.approx((2 / 3, 2 / 3))
    assert pair_speeds({"gpu_util": 10}, {"gpu_util": 20}, model) == (1.0, 1.0)
    with pytest.raises(ProfileError, match="gpu_util"):
        pair_speeds({"gpu_util": 190}, {"gpu_util": 20}, model)


def test_metrics_on_known_values() -> None:
    m = interference_metrics(np.array([0.8, 0.9, 0.7, 1.0]), np.array([0.8, 0.8, 0.95, 1.0]))
    assert m["mae"] == pytest.approx((0 + 0.1 + 0.25 + 0) / 4)
    assert m["precision_15"] == pytest.approx(0.5)
    assert m["recall_15"] == pytest.approx(0.5)
    none = interference_metrics(np.ones(3), np.ones(3))
    assert none["precision_15"] is None and none["recall_15"] is None


def test_grouped_cv_scores_unseen_pairs(lucid: PairTable) -> None:
    keep = np.isin(lucid.group, np.unique(lucid.group)[:8])
    table = lucid.take(np.flatnonzero(keep))
    report, preds, actual = evaluate(table, n_splits=4, kinds=("heuristic", "xgboost"))
    assert report["n_train"] == report["n_test"] == len(table)
    assert set(report["predictors"]) == {"heuristic", "xgboost"}
    heur = heuristic_speed(np.r_[table.a.gpu_util, table.b.gpu_util],
                           np.r_[table.b.gpu_util, table.a.gpu_util])  # fmt: skip
    assert report["predictors"]["heuristic"]["mae"] == pytest.approx(np.mean(np.abs(heur - actual)))
    assert np.all(np.isfinite(preds["xgboost"]))


def test_missing_profile_is_named(tmp_path: Path, data: Path) -> None:
    folder = data / "interference"
    profiles = pd.read_csv(folder / "lucid_single_data.csv")
    profiles[profiles.model != "LSTM"].to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(ValueError, match=r"no solo profile.*LSTM"):
        load_lucid(folder / "lucid_colocate_info.csv", tmp_path / "p.csv")
    profiles.loc[0, "gpu_util"] = 140
    profiles.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ProfileError, match=r"line 2.*gpu_util"):
        load_lucid(folder / "lucid_colocate_info.csv", tmp_path / "bad.csv")


def test_gavel_pairs_are_relative_speeds(data: Path) -> None:
    table = load_gavel(data / "interference" / "gavel_physical_cluster_throughputs.json")
    speeds = np.concatenate([table.speed_a, table.speed_b])
    assert len(table) > 500
    assert np.all(speeds > 0) and np.median(speeds) < 1
    assert table.fields == ("batch_size", "gpu_speedup", "solo_throughput")


@pytest.mark.slow
def test_default_model_trained_on_lucid_orders_pairs_sensibly(data: Path) -> None:
    heavy = {"gpu_util": 97, "gmem_util": 75, "gmem_mb": 3900, "batch_size": 64, "amp": False}
    light = {"gpu_util": 20, "gmem_util": 5, "gmem_mb": 2200, "batch_size": 32, "amp": True}
    both_heavy = pair_speeds(heavy, heavy)
    both_light = pair_speeds(light, light)
    assert both_heavy[0] < 0.85 and both_heavy[1] < 0.85
    assert min(both_light) > max(both_heavy)
    assert all(0 < s <= 1 for s in both_heavy + both_light)


def test_repeated_profiles_are_averaged(tmp_path: Path, data: Path) -> None:
    folder = data / "interference"
    profiles = pd.read_csv(folder / "lucid_single_data.csv")
    twice = pd.concat([profiles, profiles.iloc[[0]].assign(gpu_util=profiles.gpu_util[0] - 10)])
    twice.to_csv(tmp_path / "twice.csv", index=False)
    table = load_lucid(folder / "lucid_colocate_info.csv", tmp_path / "twice.csv")
    key = profiles.iloc[0]
    loaded = load_lucid_profiles(tmp_path / "twice.csv")
    row = loaded.loc[(key.model, key.dataset, int(key.batchsize), int(key.amp))]
    assert row.gpu_util == pytest.approx(key.gpu_util - 5)
    assert len(table) == 1091


def test_boundary_weights_peak_at_the_slowdown_cut() -> None:
    w = boundary_weights(np.array([SLOW_CUT, SLOW_CUT + 0.07, 0.5, 1.0]), gain=4.0, width=0.07)
    assert w[0] == pytest.approx(5.0)
    assert w[1] == pytest.approx(1 + 4 / np.e)
    assert w[2] == pytest.approx(1.0, abs=1e-6) and w[3] < w[1]
    np.testing.assert_array_equal(boundary_weights(np.array([0.2, 0.85]), gain=0.0), [1.0, 1.0])
    with pytest.raises(ValueError, match="boundary"):
        InterferenceModel("xgboost", boundary=(1.0, 0.0))


def test_boundary_weighting_changes_the_fit(lucid: PairTable) -> None:
    def fit(boundary: tuple[float, float]) -> np.ndarray:
        model = InterferenceModel("xgboost", params=SMALL_XGB, boundary=boundary)
        return model.fit(lucid.a, lucid.b, lucid.speed_a, lucid.speed_b).predict(lucid.a, lucid.b)

    assert np.max(np.abs(fit((0.0, 1.0)) - fit((4.0, 0.07)))) > 1e-3


def test_cached_pair_speeds_match_predict_pairs(lucid: PairTable) -> None:
    model = InterferenceModel("xgboost", params=SMALL_XGB).fit(
        lucid.a, lucid.b, lucid.speed_a, lucid.speed_b
    )
    a, b = lucid.a[:40], lucid.b[:40]
    expected = model.predict_pairs(a, b)
    for _ in range(2):  # cold, then every pair from the cache
        got = model.cached_pair_speeds(a, b)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
    assert len(model._cache) > 0
    # partial profiles (NaN fields) are cached too and still routed to their estimator
    partial = model.cached_pair_speeds(a[["gpu_util"]], b[["gpu_util"]])
    np.testing.assert_allclose(
        partial[0], model.predict_pairs(a[["gpu_util"]], b[["gpu_util"]])[0], rtol=1e-6
    )
    with pytest.raises(ValueError, match="as many co-runners"):
        model.cached_pair_speeds(a, b[:3])
    model.fit(lucid.a[:200], lucid.b[:200], lucid.speed_a[:200], lucid.speed_b[:200])
    assert len(model._cache) == 0  # refitting forgets old speeds


def test_model_pickles_without_its_cache(lucid: PairTable) -> None:
    import pickle

    model = InterferenceModel("heuristic")
    model.cached_pair_speeds(lucid.a[:5], lucid.b[:5])
    again = pickle.loads(pickle.dumps(model))
    assert len(again._cache) == 0
    np.testing.assert_allclose(again.cached_pair_speeds(lucid.a[:5], lucid.b[:5])[0],
                               model.predict_pairs(lucid.a[:5], lucid.b[:5])[0])  # fmt: skip


def test_model_files_from_before_boundary_weighting_load(lucid: PairTable, tmp_path: Path) -> None:
    import pickle

    model = InterferenceModel("xgboost", params=SMALL_XGB).fit(
        lucid.a, lucid.b, lucid.speed_a, lucid.speed_b
    )
    path = tmp_path / "m.pkl"
    model.save(path)
    state = pickle.loads(path.read_bytes())
    del state["boundary"]
    path.write_bytes(pickle.dumps(state))
    old = InterferenceModel.load(path)
    assert old.boundary == (0.0, 1.0)
    np.testing.assert_allclose(old.predict(lucid.a, lucid.b), model.predict(lucid.a, lucid.b))
