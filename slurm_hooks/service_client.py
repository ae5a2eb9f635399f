"""A small HTTP client for the Foresight service, used by the daemons beside Slurm.

Every call has a timeout; failures raise :class:`ServiceError` with the route and
the reason, so a daemon can log it, back off and try again next cycle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import requests

DEFAULT_URL = "http://127.0.0.1:8765"


class ServiceError(RuntimeError):
    """The service could not be reached or answered with an error."""


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN -> None, numpy -> Python."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def limit_seconds(value: Any) -> float | None:
    """A time limit as sent to the service: positive, finite seconds, else None: 0, NaN or
    infinity is Slurm's "no limit" (a negative one is unusable); the descriptor leaves
    it out and the service predicts the job without one."""
    value = _clean(value)
    if value is None:
        return None
    value = float(value)
    return value if 0 < value < math.inf else None


def _int_or_none(value: Any) -> int | None:
    value = _clean(value)
    return None if value is None else int(value)


def descriptor(row: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical job row (adapter queue/sacct frame) -> the service's job fields."""
    body = {
        "job_id": str(row["job_id"]),
        "user": str(row.get("user") or ""),
        "account": str(row.get("account") or ""),
        "partition": str(row.get("partition") or ""),
        "qos": str(row.get("qos") or ""),
        "name": str(row.get("job_name") or ""),
        "time_limit": limit_seconds(row.get("time_limit")),
        "cpus": max(_int_or_none(row.get("cpus")) or 1, 1),
        "gpus": _int_or_none(row.get("gpus")) or 0,
        "nodes": max(_int_or_none(row.get("nodes")) or 1, 1),
        "mem_mb": _clean(row.get("mem_mb")),
        "submit_time": _clean(row.get("submit_time")),
    }
    return {k: v for k, v in body.items() if v is not None}


def score_body(row: Mapping[str, Any]) -> dict[str, Any]:
    """A pending job's row -> its ``/v1/jobs/score:batch`` entry: the descriptor plus,
    where the priority daemon found ended burst siblings, their run time."""
    body = descriptor(row)
    sibling = _clean(row.get("sibling_runtime_s"))
    if sibling is not None:
        body["sibling_runtime_s"] = sibling
    return body


def completion(row: Mapping[str, Any]) -> dict[str, Any]:
    """A finished job's canonical row -> the body of ``/v1/jobs/complete``."""
    body = descriptor(row)
    body.update(
        start_time=_clean(row.get("start_time")),
        end_time=_clean(row.get("end_time")),
        state=str(row.get("state") or "UNKNOWN"),
        exit_code=_int_or_none(row.get("exit_code")),
    )
    return {k: v for k, v in body.items() if v is not None}


class ServiceClient:
    """Calls the Foresight service's job routes with a timeout and optional bearer token."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 10.0,
                 token_file: Path | str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        if token_file:
            token = Path(token_file).read_text().strip()
            self._session.headers["Authorization"] = f"Bearer {token}"

    def _post(self, route: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            resp = self._session.post(self.url + route, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceError(f"POST {route}: {exc}") from exc
        if resp.status_code != 200:
            raise ServiceError(f"POST {route}: HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            return resp.json()
        except ValueError as exc:
            raise ServiceError(f"POST {route}: answer is not JSON: {resp.text[:200]!r}") from exc

    def score_batch(self, jobs: pd.DataFrame) -> pd.DataFrame:
        """Score pending jobs; returns ``job_id, site_factor, runtime_s, model_version``."""
        body = {"jobs": [score_body(row) for row in jobs.to_dict("records")]}
        results = self._post("/v1/jobs/score:batch", body)["results"]
        return pd.DataFrame(results, columns=["job_id", "site_factor", "runtime_s",
                                              "model_version"])

    def complete(self, rows: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
        """Post finished jobs one by one; returns (new, already known)."""
        new = known = 0
        for row in rows:
            if self._post("/v1/jobs/complete", completion(row)).get("new"):
                new += 1
            else:
                known += 1
        return new, known
