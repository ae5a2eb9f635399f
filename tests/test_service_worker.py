"""``StickyThreadWorker``'s linger rule, on real sockets (the served path: test_service_serve)."""

from __future__ import annotations

import io
import socket
import threading
from types import SimpleNamespace

import pytest

from predictor.service import worker as worker_mod
from predictor.service.worker import StickyThreadWorker


def _worker(threads: int) -> StickyThreadWorker:
    w = object.__new__(StickyThreadWorker)  # only what the linger rule reads
    w._lingering = 0
    w._linger_lock = threading.Lock()
    w.cfg = SimpleNamespace(threads=threads)
    return w


def _conn(sock: socket.socket, buffered: bytes = b"") -> SimpleNamespace:
    parser = SimpleNamespace(unreader=SimpleNamespace(buf=io.BytesIO(buffered)))
    return SimpleNamespace(is_http2=False, parser=parser, sock=sock)


@pytest.fixture
def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.fixture(autouse=True)
def short_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_mod, "LINGER_S", 0.05)


def test_a_request_already_sent_is_taken_by_the_same_thread(pair) -> None:
    server, client = pair
    client.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
    w = _worker(threads=2)
    assert w._next_request_arrives(_conn(server))
    assert w._lingering == 0  # the count is given back


def test_bytes_read_ahead_count_as_the_next_request(pair) -> None:
    server, _ = pair
    assert _worker(threads=1)._next_request_arrives(_conn(server, b"GET / HTTP/1.1\r\n"))


def test_an_idle_connection_goes_back_to_the_poller(pair) -> None:
    server, _ = pair
    w = _worker(threads=2)
    assert not w._next_request_arrives(_conn(server))
    assert w._lingering == 0


def test_one_thread_always_stays_free(pair) -> None:
    server, client = pair
    client.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
    assert not _worker(threads=1)._next_request_arrives(_conn(server))  # nobody lingers
    w = _worker(threads=3)
    w._lingering = 2  # two threads wait on their connections already
    assert not w._next_request_arrives(_conn(server))
    w._lingering = 1
    assert w._next_request_arrives(_conn(server))


def test_http2_connections_are_not_held(pair) -> None:
    server, client = pair
    client.sendall(b"x")
    conn = _conn(server)
    conn.is_http2 = True
    assert not _worker(threads=2)._next_request_arrives(conn)


# --- the plain score path (_answer_plain), on a socket pair with gunicorn's own unreader ----
SCORE = b'{"user": "alice", "time_limit": 3600}'


def _request(body: bytes = SCORE, extra: bytes = b"", path: bytes = b"/v1/jobs/score") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body)  # fmt: skip


class _App:
    """A WSGI app that echoes what it was given (method, path, body, one header)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        self.calls.append({"path": environ["PATH_INFO"], "body": body,
                           "auth": environ.get("HTTP_AUTHORIZATION")})  # fmt: skip
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "99")])
        return [b'{"echo": ', body, b"}"]


def _plain_worker(app: _App, alive: bool = True) -> StickyThreadWorker:
    w = _worker(threads=2)
    w.wsgi, w.alive, w.nr = app, alive, 0
    return w


def _plain_conn(sock: socket.socket) -> SimpleNamespace:
    from gunicorn.http.unreader import SocketUnreader

    parser = SimpleNamespace(unreader=SocketUnreader(sock))
    return SimpleNamespace(parser=parser, sock=sock, server=("127.0.0.1", 8765),
                           client=("127.0.0.1", 5000), is_http2=False)  # fmt: skip


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(x for x in head.split(b"\r\n") if x.startswith(b"Content-Length:"))[15:])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_the_plain_request_is_answered_with_the_apps_answer_in_one_piece(pair) -> None:
    server, client = pair
    app = _App()
    client.sendall(_request(extra=b"Authorization: Bearer t0k\r\n"))
    assert _plain_worker(app)._answer_plain(_plain_conn(server)) is True
    answer = _read_answer(client)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: %d\r\n" % len(b'{"echo": ' + SCORE + b"}") in answer  # recounted
    assert answer.endswith(b'{"echo": ' + SCORE + b"}")
    assert app.calls == [{"path": "/v1/jobs/score", "body": SCORE, "auth": "Bearer t0k"}]


def test_pipelined_requests_are_answered_in_order(pair) -> None:
    server, client = pair
    app, conn = _App(), _plain_conn(server)
    second = b'{"user": "bob", "time_limit": 60}'
    client.sendall(_request() + _request(second))
    w = _plain_worker(app)
    assert w._answer_plain(conn) is True and w._answer_plain(conn) is True
    assert [c["body"] for c in app.calls] == [SCORE, second]
    data = b""
    while data.count(b"}}") < 2:
        data += client.recv(65536)
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert data.index(SCORE) < data.index(second) and data.endswith(second + b"}")


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        _request(path=b"/v1/jobs/score:batch"),
        _request(extra=b"Connection: close\r\n"),
        _request(extra=b"Expect: 100-continue\r\n"),
        b"POST /v1/jobs/score HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        b"POST /v1/jobs/score HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/jobs/score HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /v1/jobs/score HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{}",
        b"POST /v1/jobs/score HTTP/1.1\r\nbroken header line\r\nContent-Length: 2\r\n\r\n{}",
        _request(extra=b"X_Forwarded_For: 10.0.0.1\r\n"),
    ],
    ids=[
        "other-route", "batch", "close", "expect", "chunked", "http1.0", "two-lengths",
        "oversize", "malformed", "underscore-header",
    ],
)
def test_anything_else_goes_back_to_gunicorn_unread(pair, raw: bytes) -> None:
    server, client = pair
    app, conn = _App(), _plain_conn(server)
    client.sendall(raw)
    assert _plain_worker(app)._answer_plain(conn) is None
    assert app.calls == []
    assert conn.parser.unreader.read() == raw  # gunicorn's parser sees every byte


def test_a_stopping_worker_answers_and_closes(pair) -> None:
    server, client = pair
    client.sendall(_request())
    assert _plain_worker(_App(), alive=False)._answer_plain(_plain_conn(server)) is False
    assert b"\r\nConnection: close\r\n" in _read_answer(client)
