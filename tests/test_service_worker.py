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
