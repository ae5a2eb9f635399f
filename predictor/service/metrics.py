"""Prometheus metrics of the service.

Single process (tests, ``flask run``): each app gets its own registry.
Under gunicorn, ``foresight serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any
worker imports ``prometheus_client``; every worker then writes its samples to
memory-mapped files there and ``/metrics`` (answered by any worker) merges
them with ``MultiProcessCollector``, so counts cover all workers.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_MAX_CACHED = 256  # (route, method, status) label combinations kept by request_done
disable_created_metrics()  # the *_created samples only add noise for scrapers
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
RUNTIME_BUCKETS = (
    60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400,
)  # fmt: skip


def multiprocess_dir() -> str | None:
    """The multiprocess directory when running under ``foresight serve``'s gunicorn."""
    return os.environ.get(MULTIPROC_ENV) or None


class ServiceMetrics:
    """The service's metric objects, bound to a private registry or to multiprocess files."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        if self.multiprocess and values.ValueClass is values.MutexValue:
            # prometheus_client was imported before the directory was set: switch now.
            values.ValueClass = values.get_value_class()
        self.registry = None if self.multiprocess else CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "foresight_http_requests",
            "HTTP requests answered, per route, method and status",
            ["route", "method", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "foresight_http_request_duration_seconds",
            "Time to answer a request, per route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.unknown_fields = Counter(
            "foresight_unknown_fields",
            "Unknown request fields ignored, per route",
            ["route"],
            registry=reg,
        )
        self.jobs_scored = Counter("foresight_jobs_scored", "Jobs scored", registry=reg)
        self.predicted_runtime = Histogram(
            "foresight_predicted_runtime_seconds",
            "Distribution of predicted run times",
            buckets=RUNTIME_BUCKETS,
            registry=reg,
        )
        self.history_updates = Counter(
            "foresight_history_updates",
            "Completed-job records received, by whether they were new",
            ["new"],
            registry=reg,
        )
        self.model_active = Gauge(
            "foresight_model_active",
            "1 for the model version being served (per worker, live maximum)",
            ["version"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.hint_latency = Histogram(
            "foresight_hint_duration_seconds",
            "Time to compute one job's placement hints inside a score request",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.hints = Counter(
            "foresight_hints", "Placement hints answered, by status", ["status"], registry=reg
        )
        self.model_swaps = Counter(
            "foresight_model_swaps", "Model loads, by outcome", ["outcome"], registry=reg
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and observe its latency.

        The labelled children are looked up once per (route, method, status) and
        kept (``labels()`` costs more than the update itself); clients choose the
        method, so at most :data:`_MAX_CACHED` combinations are kept.
        """
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.latency.labels(route=route),
                self.requests.labels(route=route, method=method, status=status),
            )
            if len(self._request_children) < _MAX_CACHED:
                self._request_children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def set_serving(self, version: str | None, previous: str | None) -> None:
        """Mark ``version`` as served (1) and ``previous`` as no longer served (0)."""
        if previous is not None and previous != version:
            self.model_active.labels(version=previous).set(0)
        if version is not None:
            self.model_active.labels(version=version).set(1)
            self.model_swaps.labels(outcome="loaded").inc()

    def model_refused(self, _exc: Exception) -> None:
        """Count a model file that failed to load."""
        self.model_swaps.labels(outcome="refused").inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of every metric (all workers in multiprocess mode)."""
        if self.registry is not None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """gunicorn ``child_exit`` hook: drop a dead worker's live gauges."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
