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
thread, nothing lingers and this is plain ``gthread``). Everything else
(parsing, keep-alive timeouts, graceful shutdown, the arbiter's heartbeat)
is gunicorn's own.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: How long a pool thread waits on its kept-alive connection for the next request.
LINGER_S = 0.5


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
            keep = super().handle(conn)
        return keep

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
