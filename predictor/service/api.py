"""Declaring routes once: the Flask view, its body validation, its auth and its OpenAPI entry.

``@api_route(bp, "/v1/jobs/score", "POST", body=JobDescriptor, response=ScoreResult,
auth=Access.SCORING)`` registers the view on the blueprint and records a
:class:`RouteSpec`; the view receives the validated body model and returns a
response model (or ``(model, status)``). ``/openapi.json`` is built from the
recorded specs and the same pydantic models, so it cannot drift from what the
routes accept.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from predictor import __version__
from predictor.service.errors import validation_error
from predictor.service.schemas import ErrorBody


class Access(enum.Enum):
    """Who may call a route."""

    OPEN = "open"
    SCORING = "scoring"  # open or token-protected, by configuration (scoring_open)
    ADMIN = "admin"  # always needs the bearer token


@dataclass(frozen=True)
class RouteSpec:
    """One route as OpenAPI describes it."""

    rule: str
    method: str
    summary: str
    access: Access
    response: type[BaseModel] | None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    tag: str = "service"
    response_media: str = "application/json"
    error_models: dict[int, type[BaseModel]] = field(default_factory=dict)


SPECS: list[RouteSpec] = []

ViewResult = BaseModel | tuple[BaseModel, int] | Response


def _authorize(access: Access) -> None:
    if access is Access.OPEN:
        return
    service = current_app.extensions["foresight"]
    if access is Access.SCORING and service.config.scoring_open:
        return
    service.auth.check(request.headers.get("Authorization"))


def parse_body(model: type[BaseModel]) -> BaseModel:
    """Validate the request body against ``model`` (400 naming bad fields; 413 via Flask)."""
    raw = request.get_data(cache=False)
    try:
        parsed = model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise validation_error(exc) from None
    return parsed


def _to_response(result: ViewResult) -> Response:
    if isinstance(result, Response):
        return result
    status = 200
    if isinstance(result, tuple):
        result, status = result
    return Response(result.model_dump_json(), status, mimetype="application/json")


def api_route(
    bp: Blueprint,
    rule: str,
    method: str,
    *,
    summary: str,
    response: type[BaseModel] | None,
    body: type[BaseModel] | None = None,
    access: Access = Access.OPEN,
    errors: tuple[int, ...] = (),
    tag: str = "service",
    response_media: str = "application/json",
    error_models: dict[int, type[BaseModel]] | None = None,
) -> Callable[[Callable[..., ViewResult]], Callable[..., Response]]:
    """Register a view on ``bp`` and record its :class:`RouteSpec` (see module docstring)."""
    auth_errors = {Access.OPEN: (), Access.SCORING: (401,), Access.ADMIN: (401, 503)}[access]
    body_errors = (400, 413) if body is not None else ()
    spec = RouteSpec(
        rule=rule,
        method=method,
        summary=summary,
        access=access,
        response=response,
        body=body,
        errors=tuple(sorted({*errors, *auth_errors, *body_errors})),
        tag=tag,
        response_media=response_media,
        error_models=error_models or {},
    )
    SPECS.append(spec)

    def decorate(view: Callable[..., ViewResult]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**path_args: Any) -> Response:
            _authorize(access)
            if body is not None:
                return _to_response(view(parse_body(body), **path_args))
            return _to_response(view(**path_args))

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=wrapper, methods=[method])
        return wrapper

    return decorate


_FLASK_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _openapi_path(rule: str) -> tuple[str, list[str]]:
    names = _FLASK_PARAM.findall(rule)
    return _FLASK_PARAM.sub(r"{\1}", rule), names


def _operation_id(method: str, path: str) -> str:
    return f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}"


def _json_content(model: type[BaseModel], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


def openapi_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes registered on ``app``."""
    registered = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods or ()}
    specs = [s for s in SPECS if (s.rule, s.method) in registered]
    pairs = [(m, "validation" if m is s.body else "serialization") for s in specs
             for m in (s.body, s.response, *s.error_models.values()) if m is not None]  # fmt: skip
    pairs.append((ErrorBody, "serialization"))
    _, schemas = models_json_schema(
        list(dict.fromkeys(pairs)), ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        path, params = _openapi_path(spec.rule)
        op: dict[str, Any] = {
            "summary": spec.summary,
            "operationId": _operation_id(spec.method, path),
            "tags": [spec.tag],
            "responses": {},
        }
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if spec.body is not None:
            op["requestBody"] = {"required": True, "content": _json_content(spec.body)}
        ok: dict[str, Any] = {"description": "OK"}
        if spec.response is not None:
            ok["content"] = _json_content(spec.response, spec.response_media)
        else:
            kind = "object" if spec.response_media == "application/json" else "string"
            ok["content"] = {spec.response_media: {"schema": {"type": kind}}}
        op["responses"]["200"] = ok
        for code in spec.errors:
            op["responses"][str(code)] = {
                "description": _ERROR_TEXT.get(code, "error"),
                "content": _json_content(spec.error_models.get(code, ErrorBody)),
            }
        if spec.access is Access.ADMIN:
            op["security"] = [{"bearer": []}]
        elif spec.access is Access.SCORING:
            op["security"] = [{}, {"bearer": []}]
        paths.setdefault(path, {})[spec.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Foresight prediction service",
            "version": __version__,
            "description": "Run-time predictions and priorities for Slurm jobs.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_ERROR_TEXT = {
    400: "invalid body (each bad field named)",
    401: "missing or wrong bearer token",
    404: "not found",
    409: "the model file was refused; the previous model keeps serving",
    413: "body larger than the configured limit",
    503: "not ready (no model: the message says how to train one) or no token configured",
}
