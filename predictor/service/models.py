"""``/v1/models``: list versions, activate one, reload the active one (hot swap)."""

from __future__ import annotations

from flask import Blueprint, current_app

from predictor.registry import ModelLoadError
from predictor.service.api import Access, api_route
from predictor.service.app import Service
from predictor.service.errors import ApiError
from predictor.service.registry_view import model_infos, version_exists
from predictor.service.schemas import ModelList, SwapResult

bp = Blueprint("models", __name__)


def _service() -> Service:
    return current_app.extensions["foresight"]


def _refused(exc: ModelLoadError, serving: str | None) -> ApiError:
    path = getattr(exc, "path", None)
    reason = getattr(exc, "reason", None) or str(exc)
    keep = f"still serving {serving}" if serving else "no model is being served"
    return ApiError(409, f"model refused ({keep}): {exc}",
                    path=None if path is None else str(path), reason=reason)  # fmt: skip


@api_route(
    bp, "/v1/models", "GET", summary="Stored model versions, the active and the served one",
    response=ModelList, access=Access.SCORING, tag="models",
)  # fmt: skip
def list_models() -> ModelList:
    """What the registry holds and what this worker serves."""
    service = _service()
    current = service.slot.current
    serving = current.version if current else None
    active = service.slot.registry.active()
    return ModelList(active=active, serving=serving,
                     versions=model_infos(service.slot.registry, active, serving))  # fmt: skip


@api_route(
    bp, "/v1/models/<version>/activate", "POST",
    summary="Load a stored version fully, then serve it and mark it active",
    response=SwapResult, access=Access.ADMIN, errors=(404, 409), tag="models",
)  # fmt: skip
def activate(version: str) -> SwapResult:
    """Hot swap to ``version``; a file that fails to load is refused and nothing changes."""
    service = _service()
    previous = service.slot.current
    if not version_exists(service.slot.registry, version):
        raise ApiError(404, f"no model version {version!r} in {service.config.model_dir}")
    try:
        loaded = service.slot.activate(version)
    except ModelLoadError as exc:
        raise _refused(exc, previous.version if previous else None) from None
    return SwapResult(serving=loaded.version, previous=previous.version if previous else None)


@api_route(
    bp, "/v1/models/reload", "POST",
    summary="Re-read the active model from disk (every worker follows)",
    response=SwapResult, access=Access.ADMIN, errors=(409,), tag="models",
)  # fmt: skip
def reload() -> SwapResult:
    """Load the registry's active version again and swap it in."""
    service = _service()
    previous = service.slot.current
    prev_version = previous.version if previous else None
    try:
        loaded = service.slot.request_reload()
    except ModelLoadError as exc:
        raise _refused(exc, prev_version) from None
    if loaded is None:
        raise ApiError(503, service.no_model_message())
    return SwapResult(serving=loaded.version, previous=prev_version)
