"""Mapping the job states logs write onto the canonical Slurm-style states."""

from __future__ import annotations

import numpy as np
import pandas as pd

from predictor.logs.schema import STATES

# Spellings other logs use for a canonical state (lower-case keys).
STATE_ALIASES: dict[str, str] = {
    "pass": "COMPLETED",
    "passed": "COMPLETED",
    "success": "COMPLETED",
    "succeeded": "COMPLETED",
    "completing": "COMPLETED",
    "killed": "CANCELLED",
    "canceled": "CANCELLED",
    "cancelled": "CANCELLED",
    "failed": "FAILED",
    "fail": "FAILED",
    "boot_fail": "NODE_FAIL",
    "deadline": "TIMEOUT",
    "oom": "OUT_OF_MEMORY",
    "requeued": "PENDING",
    "resizing": "RUNNING",
    "suspended": "RUNNING",
    "revoked": "CANCELLED",
}
_CODE_PREFIXES = {
    "CA": "CANCELLED",
    "CD": "COMPLETED",
    "F": "FAILED",
    "TO": "TIMEOUT",
    "NF": "NODE_FAIL",
    "OOM": "OUT_OF_MEMORY",
    "PR": "PREEMPTED",
    "R": "RUNNING",
    "PD": "PENDING",
}


def normalize_state(raw: str) -> str:
    """One state as written by a log (``CANCELLED by 123``, ``Pass``, ``CD``) -> canonical."""
    text = raw.strip()
    if not text:
        return "UNKNOWN"
    word = text.split()[0].rstrip("+").upper()
    if word in STATES:
        return word
    if word in _CODE_PREFIXES:
        return _CODE_PREFIXES[word]
    return STATE_ALIASES.get(word.lower(), "UNKNOWN")


def normalize_states(raw: pd.Series) -> np.ndarray:
    """Vectorised :func:`normalize_state` (maps each distinct spelling once)."""
    values = raw.astype(object).fillna("")
    mapping = {v: normalize_state(str(v)) for v in pd.unique(values)}
    return values.map(mapping).to_numpy(dtype=object)
