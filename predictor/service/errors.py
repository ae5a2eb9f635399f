"""JSON error answers: one exception type for routes, handlers for everything else."""

from __future__ import annotations

import logging

from flask import Flask, Response
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from predictor.service.schemas import ErrorBody, FieldError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer: HTTP status plus an :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        error: str,
        *,
        fields: list[FieldError] | None = None,
        path: str | None = None,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.body = ErrorBody(error=error, fields=fields, path=path, reason=reason)
        self.headers = headers or {}


def field_errors(exc: ValidationError) -> list[FieldError]:
    """One :class:`FieldError` per pydantic error, named by dotted path (``jobs.3.cpus``)."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        out.append(FieldError(field=loc, reason=err["msg"]))
    return out


def validation_error(exc: ValidationError) -> ApiError:
    """400 for a body that is not JSON, or not the expected shape (naming each bad field)."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(err["type"] == "json_invalid" for err in errors):
        return ApiError(400, f"request body is not valid JSON: {errors[0]['msg']}")
    return ApiError(400, "request body failed validation", fields=field_errors(exc))


def json_response(body: ErrorBody, status: int, headers: dict[str, str] | None = None) -> Response:
    """Serialise an error body (``None`` members left out)."""
    resp = Response(body.model_dump_json(exclude_none=True), status, mimetype="application/json")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def install_error_handlers(app: Flask) -> None:
    """Answer every error, including Werkzeug's 404/405/413 and crashes, with JSON."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return json_response(exc.body, exc.status, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"request body is larger than the configured limit of {limit} bytes"
        resp = json_response(ErrorBody(error=message), status)
        if status == 405 and exc.response is None:
            allow = getattr(exc, "valid_methods", None)
            if allow:
                resp.headers["Allow"] = ", ".join(allow)
        return resp

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        log.exception("unhandled error")
        return json_response(ErrorBody(error=f"internal error: {type(exc).__name__}"), 500)
