"""A loopback TCP proxy a test owns, to cut a worker's broker connection and restore it.

    with TCPProxy(("127.0.0.1", 6379)) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"   # give this to the worker instead of the broker's own
        ...
        proxy.cut()      # every live connection is closed; new ones are refused (reset at once)
        proxy.restore()  # new connections are forwarded again

One thread runs a ``selectors`` loop for the listening socket and every forwarded pair; ``close()``
(or leaving the ``with``) stops it, closes every socket and joins the thread. The services themselves are
never touched: only the proxy's own sockets are closed.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Callable

_CHUNK = 65536


class TCPProxy:
    """Forwards connections made to ``127.0.0.1:port`` to ``target``."""

    def __init__(self, target: tuple[str, int], *, connect_timeout: float = 5.0) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peer: dict[socket.socket, socket.socket] = {}
        self._lock = threading.Lock()
        self._refusing = False
        self._stopping = False
        self.accepted = 0
        """Connections forwarded so far."""
        self.refused = 0
        """Connections reset while cut."""
        self._pending: tuple[Callable[[], None], threading.Event] | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def connections(self) -> int:
        """Forwarded connections open right now."""
        with self._lock:
            return len(self._peer) // 2

    def cut(self) -> None:
        """Close every forwarded connection (reset, as a dropped link looks) and refuse new ones."""
        self._call(self._cut)

    def restore(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._refusing = False

    def close(self) -> None:
        """Stop the loop, close every socket, join the thread."""
        if not self._thread.is_alive():
            return
        self._stopping = True
        self._wake()
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError(f"TCPProxy on port {self.port}: its thread did not stop within 10 s")

    def __enter__(self) -> TCPProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "cut" if self._refusing else "forwarding"
        return f"<TCPProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]} {state}>"

    # -- the loop's side ----------------------------------------------------------------------------

    def _call(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the loop's thread (which owns the sockets) and wait for it."""
        done = threading.Event()
        with self._lock:
            self._pending = (action, done)
        self._wake()
        if not done.wait(timeout=10):
            raise RuntimeError(f"TCPProxy on port {self.port}: the loop did not answer within 10 s")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _loop(self) -> None:
        try:
            while not self._stopping:
                for key, _ in self._selector.select(timeout=1.0):
                    if key.data == "wake":
                        self._drain_wake()
                    elif key.fileobj is self._listener:
                        self._accept()
                    else:
                        self._forward(key.fileobj)  # type: ignore[arg-type]
        finally:
            self._shutdown()

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(1024):
                pass
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            action, done = pending
            action()
            done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        with self._lock:
            refusing = self._refusing
        if refusing:
            self.refused += 1
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
        except OSError:
            _reset(client)
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._peer[client], self._peer[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ, "conn")
        self._selector.register(upstream, selectors.EVENT_READ, "conn")
        self.accepted += 1

    def _forward(self, source: socket.socket) -> None:
        with self._lock:
            target = self._peer.get(source)
        if target is None:
            return
        try:
            data = source.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(source)
            return
        try:
            target.setblocking(True)
            target.settimeout(10)
            target.sendall(data)
            target.setblocking(False)
        except OSError:
            self._drop(source)

    def _drop(self, sock: socket.socket) -> None:
        """Close a forwarded pair (reset both ends: the far side sees the connection drop)."""
        with self._lock:
            peer = self._peer.pop(sock, None)
            if peer is not None:
                self._peer.pop(peer, None)
        for one in (sock, peer):
            if one is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            _reset(one)

    def _cut(self) -> None:
        with self._lock:
            self._refusing = True
            socks = list(self._peer)
        for sock in socks:
            self._drop(sock)

    def _shutdown(self) -> None:
        with self._lock:
            socks = list(self._peer)
        for sock in socks:
            self._drop(sock)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN, as a cut link looks to both ends."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
