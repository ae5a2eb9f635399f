"""Request and calendar features of one job: what it asked for and when."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

NAN = float("nan")

REQUEST_FEATURE_NAMES: tuple[str, ...] = (
    "req_cpus",
    "req_gpus",
    "req_nodes",
    "req_mem",
    "req_limit",
    "req_partition",
    "req_qos",
    "req_vc",
    "cal_hour",
    "cal_weekday",
)


def _log1p(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return NAN
    return math.log1p(number) if number >= 0 else NAN


def category_code(value: Any) -> float:
    """A stable numeric code for a categorical value (CRC32; NaN when empty)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return NAN
    return float(zlib.crc32(str(value).encode()) % 1_000_003)


def request_features(job: Mapping[str, Any]) -> list[float]:
    """:data:`REQUEST_FEATURE_NAMES` values of ``job``.

    Counts and sizes are ``log1p``-scaled; the time limit is ``log`` seconds;
    the calendar comes from ``submit_time`` read as epoch seconds (UTC).
    """
    limit = _log1p(job.get("time_limit"))
    try:
        submit = float(job.get("submit_time"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        submit = NAN
    if math.isnan(submit):
        hour = weekday = NAN
    else:
        hour = (submit % 86400.0) / 3600.0
        weekday = float((int(submit // 86400.0) + 3) % 7)  # 1970-01-01 was a Thursday (3)
    return [
        _log1p(job.get("cpus")),
        _log1p(job.get("gpus")),
        _log1p(job.get("nodes")),
        _log1p(job.get("mem_mb")),
        limit if limit > 0 else NAN,
        category_code(job.get("partition")),
        category_code(job.get("qos")),
        category_code(job.get("vc")),
        hour,
        weekday,
    ]


def _log1p_column(jobs: pd.DataFrame, field: str) -> np.ndarray:
    if field not in jobs.columns:
        return np.full(len(jobs), NAN)
    values = pd.to_numeric(jobs[field], errors="coerce").to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(values >= 0, np.log1p(np.maximum(values, 0.0)), NAN)


def _code_column(jobs: pd.DataFrame, field: str) -> np.ndarray:
    if field not in jobs.columns:
        return np.full(len(jobs), NAN)
    ids, uniques = pd.factorize(jobs[field], use_na_sentinel=True)
    codes = np.array([category_code(v) for v in uniques] + [NAN], dtype=np.float64)
    return codes[ids]  # id -1 (missing) -> the trailing NaN


def request_matrix(jobs: pd.DataFrame) -> np.ndarray:
    """:func:`request_features` of every row of a job frame, as one float64 matrix."""
    limit = _log1p_column(jobs, "time_limit")
    submit = (
        pd.to_numeric(jobs["submit_time"], errors="coerce").to_numpy(np.float64)
        if "submit_time" in jobs.columns
        else np.full(len(jobs), NAN)
    )
    with np.errstate(invalid="ignore"):
        hour = (submit % 86400.0) / 3600.0
        weekday = (np.floor_divide(submit, 86400.0) + 3) % 7
        limit = np.where(limit > 0, limit, NAN)
    return np.column_stack([
        _log1p_column(jobs, "cpus"),
        _log1p_column(jobs, "gpus"),
        _log1p_column(jobs, "nodes"),
        _log1p_column(jobs, "mem_mb"),
        limit,
        _code_column(jobs, "partition"),
        _code_column(jobs, "qos"),
        _code_column(jobs, "vc"),
        hour,
        weekday,
    ]).reshape(len(jobs), len(REQUEST_FEATURE_NAMES))  # fmt: skip
