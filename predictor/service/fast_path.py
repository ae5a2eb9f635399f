"""``POST /v1/jobs/score`` without Flask's per-request machinery, when nothing can go wrong.

``job_submit`` calls this route once per ``sbatch``, while slurmctld waits.
Flask's handling of a request (request context, routing, before/after hooks,
the response object) costs about as much CPU as scoring the job, so
:class:`ScoreFastPath`, a WSGI wrapper around the Flask app, answers the
plain case itself: a ``POST`` to exactly this path, scoring open (no token to
check), a body of declared length within ``max_body_bytes`` that validates,
and a served model. It answers with :func:`predictor.service.jobs.score_one`,
the route's own function, and counts the request in the same metrics.

Everything else goes to Flask untouched: another path or method, a token to
check, no ``Content-Length``, an oversize or invalid body, no model, a
failure while scoring (the body read so far is handed on, so the route answers
its own 400, 413, 503 or 500 exactly as without this wrapper).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from predictor.service.schemas import JobDescriptor

log = logging.getLogger(__name__)

SCORE_PATH = "/v1/jobs/score"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ScoreFastPath:
    """WSGI middleware: the plain score request here, everything else to ``wsgi_app``."""

    def __init__(self, wsgi_app: WSGIApp, service: Any) -> None:
        self.wsgi_app = wsgi_app
        self.service = service

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        service = self.service
        if (
            environ.get("PATH_INFO") != SCORE_PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or not service.config.scoring_open
        ):
            return self.wsgi_app(environ, start_response)
        t0 = time.perf_counter()
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return self.wsgi_app(environ, start_response)
        if not 0 < length <= service.config.max_body_bytes:
            return self.wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        payload = self._answer(body) if len(body) == length else None
        if payload is None:
            environ["wsgi.input"] = io.BytesIO(body)
            return self.wsgi_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(payload)))])  # fmt: skip
        service.metrics.request_done(SCORE_PATH, "POST", 200, time.perf_counter() - t0)
        return [payload]

    def _answer(self, body: bytes) -> bytes | None:
        """The 200 answer, or None when the Flask route must answer (and explain) instead."""
        from predictor.service.jobs import score_one

        loaded = self.service.slot.current
        if loaded is None:
            return None
        try:
            job = JobDescriptor.model_validate_json(body)
        except ValidationError:
            return None
        try:
            return score_one(self.service, loaded, job).model_dump_json().encode()
        except Exception:  # the route answers (and logs) the same failure as a JSON 500
            log.debug("fast path failed, handing the request to Flask", exc_info=True)
            return None
