"""Which history keys a job belongs to: user, account, job name, user+name, ...

Every job contributes to (and reads from) one running-statistics bucket per key
*kind*. A kind whose inputs the job lacks (no user id, no job name) yields no key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SEP = "\x1f"

#: Key kinds whose statistics become model features, in feature order.
FEATURE_KINDS: tuple[str, ...] = (
    "user",
    "account",
    "name",
    "user_name",
    "user_shape",
    "user_name_shape",
    "all",
)
#: Every kind tracked (``user_name_gpus`` serves the Helios baseline only).
ALL_KINDS: tuple[str, ...] = (*FEATURE_KINDS, "user_name_gpus")


def _text(job: Mapping[str, Any], field: str) -> str:
    value = job.get(field, "")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _num(job: Mapping[str, Any], field: str) -> str:
    value = job.get(field)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "?"
    return "?" if math.isnan(number) else f"{number:g}"


def job_keys(job: Mapping[str, Any]) -> dict[str, str]:
    """The bucket key of ``job`` for each kind it has inputs for (missing kinds omitted)."""
    user = _text(job, "user")
    account = _text(job, "account")
    name = _text(job, "job_name")
    cpus, gpus = _num(job, "cpus"), _num(job, "gpus")
    keys: dict[str, str] = {"all": ""}
    if user:
        keys["user"] = user
        keys["user_shape"] = SEP.join((user, cpus, gpus))
    if account:
        keys["account"] = account
    if name:
        keys["name"] = name
        if user:
            keys["user_name"] = SEP.join((user, name))
            keys["user_name_shape"] = SEP.join((user, name, cpus, gpus))
            keys["user_name_gpus"] = SEP.join((user, name, gpus))
    return keys
