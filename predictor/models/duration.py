"""Run-time models: XGBoost / random forest on log run time, anchored on recency.

Users submit runs of similar jobs, so the best single guess is usually "like
their last ones". The models therefore predict the log-ratio between the run
time and an *anchor* (:func:`anchor_log`: the requested time limit scaled by
how much of their limits the most specific key's recent jobs used (first the
user's jobs of the same shape and limit), else the
median of that key's last five run times) and add the anchor back: a model
that has learned nothing predicts that recency estimate, and every split has
to earn its deviation from it. XGBoost uses an L1 objective (the median in log
space is what "accuracy" = mean min(p,a)/max(p,a) = mean exp(-|log p - log a|)
rewards). The newest training rows (held out) choose how much of the learned
correction to keep, or the plain time limit where that predicts them better
(a log without user ids has no recency to anchor on); their residual
quantiles give the interval.

``causal_predictions`` replays a log: every job gets a prediction from a model
trained only on jobs that had ended before its submit time, retrained on a
schedule, as a site would run it (the evaluation and the simulator use it).
"""

from __future__ import annotations

import math
import os
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, causal_features
from predictor.history import log_runtime

MODEL_KINDS: tuple[str, ...] = ("xgboost", "rf")
MODEL_FILE = "model.pkl"
#: Fallback anchor: the median of the last 5 jobs of the most specific key the job
#: has history for (same user+name+shape, same user+shape, same user), else the
#: cluster's last two.
ANCHOR_FEATURES: tuple[str, ...] = (
    "user_name_shape_med5",
    "user_shape_med5",
    "user_med5",
    "all_last2",
)
#: The anchor where the job has a time limit: log(limit) + the EWMA of
#: log(run / limit) of the most specific key with such history: the user's jobs
#: of the same shape and limit (``template``), then the recency chain's keys.
LIMIT_RATIO_FEATURES: tuple[str, ...] = (
    "template_limit_ratio",
    "user_name_shape_limit_ratio",
    "user_shape_limit_ratio",
    "user_limit_ratio",
    "all_limit_ratio",
)
#: The template's median of its last five log run times: averaged into the limit anchor
#: (the EWMA follows trends, the median ignores outliers; their mean did better than
#: either on the logs with limits, see docs/duration.md).
TEMPLATE_MEDIAN = "template_med5"
#: Bump when :func:`anchor_log` changes meaning: fitted models of another anchor
#: version refuse to load (their corrections are relative to the old anchor).
ANCHOR_VERSION = 3
INTERVAL_QUANTILES = (0.1, 0.9)
#: Fewest checked (held-out) rows without a time limit for the learned correction to be
#: applied to jobs without one; with fewer, such a job gets the plain recency anchor
#: (see :meth:`DurationModel._fit_no_limit`).
MIN_NO_LIMIT_ROWS = 100


class ModelSchemaError(ValueError):
    """A saved model was trained on a different feature schema than the code's."""


@dataclass
class DurationConfig:
    """Hyper-parameters of a :class:`DurationModel` (one configuration for every log)."""

    kind: str = "xgboost"
    n_estimators: int = 100
    max_depth: int = 6
    learning_rate: float = 0.1
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample: float = 0.8
    max_bin: int = 64
    rf_n_estimators: int = 50
    rf_max_rows: int = 50_000
    validation_fraction: float = 0.15  # newest rows held out to pick shrinkage and interval
    shrink_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    n_jobs: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; known: {', '.join(MODEL_KINDS)}")


_RECENCY_AT = tuple(FEATURE_NAMES.index(name) for name in ANCHOR_FEATURES)
_RATIO_AT = tuple(FEATURE_NAMES.index(name) for name in LIMIT_RATIO_FEATURES)
_LIMIT_AT = FEATURE_NAMES.index("req_limit")
_TEMPLATE_MEDIAN_AT = FEATURE_NAMES.index(TEMPLATE_MEDIAN)


def _first_known(X: np.ndarray, names: list[str], chain: Sequence[str]) -> np.ndarray:
    """Per row, the first non-NaN value among the ``chain`` columns (NaN if none)."""
    out = X[:, names.index(chain[0])].astype(np.float64)
    for name in chain[1:]:
        out = np.where(np.isnan(out), X[:, names.index(name)], out)
    return out


def anchor_log(X: np.ndarray, feature_names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """The recency anchor (log seconds) of each feature row; 0 where no history at all.

    With a time limit: ``log(limit) + EWMA log(run/limit)`` of the most specific
    key (user+shape+limit = ``template``, user+name+shape, user+shape, user,
    cluster) that has one, averaged with the template's median log run time of
    its last five jobs where the template has history; without a limit: the
    median log run time of the last five jobs of the most specific key of
    :data:`ANCHOR_FEATURES` (cluster: last two).
    """
    names = list(feature_names)
    ratio = _first_known(X, names, LIMIT_RATIO_FEATURES)
    scaled = _log_limit(X, names) + ratio
    median = X[:, names.index(TEMPLATE_MEDIAN)].astype(np.float64)
    scaled = np.where(np.isnan(median) | np.isnan(scaled), scaled, 0.5 * (scaled + median))
    return np.where(np.isnan(scaled), recency_log(X, names), scaled)


def recency_log(X: np.ndarray, feature_names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """The anchor of a row without a time limit: the median log run time of the last five
    jobs of its most specific key with history (:data:`ANCHOR_FEATURES`); 0 if none."""
    return np.nan_to_num(_first_known(X, list(feature_names), ANCHOR_FEATURES), nan=0.0)


def _no_limit(X: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Rows without a time limit (NaN ``req_limit``)."""
    return np.isnan(X[:, list(names).index("req_limit")])


def _log_limit(X: np.ndarray, names: list[str]) -> np.ndarray:
    """log(time limit) per row (the anchor's scale), NaN where the job has none."""
    req = X[:, names.index("req_limit")].astype(np.float64)  # log1p(limit), NaN if none
    with np.errstate(invalid="ignore"):
        return np.log(np.maximum(np.expm1(req), 1.0))


def _log_limit_one(req: float) -> float:
    """:func:`_log_limit` of one row's ``req_limit`` feature (``log1p(limit)``, not NaN)."""
    return math.log(max(math.expm1(req), 1.0))


def _anchor_one(row: Sequence[float]) -> float:
    """:func:`anchor_log` of one :data:`FEATURE_NAMES` row without numpy (service fast path)."""
    req = row[_LIMIT_AT]
    if not math.isnan(req):
        for i in _RATIO_AT:
            if not math.isnan(row[i]):
                scaled = _log_limit_one(req) + row[i]
                median = row[_TEMPLATE_MEDIAN_AT]
                return scaled if math.isnan(median) else 0.5 * (scaled + median)
    for i in _RECENCY_AT:
        if not math.isnan(row[i]):
            return row[i]
    return 0.0


@dataclass
class DurationModel:
    """A fitted (or fittable) run-time regressor over :data:`FEATURE_NAMES` rows."""

    config: DurationConfig = field(default_factory=DurationConfig)
    feature_names: tuple[str, ...] = FEATURE_NAMES
    schema_version: int = FEATURE_SCHEMA_VERSION
    interval: tuple[float, float] = (-1.0, 1.0)  # residual log-quantiles
    shrink: float = 1.0  # weight of the learned correction on top of the anchor
    #: ``shrink`` and ``interval`` of jobs without a time limit (None: those of every job)
    shrink_no_limit: float | None = None
    interval_no_limit: tuple[float, float] | None = None
    use_limit: bool = False  # validation preferred the plain time limit (where a job has one)
    n_train: int = 0
    estimator: Any = None
    anchor_version: int = 0  # ANCHOR_VERSION once fitted
    fit_cpu_s: float = 0.0  # CPU seconds the fit took on its thread

    # --- training ----------------------------------------------------------
    def fit(self, X: np.ndarray | pd.DataFrame, run_time: np.ndarray | pd.Series) -> DurationModel:
        """Fit on feature rows and their (positive) run times in seconds."""
        cpu0 = time.thread_time()
        X = _matrix(X)
        y = np.log(np.maximum(np.asarray(run_time, dtype=np.float64), 1.0))
        if X.shape[0] == 0:
            raise ValueError("cannot fit a duration model on zero jobs")
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"{X.shape[0]} feature rows but {y.shape[0]} run times")
        anchor = anchor_log(X, self.feature_names)
        cfg = self.config
        n_val = int(X.shape[0] * cfg.validation_fraction) if X.shape[0] >= 500 else 0
        fit_rows = slice(0, X.shape[0] - n_val)
        self.estimator = self._fit_estimator(X[fit_rows], (y - anchor)[fit_rows])
        self.use_limit, self.shrink = False, 1.0
        check = slice(X.shape[0] - n_val, X.shape[0]) if n_val else slice(0, X.shape[0])
        self._fit_no_limit(X[check], y[check])
        if n_val:
            # on the newest (held-out) rows: the plain time limit, or the anchor plus
            # the correction shrunk by each of shrink_grid (ties: the simpler, first)
            val = slice(X.shape[0] - n_val, X.shape[0])
            raw, err0 = self._raw(X[val]), (y - anchor)[val]
            candidates = [(False, lam, err0 - lam * raw) for lam in cfg.shrink_grid]
            log_limit = _log_limit(X[val], list(self.feature_names))
            if not np.isnan(log_limit).all():
                limit_err = np.where(np.isnan(log_limit), err0, y[val] - log_limit)
                candidates.insert(0, (True, 0.0, limit_err))
            scores = [float(np.exp(-np.abs(err)).mean()) for _, _, err in candidates]
            self.use_limit, self.shrink, residual = candidates[int(np.argmax(scores))]
        else:
            residual = (y - anchor) - self._raw(X)
        lo, hi = np.quantile(residual, INTERVAL_QUANTILES)
        self.interval = (float(lo), float(hi))
        self.n_train = int(X.shape[0])
        self.anchor_version = ANCHOR_VERSION
        self.fit_cpu_s = time.thread_time() - cpu0
        return self

    def _fit_no_limit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Weight and interval of the correction for jobs without a time limit.

        Where the checked rows (held-out, else training) hold :data:`MIN_NO_LIMIT_ROWS`
        jobs without a limit, the correction was fit and checked on such jobs too:
        they get the weight and interval of every other job. With fewer, a job without
        a limit gets the plain recency anchor, with that anchor's interval over all
        the checked rows: a correction learned relative to the limit anchor and never
        checked on a job without one is not applied to it (on KTH, fit on jobs with
        limits, it took the accuracy of test jobs scored without their limit from
        0.52 to 0.42; see docs/service.md).
        """
        if _no_limit(X, self.feature_names).sum() >= MIN_NO_LIMIT_ROWS:
            self.shrink_no_limit = self.interval_no_limit = None
            return
        residual = y - recency_log(X, self.feature_names)
        lo, hi = np.quantile(residual, INTERVAL_QUANTILES)
        self.shrink_no_limit, self.interval_no_limit = 0.0, (float(lo), float(hi))

    def _fit_estimator(self, X: np.ndarray, target: np.ndarray) -> Any:
        cfg = self.config
        if cfg.kind == "xgboost":
            import xgboost as xgb

            params = {
                "objective": "reg:absoluteerror",
                "tree_method": "hist",
                "max_depth": cfg.max_depth,
                "learning_rate": cfg.learning_rate,
                "min_child_weight": cfg.min_child_weight,
                "subsample": cfg.subsample,
                "colsample_bytree": cfg.colsample,
                "max_bin": cfg.max_bin,
                "nthread": cfg.n_jobs,
                "seed": cfg.seed,
            }
            dtrain = xgb.DMatrix(X, label=target, nthread=cfg.n_jobs)
            return xgb.train(params, dtrain, cfg.n_estimators)
        from sklearn.ensemble import RandomForestRegressor

        rows = X.shape[0]
        return RandomForestRegressor(
            n_estimators=cfg.rf_n_estimators,
            min_samples_leaf=int(cfg.min_child_weight),
            max_features=cfg.colsample / 2,
            max_samples=min(1.0, cfg.rf_max_rows / rows) if rows > 1 else None,
            n_jobs=cfg.n_jobs,
            random_state=cfg.seed,
        ).fit(X, target)

    # --- prediction --------------------------------------------------------
    def _raw(self, X: np.ndarray) -> np.ndarray:
        if self.estimator is None:
            raise RuntimeError("DurationModel is not fitted")
        if self.config.kind == "xgboost":
            return np.asarray(self.estimator.inplace_predict(X), dtype=np.float64)
        return np.asarray(self.estimator.predict(X), dtype=np.float64)

    def predict_log(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Predicted natural-log run times."""
        X = _matrix(X)
        no_limit = _no_limit(X, self.feature_names)
        shrink = np.where(no_limit, self._no_limit_fit()[0], self.shrink)
        center = shrink * self._raw(X) + anchor_log(X, self.feature_names)
        if self._use_limit():
            log_limit = _log_limit(X, list(self.feature_names))
            center = np.where(np.isnan(log_limit), center, log_limit)
        return center

    def interval_log(self, X: np.ndarray | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the interval's (low, high) offsets from :meth:`predict_log`."""
        X = _matrix(X)
        no_limit = _no_limit(X, self.feature_names)
        (lo, hi), (lo_nl, hi_nl) = self.interval, self._no_limit_fit()[1]
        return np.where(no_limit, lo_nl, lo), np.where(no_limit, hi_nl, hi)

    def _use_limit(self) -> bool:
        return self.__dict__.get("use_limit", False)  # pickles older than the field: False

    def _no_limit_fit(self) -> tuple[float, tuple[float, float]]:
        """(shrink, interval) of jobs without a limit; pickles older than the fields: the
        same as with one."""
        shrink = self.__dict__.get("shrink_no_limit")
        interval = self.__dict__.get("interval_no_limit")
        return (self.shrink if shrink is None else shrink,
                self.interval if interval is None else interval)  # fmt: skip

    def predict(
        self, X: np.ndarray | pd.DataFrame, gpus: np.ndarray | pd.Series | None = None
    ) -> pd.DataFrame:
        """``runtime_s``, ``runtime_lo_s``, ``runtime_hi_s`` (and ``gpu_time_s`` given GPUs)."""
        index = X.index if isinstance(X, pd.DataFrame) else None
        X = _matrix(X)
        center = self.predict_log(X)
        lo, hi = self.interval_log(X)
        out = pd.DataFrame(
            {
                "runtime_s": np.exp(center),
                "runtime_lo_s": np.exp(center + lo),
                "runtime_hi_s": np.exp(center + hi),
            },
            index=index,
        )
        if gpus is not None:
            out["gpu_time_s"] = out["runtime_s"].to_numpy() * np.nan_to_num(
                np.asarray(gpus, dtype=np.float64)
            )
        return out

    def predict_one(self, features: Sequence[float]) -> tuple[float, float, float]:
        """Fast path for one feature row: ``(runtime_s, lo_s, hi_s)``.

        Works on the row as Python floats (what :func:`build_feature_row` returns):
        on one row, every numpy call costs more than the arithmetic it does.
        """
        if tuple(self.feature_names) != FEATURE_NAMES:
            row = np.asarray(features, dtype=np.float32).reshape(1, -1)
            center = float(self.predict_log(row)[0])
            lo, hi = (float(v[0]) for v in self.interval_log(row))
            return math.exp(center), math.exp(center + lo), math.exp(center + hi)
        if not isinstance(features, list):
            features = np.asarray(features, dtype=np.float64).tolist()
        req = features[_LIMIT_AT]
        shrink, (lo, hi) = self._no_limit_fit() if math.isnan(req) else (self.shrink, self.interval)
        if self._use_limit() and not math.isnan(req):
            center = _log_limit_one(req)  # validation chose the plain limit
        elif shrink == 0.0:
            center = _anchor_one(features)
        else:
            center = shrink * self._raw_one(features) + _anchor_one(features)
        return math.exp(center), math.exp(center + lo), math.exp(center + hi)

    def _raw_one(self, features: list[float]) -> float:
        """:meth:`_raw` of one row; through the estimator's ``predict_row`` where it has one
        (the service's compiled trees, :mod:`predictor.service.fast_trees`)."""
        predict_row = getattr(self.estimator, "predict_row", None)
        if predict_row is not None:
            return float(predict_row(features))
        return float(self._raw(np.asarray([features], dtype=np.float32))[0])

    # --- persistence -------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """What :meth:`save` writes beside the model (and the registry extends)."""
        return {
            "kind": self.config.kind,
            "config": asdict(self.config),
            "feature_schema_version": self.schema_version,
            "feature_names": list(self.feature_names),
            "interval_log": list(self.interval),
            "shrink": self.shrink,
            "shrink_no_limit": self._no_limit_fit()[0],
            "interval_log_no_limit": list(self._no_limit_fit()[1]),
            "use_limit": self._use_limit(),
            "n_train": self.n_train,
            "anchor_version": self.anchor_version,
        }

    def save(self, folder: Path | str) -> Path:
        """Write ``model.pkl`` into ``folder``; returns its path."""
        if self.estimator is None:
            raise RuntimeError("refusing to save an unfitted DurationModel")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        path.write_bytes(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
        return path

    @classmethod
    def load(cls, folder: Path | str) -> DurationModel:
        """Read a model saved by :meth:`save`; refuses another feature schema."""
        path = Path(folder) / MODEL_FILE
        model = pickle.loads(path.read_bytes())
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a DurationModel")
        model.check_schema()
        return model

    def check_schema(self) -> None:
        """Raise :class:`ModelSchemaError` unless the model matches the code's features."""
        if self.schema_version != FEATURE_SCHEMA_VERSION or tuple(self.feature_names) != tuple(
            FEATURE_NAMES
        ):
            raise ModelSchemaError(
                f"model was trained on feature schema v{self.schema_version} "
                f"({len(self.feature_names)} features) but this code builds "
                f"v{FEATURE_SCHEMA_VERSION} ({len(FEATURE_NAMES)} features); retrain it "
                "with `foresight train`"
            )
        version = self.__dict__.get("anchor_version", 1)  # pickles older than the field: v1
        if self.estimator is not None and version != ANCHOR_VERSION:
            raise ModelSchemaError(
                f"model was fitted against anchor v{version} but this code computes "
                f"anchor v{ANCHOR_VERSION}; retrain it with `foresight train`"
            )


def _matrix(X: np.ndarray | pd.DataFrame) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        missing = [c for c in FEATURE_NAMES if c not in X.columns]
        if missing:
            raise ValueError(f"feature frame lacks columns: {', '.join(missing[:5])}")
        X = X[list(FEATURE_NAMES)].to_numpy()
    return np.ascontiguousarray(X, dtype=np.float32)


#: Fits run at once by :func:`fit_models` (2 cores on the reference machine). Each fit
#: is single-threaded: XGBoost's OpenMP threads spin at their barriers, and on a busy
#: machine nthread=2 measured 3.7x the CPU time of nthread=1 for the same trees.
FIT_WORKERS = max(1, min(2, os.cpu_count() or 1))


def fit_models(
    config: DurationConfig,
    X: np.ndarray,
    run_time: np.ndarray,
    row_sets: Sequence[np.ndarray | slice],
    *,
    workers: int | None = None,
    done: Callable[[int], None] | None = None,
) -> list[DurationModel]:
    """One :class:`DurationModel` per row set of ``X``/``run_time``, ``workers`` fits at a time.

    The fits run in threads (XGBoost and scikit-learn release the GIL while
    they train); each is the same as a sequential fit. ``done(n_finished)``
    is called as fits finish.
    """
    workers = FIT_WORKERS if workers is None else max(1, workers)

    def fit(rows: np.ndarray | slice) -> DurationModel:
        return DurationModel(config).fit(X[rows], run_time[rows])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fit, rows) for rows in row_sets]
        for n_done, _ in enumerate(as_completed(futures), start=1):
            if done is not None:
                done(n_done)
        return [future.result() for future in futures]


# --- causal replay -----------------------------------------------------------
@dataclass
class CausalSchedule:
    """When :func:`causal_predictions` (re)trains: first fit, period, window."""

    first_fit: int | None = None  # submit-order index of the first fit (None: min_train ended)
    retrain_every: int | None = None  # jobs between refits (None: n_after_first / refits)
    refits: int = 4  # used when retrain_every is None
    min_retrain_every: int = 2_000
    min_train: int = 200
    window: int = 100_000  # most recent ended jobs used per fit


def causal_predictions(
    jobs: pd.DataFrame,
    *,
    config: DurationConfig | None = None,
    schedule: CausalSchedule | None = None,
    progress: Any = None,
    workers: int | None = None,
) -> pd.DataFrame:
    """Replay ``jobs``: each gets predictions that use only jobs ENDED by its submit time.

    Returns a frame aligned with ``jobs`` (same index) with ``runtime_s``,
    ``runtime_lo_s``, ``runtime_hi_s`` (the model, retrained per ``schedule``
    from ended jobs only; before its first fit, the recency anchor), the
    baselines ``last2_s``, ``helios_s``, ``requested_s``, and ``model_fit``
    (index of the fit that produced the row, -1 = anchor only).
    ``progress(done, total)`` is called after each fit; the fits (each on rows
    fixed in advance) run ``workers`` at a time (default :data:`FIT_WORKERS`).
    """
    config = config or DurationConfig()
    schedule = schedule or CausalSchedule()
    order = np.argsort(jobs["submit_time"].to_numpy(np.float64), kind="stable")
    frame = jobs.iloc[order]
    feats = causal_features(frame)
    X, end = feats.X, feats.end_time
    run = frame["run_time"].to_numpy(np.float64)
    submit = frame["submit_time"].to_numpy(np.float64)
    n = len(frame)
    ended_ok = np.isfinite(run) & (run > 0) & np.isfinite(end)
    end_for_sort = np.where(ended_ok, end, np.inf)
    by_end = np.argsort(end_for_sort, kind="stable")
    end_sorted = end_for_sort[by_end]

    first = schedule.first_fit
    if first is None:
        n_ended = np.searchsorted(end_sorted, submit, side="right")
        reach = np.nonzero(n_ended >= schedule.min_train)[0]
        first = int(reach[0]) if reach.size else n
    period = schedule.retrain_every or max(
        schedule.min_retrain_every, math.ceil((n - first) / max(schedule.refits, 1))
    )
    anchor = anchor_log(X)
    center = anchor.copy()
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    fit_id = np.full(n, -1, dtype=np.int64)
    starts = list(range(first, n, period))
    row_sets: dict[int, np.ndarray] = {}
    for k, start in enumerate(starts):
        usable = by_end[: np.searchsorted(end_sorted, submit[start], side="right")]
        usable = np.sort(usable)[-schedule.window :]
        if usable.size >= schedule.min_train:
            row_sets[k] = usable

    def done(n_done: int) -> None:
        if progress is not None:
            progress(n_done, len(starts))

    models = fit_models(config, X, run, list(row_sets.values()), workers=workers, done=done)
    for k, model in zip(row_sets, models, strict=True):
        start, stop = starts[k], min(starts[k] + period, n)
        center[start:stop] = model.predict_log(X[start:stop])
        lo_off, hi_off = model.interval_log(X[start:stop])
        lo[start:stop] = center[start:stop] + lo_off
        hi[start:stop] = center[start:stop] + hi_off
        fit_id[start:stop] = k
    fallback = _fallback(X)
    limit = frame["time_limit"].to_numpy(np.float64)
    out = pd.DataFrame(
        {
            "runtime_s": np.exp(center),
            "runtime_lo_s": np.exp(lo),
            "runtime_hi_s": np.exp(hi),
            "last2_s": np.where(np.isnan(feats.last2), fallback, feats.last2),
            "helios_s": np.where(np.isnan(feats.helios), fallback, feats.helios),
            "requested_s": np.where(limit > 0, limit, fallback),
            "model_fit": fit_id,
        },
        index=frame.index,
    )
    return out.loc[jobs.index]


def _fallback(X: np.ndarray) -> np.ndarray:
    """Baselines' answer where they have no input: the geometric mean of all jobs ended so far."""
    mean_log = X[:, FEATURE_NAMES.index("all_mean")].astype(np.float64)
    return np.exp(np.nan_to_num(mean_log, nan=math.log(60.0)))




@dataclass
class TrainedDuration:
    """What :func:`train_duration` returns: the model and how it did on a holdout."""

    model: DurationModel
    holdout: dict[str, dict[str, float]]  # predictor -> metrics on the last 30% (fit on 70%)
    n_jobs: int
    n_train_holdout: int


def train_duration(
    jobs: pd.DataFrame,
    config: DurationConfig | None = None,
    progress: Any = None,
    window: int | None = None,
) -> TrainedDuration:
    """Fit the served model on a log (positive run times), after a 70/30 holdout check.

    Every job feeds the history features; the model is fit on the newest
    ``window`` jobs (default ``CausalSchedule().window``, the window of the
    evaluated ``foresight`` replay, so the served model is the evaluated one).
    The holdout fit uses the newest ``window`` jobs ended by the first 70% (by
    submit) and is scored, with the ``last2`` baseline from the same causal
    features, on the last 30%; it and the final fit run side by side
    (:func:`fit_models`). ``progress(step: str)`` is called between the stages.
    """
    from predictor.evaluation.duration import TRAIN_FRACTION, protocol_jobs
    from predictor.evaluation.metrics import runtime_metrics

    config = config or DurationConfig()
    say = progress or (lambda _step: None)
    data = protocol_jobs(jobs)
    n = len(data)
    if n < 50:
        raise ValueError(f"need at least 50 jobs with a positive run time to train, got {n}")
    say("features")
    feats = causal_features(data)
    run = data["run_time"].to_numpy(np.float64)
    submit = data["submit_time"].to_numpy(np.float64)
    split = int(n * TRAIN_FRACTION)
    say("holdout fit + final fit")
    window = CausalSchedule().window if window is None else window
    ended = np.nonzero(feats.end_time[:split] <= submit[split])[0][-window:]
    holdout_model, model = fit_models(config, feats.X, run, [ended, slice(max(n - window, 0), n)])
    actual = run[split:]
    fallback = _fallback(feats.X[split:])
    last2 = np.where(np.isnan(feats.last2[split:]), fallback, feats.last2[split:])
    holdout = {
        "model": runtime_metrics(holdout_model.predict(feats.X[split:])["runtime_s"], actual),
        "last2": runtime_metrics(last2, actual),
    }
    return TrainedDuration(model=model, holdout=holdout, n_jobs=n, n_train_holdout=split)


__all__ = [
    "MODEL_KINDS",
    "CausalSchedule",
    "DurationConfig",
    "DurationModel",
    "ModelSchemaError",
    "TrainedDuration",
    "anchor_log",
    "causal_predictions",
    "fit_models",
    "log_runtime",
    "recency_log",
    "train_duration",
]
