"""Evaluation of predictors: metrics and the run-time protocol of issue 2."""

from predictor.evaluation.duration import (
    PREDICTOR_ORDER,
    TRAIN_FRACTION,
    available_baselines,
    evaluate_duration,
    protocol_jobs,
)
from predictor.evaluation.metrics import METRIC_NAMES, runtime_metrics

__all__ = [
    "METRIC_NAMES",
    "PREDICTOR_ORDER",
    "TRAIN_FRACTION",
    "available_baselines",
    "evaluate_duration",
    "protocol_jobs",
    "runtime_metrics",
]
