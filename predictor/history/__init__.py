"""Causal job history: per-key running statistics of ended jobs (see :mod:`.store`)."""

from predictor.history.keys import ALL_KINDS, FEATURE_KINDS, job_keys
from predictor.history.stats import STAT_FEATURES, KeyStats, log_runtime
from predictor.history.store import (
    HISTORY_FEATURE_NAMES,
    HISTORY_FILE,
    HistoryStore,
    effective_end,
)

__all__ = [
    "ALL_KINDS",
    "FEATURE_KINDS",
    "HISTORY_FEATURE_NAMES",
    "HISTORY_FILE",
    "STAT_FEATURES",
    "HistoryStore",
    "KeyStats",
    "effective_end",
    "job_keys",
    "log_runtime",
]
