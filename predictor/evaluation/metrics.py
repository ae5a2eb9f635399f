"""Run-time prediction metrics of issue 2's evaluation protocol."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

METRIC_NAMES: tuple[str, ...] = ("accuracy", "within_2x", "median_ape", "spearman", "mae_log10")


def runtime_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """Accuracy (mean min/max ratio), share within 2x, median |p-a|/a, Spearman, MAE of log10.

    Predictions are floored at 1 s (a run time of 0 or less is no prediction);
    ``actual`` must be positive.
    """
    p = np.maximum(np.asarray(predicted, dtype=np.float64), 1.0)
    a = np.asarray(actual, dtype=np.float64)
    if p.shape != a.shape or a.size == 0:
        raise ValueError(f"need equal, non-empty shapes, got {p.shape} and {a.shape}")
    if np.any(~np.isfinite(p)) or np.any(~(a > 0)):
        raise ValueError("predictions must be finite and actual run times positive")
    ratio = np.minimum(p, a) / np.maximum(p, a)
    varied = a.size > 1 and np.ptp(p) > 0 and np.ptp(a) > 0
    rho = spearmanr(p, a).statistic if varied else float("nan")  # undefined for constants
    return {
        "accuracy": float(ratio.mean()),
        "within_2x": float((ratio >= 0.5).mean()),
        "median_ape": float(np.median(np.abs(p - a) / a)),
        "spearman": float(rho) if np.isfinite(rho) else 0.0,
        "mae_log10": float(np.mean(np.abs(np.log10(p) - np.log10(a)))),
    }
