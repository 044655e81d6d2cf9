"""tests/tcp_proxy.py: forwards both ways, cut() drops live connections and refuses new ones, restore()
forwards again, close() leaves no thread or socket behind."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from tcp_proxy import TCPProxy


class EchoServer:
    """A loopback server the test owns: sends back what it reads, on a thread per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.accepter.join(timeout=5)
        for thread in self.threads:
            thread.join(timeout=5)


@pytest.fixture(name="echo")
def _echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture(name="proxy")
def _proxy(echo: EchoServer) -> Iterator[TCPProxy]:
    with TCPProxy(("127.0.0.1", echo.port)) as proxy:
        yield proxy


def connect(proxy: TCPProxy) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=5)


def roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def dropped(sock: socket.socket) -> bool:
    """The connection is gone: a read ends (EOF) or fails (reset)."""
    try:
        sock.sendall(b"ping")
        return sock.recv(16) == b""
    except OSError:
        return True


def refused(proxy: TCPProxy) -> bool:
    """A new connection is reset: at connect (the reset can win the race on loopback) or at the first read."""
    try:
        sock = connect(proxy)
    except OSError:
        return True
    with sock:
        return dropped(sock)


def test_it_forwards_both_ways(proxy: TCPProxy) -> None:
    with connect(proxy) as sock:
        assert roundtrip(sock, b"hello") == b"hello"
        big = os.urandom(1_000_000)
        assert roundtrip(sock, big) == big
    assert proxy.accepted == 1


def test_cut_drops_live_connections_and_refuses_new_ones_until_restored(proxy: TCPProxy) -> None:
    first, second = connect(proxy), connect(proxy)
    assert roundtrip(first, b"a") == b"a"
    assert roundtrip(second, b"b") == b"b"
    assert proxy.connections == 2
    proxy.cut()
    assert dropped(first)
    assert dropped(second)
    assert proxy.connections == 0
    assert refused(proxy)  # the listener stays open and resets, as a host whose service went away does
    assert proxy.refused == 1
    proxy.restore()
    with connect(proxy) as again:
        assert roundtrip(again, b"back") == b"back"
    first.close()
    second.close()


def test_a_side_that_closes_closes_the_pair(proxy: TCPProxy) -> None:
    """No half-close: the brokers' protocols never use one, and a pair is easier to account for whole."""
    sock = connect(proxy)
    assert roundtrip(sock, b"x") == b"x"
    sock.close()
    deadline = time.monotonic() + 5
    while proxy.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.connections == 0


def test_an_unreachable_target_resets_the_client() -> None:
    with socket.create_server(("127.0.0.1", 0)) as spare:
        port = spare.getsockname()[1]  # free once closed: nothing listens there
    with TCPProxy(("127.0.0.1", port), connect_timeout=1) as proxy:
        assert refused(proxy)
    assert proxy.accepted == 0


def test_close_stops_its_thread_and_closes_its_sockets(echo: EchoServer) -> None:
    proxy = TCPProxy(("127.0.0.1", echo.port))
    sock = connect(proxy)
    assert roundtrip(sock, b"x") == b"x"
    proxy.close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("tcp-proxy-")] == []
    assert dropped(sock)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=1).close()
    proxy.close()  # twice is fine
    sock.close()


def test_repr_says_where_it_forwards_and_whether_it_is_cut(proxy: TCPProxy, echo: EchoServer) -> None:
    assert repr(proxy) == f"<TCPProxy 127.0.0.1:{proxy.port} -> 127.0.0.1:{echo.port} forwarding>"
    proxy.cut()
    assert repr(proxy).endswith(" cut>")


def test_redis_through_the_proxy_fails_while_cut_and_answers_once_restored() -> None:
    redis = pytest.importorskip("redis")
    from rq_fidelity import require_redis

    require_redis()
    with TCPProxy(("127.0.0.1", 6379)) as proxy:
        client = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=5, retry=None)
        assert client.ping()
        proxy.cut()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        proxy.restore()
        assert client.ping()
        client.close()
