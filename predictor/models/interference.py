"""Co-location interference: each job's speed next to another, relative to running alone.

One model predicts ``speed(a | b)`` from both jobs' solo profiles; a pair's two
speeds are ``speed(a | b)`` and ``speed(b | a)`` from the same model, and it is
trained on both orientations of every measured pair. Three predictors share this
code path: XGBoost (the model), a random forest and the utilisation heuristic
``min(1, 100 / (util_a + util_b))`` (baselines).

Features come from profiles only (utilisation, memory-bandwidth use, GPU memory,
batch size, mixed precision; each job's value, the pair's sum, the job's share
of it, and the heuristic), never model names, so they carry over to model
families the training data never saw.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from predictor.interference.profiles import JobProfile, parse_profile
from predictor.state import atomic_write_bytes

Kind = Literal["xgboost", "random_forest", "heuristic"]
KINDS: tuple[Kind, ...] = ("xgboost", "random_forest", "heuristic")

#: Profile fields the model reads by default (missing values are NaN).
BASE_FIELDS: tuple[str, ...] = ("gpu_util", "gmem_util", "gmem_mb", "batch_size", "amp")
#: Fields with no meaningful "share" of the pair (flags).
_FLAGS = frozenset({"amp"})
#: Fields used on a log2 scale (sizes spanning orders of magnitude).
_LOG2 = frozenset({"batch_size", "gmem_mb"})
_FORMAT = "foresight-interference-v1"

XGB_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "max_depth": 3,
    "learning_rate": 0.15,
    "subsample": 0.8,
    "colsample_bytree": 0.5,
    "min_child_weight": 1,
}
#: Physical monotonicity (by feature name): a job gets no faster as its co-runner (or the
#: pair) uses more of the GPU. It raised recall on unseen pairs (0.709 -> 0.744); on
#: held-out model families it made no measurable difference.
MONOTONE: dict[str, int] = {
    "gpu_util_b": -1,
    "gpu_util_sum": -1,
    "gmem_util_b": -1,
    "gmem_util_sum": -1,
    "util_product": -1,
    "heuristic": 1,
    "util_excess": -1,
}
#: Field sets a profile may lack, each with its own estimator: profiles learned from Slurm
#: accounting (utilisation and GPU memory only), and utilisation alone.
PARTIAL_PROFILES: tuple[tuple[str, ...], ...] = (
    ("gmem_util", "batch_size", "amp"),
    ("gmem_util", "gmem_mb", "batch_size", "amp"),
)
#: Speed below which a job counts as slowed down by more than 15%.
SLOW_CUT = 0.85
#: Decision-focused training weights, ``1 + gain * exp(-((y - SLOW_CUT) / width)^2)``: errors
#: on measured speeds near the "slowdown worse than 15%" boundary (where a placement decision
#: flips) weigh up to ``1 + gain`` times more. Grouped CV, mean of 5 seeds: recall 0.730 ->
#: 0.766 at precision 0.803 -> 0.804, MAE 0.047 -> 0.048 (see docs/interference.md).
BOUNDARY_GAIN = 4.0
BOUNDARY_WIDTH = 0.07
#: Pair speeds remembered by :meth:`InterferenceModel.cached_pair_speeds` (FIFO beyond this).
PAIR_CACHE_SIZE = 65536
RF_PARAMS: dict[str, Any] = {"n_estimators": 100, "min_samples_leaf": 2}


def heuristic_speed(util_a: np.ndarray, util_b: np.ndarray) -> np.ndarray:
    """``min(1, 100 / (util_a + util_b))``: the GPU time-sliced in proportion to demand."""
    total = np.asarray(util_a, dtype=np.float64) + np.asarray(util_b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 100.0, 100.0 / total, 1.0)


def boundary_weights(
    speed: np.ndarray,
    at: float = SLOW_CUT,
    gain: float = BOUNDARY_GAIN,
    width: float = BOUNDARY_WIDTH,
) -> np.ndarray:
    """Training weights ``1 + gain * exp(-((speed - at) / width)^2)`` (all 1 when ``gain`` is 0)."""
    y = np.asarray(speed, dtype=np.float64)
    return 1.0 + gain * np.exp(-(((y - at) / width) ** 2))


def profile_matrix(
    profiles: pd.DataFrame | Sequence[JobProfile | Mapping[str, Any]],
    fields: Sequence[str] = BASE_FIELDS,
) -> np.ndarray:
    """Profiles as an ``(n, len(fields))`` float matrix; absent fields and None are NaN."""
    if isinstance(profiles, pd.DataFrame):
        cols = [
            pd.to_numeric(profiles[f], errors="coerce").to_numpy(dtype=np.float64)
            if f in profiles.columns else np.full(len(profiles), np.nan)
            for f in fields
        ]  # fmt: skip
        return np.column_stack(cols) if cols else np.empty((len(profiles), 0))
    out = np.full((len(profiles), len(fields)), np.nan)
    for i, p in enumerate(profiles):
        data = p.model_dump() if isinstance(p, JobProfile) else p
        for j, f in enumerate(fields):
            v = data.get(f)
            if v is not None:
                out[i, j] = float(v)
    return out


def pair_feature_names(fields: Sequence[str]) -> list[str]:
    """Names of the :func:`pair_features` columns, in order."""
    names: list[str] = []
    for f in fields:
        names += [f"{f}_a", f"{f}_b", f"{f}_sum"] + ([] if f in _FLAGS else [f"{f}_share"])
    if "gpu_util" in fields:
        names += ["util_product", "heuristic", "util_excess"]
    return names


def pair_features(a: np.ndarray, b: np.ndarray, fields: Sequence[str]) -> np.ndarray:
    """Features of ``speed(a | b)``: per field a, b, a+b and a/(a+b); then util product,
    the heuristic and the util excess over 100 (when ``gpu_util`` is a field)."""
    a = np.array(a, dtype=np.float64)
    b = np.array(b, dtype=np.float64)
    logs = [j for j, f in enumerate(fields) if f in _LOG2]
    if logs:
        a[:, logs] = np.log2(np.maximum(a[:, logs], 1.0))
        b[:, logs] = np.log2(np.maximum(b[:, logs], 1.0))
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, a / total, np.where(np.isnan(total), np.nan, 0.5))
    stacked = np.concatenate([a, b, total, share], axis=1)
    out = stacked[:, _column_order(tuple(fields))]
    if "gpu_util" in fields:
        j = list(fields).index("gpu_util")
        ua, ub = a[:, j], b[:, j]
        extra = np.column_stack(
            [ua * ub / 100.0, heuristic_speed(ua, ub), np.maximum(ua + ub - 100.0, 0.0)]
        )
        out = np.concatenate([out, extra], axis=1)
    return out


@lru_cache(maxsize=16)
def _column_order(fields: tuple[str, ...]) -> list[int]:
    """Where each per-field feature sits in ``[a | b | a+b | share]`` (see pair_feature_names)."""
    k = len(fields)
    order: list[int] = []
    for j, f in enumerate(fields):
        order += [j, k + j, 2 * k + j] + ([] if f in _FLAGS else [3 * k + j])
    return order


class InterferenceModel:
    """Predicts a job's co-located speed relative to solo from both solo profiles.

    ``kind`` picks XGBoost, a random forest or the heuristic (no training).
    ``clip_target`` caps training targets (co-located runs measured faster than
    solo are noise for placement; None keeps them). ``monotone`` applies
    :data:`MONOTONE` to XGBoost. ``partial_profiles`` lists field sets that profiles
    may lack: one more estimator is trained without each, and rows missing fields
    are routed to the smallest such estimator that covers them. ``boundary`` is
    ``(gain, width)`` of :func:`boundary_weights` around :data:`SLOW_CUT` for training
    (``(0, 1)``: unweighted).
    """

    def __init__(
        self,
        kind: Kind = "xgboost",
        *,
        fields: Sequence[str] = BASE_FIELDS,
        clip_target: float | None = 1.0,
        params: Mapping[str, Any] | None = None,
        monotone: bool = True,
        partial_profiles: Sequence[Sequence[str]] | None = PARTIAL_PROFILES,
        boundary: tuple[float, float] = (BOUNDARY_GAIN, BOUNDARY_WIDTH),
        seed: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown interference model kind {kind!r}; known: {', '.join(KINDS)}")
        if kind == "heuristic" and "gpu_util" not in fields:
            raise ValueError("the heuristic needs the gpu_util field")
        self.kind: Kind = kind
        self.fields = tuple(fields)
        self.clip_target = clip_target
        self.params = dict(params or (XGB_PARAMS if kind == "xgboost" else RF_PARAMS))
        self.monotone = monotone
        self.partial_profiles = tuple(tuple(d) for d in (partial_profiles or ()))
        gain, width = boundary
        if gain < 0 or width <= 0:
            raise ValueError(f"boundary needs gain >= 0 and width > 0, got {boundary}")
        self.boundary = (float(gain), float(width))
        self.seed = seed
        self._est: Any = None
        self._cache: OrderedDict[tuple[Any, ...], float] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def fitted(self) -> bool:
        """Whether ``predict`` can run (the heuristic always can)."""
        return self.kind == "heuristic" or self._est is not None

    def fit(
        self,
        a: pd.DataFrame | np.ndarray,
        b: pd.DataFrame | np.ndarray,
        speed_a: np.ndarray,
        speed_b: np.ndarray,
    ) -> InterferenceModel:
        """Train on measured pairs, both orientations: (a, b) -> speed_a and (b, a) -> speed_b."""
        xa, xb = self._matrix(a), self._matrix(b)
        y = np.concatenate([np.asarray(speed_a, float), np.asarray(speed_b, float)])
        if len(xa) != len(xb) or len(y) != 2 * len(xa) or len(xa) == 0:
            raise ValueError("fit needs equal, non-empty pair sides and one speed per side")
        if not np.all(np.isfinite(y)) or np.any(y < 0):
            raise ValueError("speeds must be finite and non-negative")
        self.clear_cache()
        if self.kind == "heuristic":
            return self
        # One estimator per field set: all fields, then each partial profile's subset
        # (trained with those fields blank), so a profile lacking fields is scored by a
        # model that never relied on them.
        self._est = {(): self._train(xa, xb, y)}
        for drop in self.partial_profiles:
            cols = [j for j, f in enumerate(self.fields) if f in drop]
            if cols:
                ma, mb = xa.copy(), xb.copy()
                ma[:, cols] = mb[:, cols] = np.nan
                self._est[tuple(drop)] = self._train(ma, mb, y)
        return self

    def _train(self, xa: np.ndarray, xb: np.ndarray, y: np.ndarray) -> Any:
        x = np.vstack([pair_features(xa, xb, self.fields), pair_features(xb, xa, self.fields)])
        if self.clip_target is not None:
            y = np.minimum(y, self.clip_target)
        weight = boundary_weights(y, SLOW_CUT, *self.boundary)
        if self.kind == "xgboost":
            import xgboost as xgb

            params = dict(self.params)
            if self.monotone and "monotone_constraints" not in params:
                names = pair_feature_names(self.fields)
                params["monotone_constraints"] = (
                    "(" + ",".join(str(MONOTONE.get(n, 0)) for n in names) + ")"
                )
            est = xgb.XGBRegressor(random_state=self.seed, n_jobs=1, **params)
            est.fit(x, y, sample_weight=weight)
            return est.get_booster()
        from sklearn.ensemble import RandomForestRegressor

        est = RandomForestRegressor(random_state=self.seed, n_jobs=1, **self.params)
        return est.fit(x, y, sample_weight=weight)

    def _route(self, xa: np.ndarray, xb: np.ndarray) -> list[tuple[tuple[str, ...], np.ndarray]]:
        """Which estimator scores each row: the smallest trained field set covering the
        fields missing on either side (the all-fields model when none does)."""
        missing = np.isnan(xa) | np.isnan(xb)
        if not missing.any():
            return [((), np.arange(len(xa)))]
        keys = sorted(self._est, key=len)
        choice = np.zeros(len(xa), dtype=int)
        for i, row in enumerate(missing):
            absent = {f for f, m in zip(self.fields, row, strict=True) if m}
            for k, key in enumerate(keys):
                if absent <= set(key):
                    choice[i] = k
                    break
        return [(keys[k], np.flatnonzero(choice == k)) for k in np.unique(choice)]

    def slowed_down(self, a: Any, b: Any, slowdown: float = 1.0 - SLOW_CUT) -> np.ndarray:
        """Whether ``a`` is predicted slowed by more than ``slowdown`` next to ``b``."""
        return self.predict(a, b) < 1.0 - slowdown

    def _matrix(self, p: pd.DataFrame | np.ndarray | Sequence[Any]) -> np.ndarray:
        if isinstance(p, np.ndarray):
            if p.ndim != 2 or p.shape[1] != len(self.fields):
                raise ValueError(f"profile matrix must be (n, {len(self.fields)}), got {p.shape}")
            m = p.astype(np.float64, copy=False)
        else:
            m = profile_matrix(p, self.fields)
        return np.where(np.isinf(m), np.nan, m)

    def predict(self, a: Any, b: Any) -> np.ndarray:
        """``speed(a | b)`` for each row pair (profiles as frames, matrices or sequences)."""
        xa, xb = self._matrix(a), self._matrix(b)
        if self.kind == "heuristic":
            j = self.fields.index("gpu_util")
            return heuristic_speed(xa[:, j], xb[:, j])
        if self._est is None:
            raise RuntimeError("interference model is not fitted")
        pred = np.empty(len(xa))
        for key, rows in self._route(xa, xb):
            x = pair_features(xa[rows], xb[rows], self.fields)
            est = self._est[key]
            pred[rows] = est.inplace_predict(x) if self.kind == "xgboost" else est.predict(x)
        return np.maximum(pred, 0.0)

    def predict_pairs(self, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
        """Both jobs' speeds for each pair, from one stacked call: (speed_a, speed_b)."""
        xa, xb = self._matrix(a), self._matrix(b)
        both = self.predict(np.vstack([xa, xb]), np.vstack([xb, xa]))
        return both[: len(xa)], both[len(xa) :]

    def cached_pair_speeds(self, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_pairs` with each (profile, co-runner profile) speed remembered.

        For the hint path and the simulator, which score the same profile pairs over and
        over: pairs seen before cost a dictionary lookup, the rest one stacked predict call.
        Thread-safe; refitting clears the cache.
        """
        xa, xb = self._matrix(a), self._matrix(b)
        n = len(xa)
        if len(xb) != n:
            raise ValueError(f"need as many co-runners as profiles, got {n} and {len(xb)}")
        # NaN != NaN, so missing values are keyed as None
        ka = [tuple(None if v != v else v for v in row) for row in xa.tolist()]
        kb = [tuple(None if v != v else v for v in row) for row in xb.tolist()]
        out = np.empty(2 * n)
        keys = [(x, y) for x, y in zip(ka, kb, strict=True)]
        keys += [(y, x) for x, y in zip(ka, kb, strict=True)]
        with self._cache_lock:
            hit = [self._cache.get(k) for k in keys]
        miss = [i for i, v in enumerate(hit) if v is None]
        for i, v in enumerate(hit):
            if v is not None:
                out[i] = v
        if miss:
            rows = np.array(miss)
            mine = np.vstack([xa, xb])[rows]
            other = np.vstack([xb, xa])[rows]
            out[rows] = self.predict(mine, other)
            with self._cache_lock:
                for i in miss:
                    self._cache[keys[i]] = float(out[i])
                while len(self._cache) > PAIR_CACHE_SIZE:
                    self._cache.popitem(last=False)
        return out[:n], out[n:]

    def clear_cache(self) -> None:
        """Forget the pair speeds remembered by :meth:`cached_pair_speeds`."""
        with self._cache_lock:
            self._cache.clear()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the pair cache and its lock."""
        state = self.__dict__.copy()
        del state["_cache"], state["_cache_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache = OrderedDict()
        self._cache_lock = threading.Lock()

    def save(self, path: Path | str) -> None:
        """Write the model atomically (a versioned pickle)."""
        state = {"format": _FORMAT, "kind": self.kind, "fields": self.fields,
                 "clip_target": self.clip_target, "params": self.params, "seed": self.seed,
                 "monotone": self.monotone,
                 "partial_profiles": self.partial_profiles, "boundary": self.boundary,
                 "est": self._est}  # fmt: skip
        atomic_write_bytes(path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    @classmethod
    def load(cls, path: Path | str) -> InterferenceModel:
        """Read a model written by ``save``; ValueError if the file is not one."""
        try:
            state = pickle.loads(Path(path).read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f"{path}: not a readable interference model ({exc})") from exc
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a {_FORMAT} file")
        model = cls(state["kind"], fields=state["fields"], clip_target=state["clip_target"],
                    params=state["params"], monotone=state["monotone"],
                    partial_profiles=state["partial_profiles"],
                    boundary=state.get("boundary", (0.0, 1.0)),  # files from before weighting
                    seed=state["seed"])  # fmt: skip
        model._est = state["est"]
        return model


@lru_cache(maxsize=1)
def default_model() -> InterferenceModel:
    """XGBoost trained on the Lucid pairs in the data folder (cached; heuristic if absent)."""
    from predictor.interference.evaluation import load_lucid
    from predictor.state import data_dir

    folder = data_dir() / "interference"
    pairs, profiles = folder / "lucid_colocate_info.csv", folder / "lucid_single_data.csv"
    if not (pairs.exists() and profiles.exists()):
        return InterferenceModel("heuristic")
    table = load_lucid(pairs, profiles)
    return InterferenceModel("xgboost").fit(table.a, table.b, table.speed_a, table.speed_b)


def pair_speeds(
    profile_a: JobProfile | Mapping[str, Any],
    profile_b: JobProfile | Mapping[str, Any],
    model: InterferenceModel | None = None,
) -> tuple[float, float]:
    """Speeds (co-located / solo) of two jobs sharing a GPU, for the simulator's co-location mode.

    ``model`` defaults to :func:`default_model` (XGBoost on the Lucid data, or the
    heuristic when that data is absent). Speeds are capped at 1.
    """
    a, b = parse_profile(profile_a), parse_profile(profile_b)
    m = model or default_model()
    speed_a, speed_b = m.cached_pair_speeds([a], [b])
    return min(1.0, float(speed_a[0])), min(1.0, float(speed_b[0]))
