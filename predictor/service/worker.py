"""gunicorn worker class of ``foresight serve``: gthread whose threads stay on a busy connection.

gunicorn's ``gthread`` worker hands every request of a kept-alive connection
through three threads: its main thread waits on the socket (epoll), submits
the connection to the pool, and takes it back through a pipe when the answer
is sent. That costs ~0.5-0.7 ms per request on a small machine, about twice
the score itself, and ``job_submit`` pays it inside slurmctld's locks for
every ``sbatch``.

:class:`StickyThreadWorker` keeps the pool thread on the connection it just
answered for up to :data:`LINGER_S`: if the next request arrives by then (a
burst of ``sbatch``, the priority daemon's batches), the same thread reads
and answers it at once; if not, the connection goes back to the main thread's
poller exactly as in ``gthread``. At most ``threads - 1`` threads linger at a
time, so one thread is always free for a new connection or request (with one
thread, nothing lingers and this is plain ``gthread``).

A request that arrives that way and is the plain case of ``job_submit``'s
call (``POST /v1/jobs/score`` over HTTP/1.1, with ``Content-Length``, without
``Transfer-Encoding``, ``Expect`` or ``Connection: close``) is read and
answered by :meth:`StickyThreadWorker._answer_plain` without gunicorn's
parser, WSGI environ and response objects: it builds a minimal environ and
calls the same WSGI app (the score fast path, Flask behind it for every error
answer), then writes the answer in one ``send``. gunicorn's per-request work
costs about as much as the score itself, twice that when the request finds
the machine's caches cold, as ``sbatch`` submissions a few milliseconds apart
do (docs/cluster.md). Anything else is given back to gunicorn unread (the
bytes return to its read buffer) and handled as usual. Keep-alive timeouts,
graceful shutdown and the arbiter's heartbeat stay gunicorn's own.
"""

from __future__ import annotations

import io
import select
import socket
import sys
import threading
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: How long a pool thread waits on its kept-alive connection for the next request.
LINGER_S = 0.5
#: The one route answered without gunicorn's parser (job_submit's call).
PLAIN_PATH = b"/v1/jobs/score"
#: Largest request head / body the plain path reads; larger requests go to gunicorn
#: (and a body over the service's limit gets its 413 there).
MAX_HEAD = 16384
MAX_BODY = 1 << 20


class StickyThreadWorker(ThreadWorker):  # type: ignore[misc]
    """``gthread`` whose pool threads answer a connection's next request without a hand-off."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lingering = 0
        self._linger_lock = threading.Lock()

    def handle(self, conn: Any) -> Any:
        """Answer requests on ``conn`` while they keep coming within :data:`LINGER_S`."""
        keep = super().handle(conn)
        while keep is True and self.alive and self._next_request_arrives(conn):
            try:
                keep = self._answer_plain(conn)
            except OSError:  # the client went away: as gunicorn, just close
                return False
            if keep is None:  # not the plain case: gunicorn reads it from the start
                keep = super().handle(conn)
        return keep

    def _answer_plain(self, conn: Any) -> bool | None:
        """Answer a plain score request on ``conn``; None (nothing consumed) otherwise."""
        unreader = conn.parser.unreader
        conn.sock.setblocking(True)
        data = b""
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEAD:
                unreader.unread(data)
                return None
            chunk = unreader.read()
            if not chunk:
                unreader.unread(data)
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        request = _plain_request(head)
        if request is None:
            unreader.unread(data)
            return None
        headers, length = request
        while len(rest) < length:
            chunk = unreader.read()
            if not chunk:  # the client went away mid-body
                return False
            rest += chunk
        if len(rest) > length:
            unreader.unread(rest[length:])  # a pipelined next request
        status, out_headers, body = self._call_app(headers, rest[:length], conn)
        closing = not self.alive
        lines = [b"HTTP/1.1 " + status.encode("latin-1")]
        lines += [f"{k}: {v}".encode("latin-1") for k, v in out_headers
                  if k.lower() not in ("content-length", "connection")]  # fmt: skip
        lines.append(b"Content-Length: %d" % len(body))
        if closing:
            lines.append(b"Connection: close")
        conn.sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self.nr += 1
        return not closing

    def _call_app(
        self, headers: dict[str, str], body: bytes, conn: Any
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """The WSGI app's answer to ``POST /v1/jobs/score`` with ``headers`` and ``body``."""
        host, port = (conn.server[0], conn.server[1]) if isinstance(conn.server, tuple) else ("", 0)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": PLAIN_PATH.decode(),
            "QUERY_STRING": "", "SERVER_NAME": str(host), "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": headers.get("content-type", ""),
        }  # fmt: skip
        if isinstance(conn.client, tuple):
            environ["REMOTE_ADDR"] = str(conn.client[0])
        for name, value in headers.items():
            if name not in ("content-type", "content-length"):
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        answer: list[Any] = []

        def start_response(status: str, response_headers: list, exc_info: Any = None) -> Any:
            answer[:] = [status, response_headers]
            return lambda _data: None

        result = self.wsgi(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return answer[0], answer[1], payload

    def handle_request(self, req: Any, conn: Any) -> Any:
        """gunicorn's answer, corked: status line, headers and body leave in one segment."""
        corked = _set_cork(conn.sock, True)
        try:
            return super().handle_request(req, conn)
        finally:
            if corked:
                _set_cork(conn.sock, False)

    def _next_request_arrives(self, conn: Any) -> bool:
        """Whether ``conn`` becomes readable within the linger (False: back to the poller)."""
        if conn.is_http2:
            return False
        if conn.parser.unreader.buf.getvalue():
            return True  # already read ahead
        with self._linger_lock:
            if self._lingering >= self.cfg.threads - 1:
                return False  # keep one thread free for everybody else
            self._lingering += 1
        try:
            readable, _, _ = select.select([conn.sock], [], [], LINGER_S)
        except (OSError, ValueError):
            return False
        finally:
            with self._linger_lock:
                self._lingering -= 1
        return bool(readable)


def _set_cork(sock: Any, on: bool) -> bool:
    """Set ``TCP_CORK`` (Linux); False where the socket or platform has none."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))
    except (AttributeError, OSError):
        return False
    return True


def _plain_request(head: bytes) -> tuple[dict[str, str], int] | None:
    """``(headers, content length)`` of a request head that is the plain case, else None."""
    lines = head.split(b"\r\n")
    if lines[0] != b"POST " + PLAIN_PATH + b" HTTP/1.1":
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            return None  # malformed (or obsolete folding): gunicorn answers it
        key = name.decode("latin-1").lower()
        if key in headers or "_" in key:
            return None  # repeated, or ambiguous in WSGI (X_A vs X-A): gunicorn's rules apply
        headers[key] = value.strip().decode("latin-1")
    if "transfer-encoding" in headers or "expect" in headers or "upgrade" in headers:
        return None
    if headers.get("connection", "").lower() == "close":
        return None
    length = headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_BODY:
        return None
    return headers, int(length)
