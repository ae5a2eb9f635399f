"""Issue 2's evaluation protocol for run-time predictors.

Drop jobs with run time <= 0; order by submit time; the first 70% train, the
last 30% test; every prediction uses only jobs ended before its submit time.

Predictors: ``foresight`` (the default model, retrained from ended jobs on a
schedule during the test, as the service would), ``xgboost`` and
``random_forest`` (the same features, fit once at the split), and the
baselines ``requested`` (time limit), ``last2`` (Tsafrir) and
``helios_naive`` (Helios history look-up). A baseline whose input the log
lacks is omitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from predictor.evaluation.metrics import runtime_metrics
from predictor.models.duration import CausalSchedule, DurationConfig, causal_predictions

TRAIN_FRACTION = 0.7
PREDICTOR_ORDER: tuple[str, ...] = (
    "foresight",
    "xgboost",
    "random_forest",
    "requested",
    "last2",
    "helios_naive",
)


def protocol_jobs(jobs: pd.DataFrame) -> pd.DataFrame:
    """Positive run times only, ordered by submit time (stable), re-indexed 0..n-1."""
    keep = jobs["run_time"].notna() & (jobs["run_time"] > 0) & jobs["submit_time"].notna()
    ordered = jobs.loc[keep].sort_values("submit_time", kind="stable")
    return ordered.reset_index(drop=True)


def available_baselines(jobs: pd.DataFrame) -> list[str]:
    """Baselines whose inputs the log has."""
    out = []
    if (jobs["time_limit"] > 0).any():
        out.append("requested")
    has_user = (jobs["user"] != "").any()
    if has_user:
        out.append("last2")
    if has_user or (jobs["job_name"] != "").any():
        out.append("helios_naive")
    return out


def evaluate_duration(
    jobs: pd.DataFrame,
    *,
    log: str = "",
    predictors: tuple[str, ...] = PREDICTOR_ORDER,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol; returns issue 2's JSON shape ``{log, n_train, n_test, predictors}``."""
    data = protocol_jobs(jobs)
    n = len(data)
    n_train = int(n * TRAIN_FRACTION)
    if n_train < 10 or n - n_train < 10:
        raise ValueError(f"need at least ~35 jobs with a positive run time, got {n}")
    actual = data["run_time"].to_numpy(np.float64)[n_train:]
    wanted = set(predictors)
    columns: dict[str, np.ndarray] = {}

    def say(text: str) -> None:
        if progress is not None:
            progress(text)

    runs: list[tuple[str, DurationConfig, CausalSchedule]] = [
        ("foresight", DurationConfig(), CausalSchedule(first_fit=n_train)),
        ("xgboost", DurationConfig(), CausalSchedule(first_fit=n_train, retrain_every=n)),
        ("random_forest", DurationConfig(kind="rf"), CausalSchedule(first_fit=n_train,
                                                                    retrain_every=n)),
    ]
    baselines_from: pd.DataFrame | None = None
    for name, config, schedule in runs:
        if name not in wanted:
            continue
        say(f"{name}: causal replay of {n} jobs")
        pred = causal_predictions(data, config=config, schedule=schedule)
        columns[name] = pred["runtime_s"].to_numpy()[n_train:]
        baselines_from = pred
    if baselines_from is None:
        baselines_from = causal_predictions(
            data, schedule=CausalSchedule(first_fit=n)  # features + baselines only, no fit
        )
    source = {"requested": "requested_s", "last2": "last2_s", "helios_naive": "helios_s"}
    for name in available_baselines(data):
        if name in wanted:
            columns[name] = baselines_from[source[name]].to_numpy()[n_train:]
    return {
        "log": log,
        "n_train": n_train,
        "n_test": n - n_train,
        "predictors": {
            name: runtime_metrics(columns[name], actual)
            for name in PREDICTOR_ORDER
            if name in columns
        },
    }
