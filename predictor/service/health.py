"""Liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import math

from flask import Blueprint, Response, current_app, jsonify

from predictor.service.api import api_route, openapi_document
from predictor.service.app import Service
from predictor.service.schemas import Health

bp = Blueprint("health", __name__)


def _service() -> Service:
    return current_app.extensions["foresight"]


@api_route(bp, "/healthz", "GET", summary="Liveness: the process answers", response=Health)
def healthz() -> Health:
    """Always 200 while the worker runs."""
    return Health(status="ok")


@api_route(
    bp, "/readyz", "GET", summary="Readiness: a model is served and the history is writable",
    response=Health, errors=(503,), error_models={503: Health},
)  # fmt: skip
def readyz() -> Health | tuple[Health, int]:
    """503 with how to train a model when none is served, or when the store is read-only."""
    service = _service()
    current = service.slot.current
    if current is None:
        return Health(status="not ready", detail=service.no_model_message()), 503
    ok, why = service.history.writable()
    if not ok:
        return Health(status="not ready", model_version=current.version, detail=why), 503
    store = service.history.store
    newest = store.stats("all", "")
    last = newest.last_end if newest is not None else math.nan
    return Health(status="ready", model_version=current.version, history_jobs=len(store),
                  history_newest_end=None if math.isnan(last) else last)


@api_route(
    bp, "/metrics", "GET", summary="Prometheus metrics (all workers)", response=None,
    response_media="text/plain",
)  # fmt: skip
def metrics() -> Response:
    """Text exposition format."""
    body, content_type = _service().metrics.exposition()
    return Response(body, 200, content_type=content_type)


@api_route(bp, "/openapi.json", "GET", summary="This document", response=None)
def openapi() -> Response:
    """The OpenAPI 3.1 document, generated from the request/response models."""
    return jsonify(openapi_document(current_app))
