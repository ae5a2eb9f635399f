"""Causal job history: per-key running statistics of ended jobs (see :mod:`.store`)."""

from predictor.history.bursts import BURST_GAP_S, BurstTracker, burst_key
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
    "BURST_GAP_S",
    "FEATURE_KINDS",
    "HISTORY_FEATURE_NAMES",
    "HISTORY_FILE",
    "STAT_FEATURES",
    "BurstTracker",
    "HistoryStore",
    "KeyStats",
    "burst_key",
    "effective_end",
    "job_keys",
    "log_runtime",
]
