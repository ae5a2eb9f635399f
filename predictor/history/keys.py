"""Which history keys a job belongs to: user, account, job name, user+name, ...

Every job contributes to (and reads from) one running-statistics bucket per key
*kind*. A kind whose inputs the job lacks (no user id, no job name, no time
limit) yields no key. ``template`` is user + CPUs + GPUs + requested time limit:
users request the same limit for the same kind of work (the run-time
"templates" of Smith, Foster and Taylor), so it separates a user's job types
where the log has no job names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

SEP = "\x1f"

#: Key kinds whose statistics become model features, in feature order.
FEATURE_KINDS: tuple[str, ...] = (
    "user",
    "account",
    "name",
    "user_name",
    "user_shape",
    "user_name_shape",
    "template",
    "all",
)
#: Every kind tracked (``user_name_gpus`` serves the Helios baseline only).
ALL_KINDS: tuple[str, ...] = (*FEATURE_KINDS, "user_name_gpus")


def key_text(job: Mapping[str, Any], field: str) -> str:
    """``job[field]`` as key text ("" when missing or NaN)."""
    value = job.get(field, "")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def key_number(job: Mapping[str, Any], field: str) -> str:
    """``job[field]`` as a number's key text (``%g``; "?" when missing or not a number)."""
    value = job.get(field)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "?"
    return "?" if math.isnan(number) else f"{number:g}"


def _positive(job: Mapping[str, Any], field: str) -> bool:
    try:
        return float(job.get(field)) > 0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def job_keys(job: Mapping[str, Any]) -> dict[str, str]:
    """The bucket key of ``job`` for each kind it has inputs for (missing kinds omitted)."""
    user = key_text(job, "user")
    account = key_text(job, "account")
    name = key_text(job, "job_name")
    cpus, gpus = key_number(job, "cpus"), key_number(job, "gpus")
    keys: dict[str, str] = {"all": ""}
    if user:
        keys["user"] = user
        keys["user_shape"] = SEP.join((user, cpus, gpus))
        if _positive(job, "time_limit"):
            keys["template"] = SEP.join((user, cpus, gpus, key_number(job, "time_limit")))
    if account:
        keys["account"] = account
    if name:
        keys["name"] = name
        if user:
            keys["user_name"] = SEP.join((user, name))
            keys["user_name_shape"] = SEP.join((user, name, cpus, gpus))
            keys["user_name_gpus"] = SEP.join((user, name, gpus))
    return keys


def _text_column(jobs: pd.DataFrame, field: str) -> np.ndarray:
    """``_text`` of every row of ``field`` ("" where missing) as an object array."""
    if field not in jobs.columns:
        return np.full(len(jobs), "", dtype=object)
    return jobs[field].fillna("").astype(str).to_numpy(dtype=object)


def combined_codes(*parts: np.ndarray) -> np.ndarray:
    """Dense int64 ids of the row-wise tuples of ``parts`` (each already int codes)."""
    code = parts[0].astype(np.int64)
    for part in parts[1:]:
        code = pd.factorize(code * (int(part.max(initial=0)) + 1) + part)[0].astype(np.int64)
    return code


def _num_codes(jobs: pd.DataFrame, field: str) -> np.ndarray:
    """Ids of ``_num`` (the ``%g`` text, "?" when missing) of every row of ``field``."""
    if field not in jobs.columns:
        return np.zeros(len(jobs), dtype=np.int64)
    values = pd.to_numeric(jobs[field], errors="coerce").to_numpy(np.float64)
    uniq, inverse = np.unique(values, return_inverse=True)
    text = ["?" if math.isnan(v) else f"{v:g}" for v in uniq.tolist()]
    return pd.factorize(np.asarray(text, dtype=object))[0][inverse].astype(np.int64)


def key_codes(jobs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per kind of :data:`ALL_KINDS`, an int64 bucket id for every row (-1: no key).

    Two rows share an id exactly when :func:`job_keys` gives them the same key
    string (the vectorised form of :func:`job_keys`, for whole-log sweeps).
    """
    n = len(jobs)
    text = {f: _text_column(jobs, f) for f in ("user", "account", "job_name")}
    ids = {f: pd.factorize(v)[0].astype(np.int64) for f, v in text.items()}
    has = {f: v != "" for f, v in text.items()}
    cpus, gpus = _num_codes(jobs, "cpus"), _num_codes(jobs, "gpus")
    user, name = has["user"], has["job_name"]
    limited = (
        pd.to_numeric(jobs["time_limit"], errors="coerce").to_numpy(np.float64) > 0
        if "time_limit" in jobs.columns
        else np.zeros(len(jobs), dtype=bool)
    )
    both = user & name
    made = {
        "user": (user, (ids["user"],)),
        "account": (has["account"], (ids["account"],)),
        "name": (name, (ids["job_name"],)),
        "user_name": (both, (ids["user"], ids["job_name"])),
        "user_shape": (user, (ids["user"], cpus, gpus)),
        "user_name_shape": (both, (ids["user"], ids["job_name"], cpus, gpus)),
        "user_name_gpus": (both, (ids["user"], ids["job_name"], gpus)),
        "template": (user & limited, (ids["user"], cpus, gpus, _num_codes(jobs, "time_limit"))),
    }
    out: dict[str, np.ndarray] = {"all": np.zeros(n, dtype=np.int64)}
    for kind, (present, parts) in made.items():
        out[kind] = np.where(present, combined_codes(*parts), -1)
    return out
