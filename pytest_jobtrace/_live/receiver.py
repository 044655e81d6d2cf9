"""The OTLP receiver: workers in other processes send their spans to the test process over OTLP/HTTP.

One receiver per process (per xdist worker), started the first time a live fixture asks for it and
stopped at the end of the session: ``session_receiver(config)`` returns it. Exporters post to
``receiver.endpoint + "/v1/traces"`` (set ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` to that in a worker, or
``OTEL_EXPORTER_OTLP_ENDPOINT`` to ``receiver.endpoint``). Requests may be protobuf or JSON
(``Content-Type: application/x-protobuf`` or ``application/json``), gzip- or deflate-compressed; each span
is decoded into an SDK ``ReadableSpan`` (``decode.py``) and routed to the test whose trace it continues
(``routing.py``), where ``job_spans`` shows it beside the in-process spans.

A worker's parent process reports an attempt lost with its process (a Celery pool child killed) with a JSON
``POST /jobtrace/v1/worker-lost``, and a worker what it decided about a job that no span shows (discarded
unrun, rejected with requeue) with ``POST /jobtrace/v1/job-verdict`` (``pytest_jobtrace._jobs.lost``);
``job_spans.wait()`` reads both.

A malformed body gets a 400 naming what is wrong, a path other than these three a 404. For the fault
"the receiver refuses spans for a moment", :meth:`OTLPReceiver.refuse` makes the next requests get a 503
(or 429) with ``Retry-After``: the stock exporter retries them, and nothing is lost.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_jobtrace._core.options import session_options
from pytest_jobtrace._jobs.lost import LOSSES, VERDICTS, parse_loss, parse_verdict
from pytest_jobtrace._live.decode import BadRequest, decode_request
from pytest_jobtrace._live.options import receiver_address
from pytest_jobtrace._live.routing import LiveRouter
from pytest_jobtrace._live.tracing import LOST_PATH, VERDICT_PATH

TRACES_PATH = "/v1/traces"
MAX_BODY = 64 * 1024 * 1024
MAX_LINE = 65536  # bytes in a header line, and headers in a request: http.client's limits
MAX_HEADERS = 100


@dataclass(frozen=True)
class Rejection:
    """A request the receiver answered with an error (kept so that a test can say why spans are missing)."""

    status: int
    reason: str


class OTLPReceiver:
    """An OTLP/HTTP trace receiver on ``host`` (127.0.0.1) and ``port`` (0: a free one).

    Exposed for type hints (``def test_x(jobtrace_receiver: OTLPReceiver)``); the fixture makes it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, router: LiveRouter | None = None) -> None:
        self.router = router or LiveRouter()
        self.rejections: list[Rejection] = []
        self.requests = 0  # requests whose spans were accepted
        self.refused = 0  # requests answered with a refusal that refuse() asked for
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._refusals: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()  # open ones, closed by stop() (exporters keep them alive)

    @property
    def endpoint(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``; exporters post to it + ``/v1/traces``."""
        if self._server is None:
            raise RuntimeError("the OTLP receiver is not started: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def traces_endpoint(self) -> str:
        return self.endpoint + TRACES_PATH

    def start(self) -> OTLPReceiver:
        if self._server is not None:
            return self
        server = _Server(self._address, _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="jobtrace-otlp-receiver", daemon=True)
        self._thread.start()
        self.router.captures.watchers.append(self.router)
        return self

    def stop(self) -> None:
        """Stop serving; spans no test ever owned are reported (see ``LiveRouter.finish``)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:  # a kept-alive connection would go on serving after the server stops
            with contextlib.suppress(OSError):  # closed by the other end already
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.router in self.router.captures.watchers:
            self.router.captures.watchers.remove(self.router)
        self.router.finish()

    def refuse(self, times: int = 1, *, status: int = 503, retry_after: float = 0.0) -> None:
        """Answer the next ``times`` trace requests with ``status`` (503 or 429) and ``Retry-After``, as a
        collector under load would: a fault to test that exporters retry and nothing is lost."""
        if status not in (429, 502, 503, 504):
            raise ValueError(f"refuse(status={status}): exporters retry only 429, 502, 503 and 504")
        with self._lock:
            self._refusals.extend([(status, retry_after)] * times)

    def _take_refusal(self) -> tuple[int, float] | None:
        with self._lock:
            if not self._refusals:
                return None
            self.refused += 1
            return self._refusals.pop(0)

    def _reject(self, status: int, reason: str) -> None:
        with self._lock:
            self.rejections.append(Rejection(status, reason))

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.endpoint if self._server is not None else "stopped"
        return f"<OTLPReceiver {where}>"


OTLPReceiver.__module__ = "pytest_jobtrace"


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the sender went away (or stop() closed its connection): nothing of ours went wrong
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def _handler_for(receiver: OTLPReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = receiver

    return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: OTLPReceiver
    protocol_version = "HTTP/1.1"  # keep-alive: the exporter's session reuses its connection
    timeout = 60  # seconds a connection may sit idle or stall mid-body before its thread lets it go

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        super().finish()

    def parse_request(self) -> bool:
        """The request line and headers, as ``BaseHTTPRequestHandler.parse_request`` reads them (HTTP/1.0 and
        1.1; ``self.headers`` an ``http.client.HTTPMessage``), without the ``email`` parser behind it: that
        parser took about 0.1 ms of every request, and a request is on the path of every live job."""
        self.command = ""  # until the request line is read (an error message names no command)
        self.request_version = "HTTP/1.0"  # an error about the request line still gets a status line
        self.close_connection = True
        raw: bytes = self.raw_requestline  # type: ignore[attr-defined]  # set by handle_one_request
        self.requestline = requestline = str(raw, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if not words:
            return False
        if len(words) != 3:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
            return False
        command, path, version = words
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            known = version.startswith("HTTP/") and version[5:].replace(".", "", 1).isdigit()
            self.send_error(
                HTTPStatus.HTTP_VERSION_NOT_SUPPORTED if known else HTTPStatus.BAD_REQUEST,
                f"Invalid HTTP version ({version!r})" if known else f"Bad request version ({version!r})",
            )
            return False
        self.command, self.path, self.request_version = command, path, version
        pairs: list[list[str]] = []
        for _ in range(MAX_HEADERS + 1):
            line = self.rfile.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            text = str(line, "iso-8859-1")
            if text[0] in " \t" and pairs:  # a folded line continues the header before it
                pairs[-1][1] += " " + text.strip()
                continue
            name, colon, value = text.partition(":")
            if not colon or not name.strip():
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad header line ({text.rstrip()!r})")
                return False
            pairs.append([name.strip(), value.strip()])
        else:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"More than {MAX_HEADERS} headers")
            return False
        headers = http.client.HTTPMessage()
        for name, value in pairs:
            headers[name] = value
        self.headers = headers
        connection = headers.get("Connection", "").lower()
        self.close_connection = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if headers.get("Expect", "").lower() == "100-continue" and version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        if self.path.split("?")[0] == LOST_PATH:
            self._worker_lost(body)
            return
        if self.path.split("?")[0] == VERDICT_PATH:
            self._job_verdict(body)
            return
        if self.path.split("?")[0] != TRACES_PATH:
            self._answer(404, f"no such path {self.path!r}: this OTLP receiver takes traces at {TRACES_PATH}")
            return
        refusal = self.owner._take_refusal()
        if refusal is not None:
            status, retry_after = refusal
            headers = {"Retry-After": f"{retry_after:g}"}
            self._answer(status, "refused for a moment (a test fault): retry", headers, keep=False)
            return
        content_type = self.headers.get("Content-Type", "")
        try:
            spans = decode_request(body, content_type, self.headers.get("Content-Encoding", ""))
        except BadRequest as error:
            self._answer(400, str(error))
            return
        try:
            self.owner.router.deliver(spans)
        except Exception as error:  # a bug of ours: say so to the sender and keep it, rather than drop the spans
            self._answer(500, f"pytest-jobtrace could not route the spans: {type(error).__name__}: {error}")
            return
        self.owner.requests += 1
        if content_type.split(";")[0].strip().lower() == "application/json":
            self._send(200, b"{}", "application/json")
        else:
            self._send(200, b"", "application/x-protobuf")  # an empty ExportTraceServiceResponse

    def _worker_lost(self, body: bytes) -> None:
        try:
            loss = parse_loss(json.loads(body))
        except ValueError as error:  # json.JSONDecodeError is one
            self._answer(400, f"{LOST_PATH}: {error}")
            return
        LOSSES.report(loss)
        self._send(200, b"{}", "application/json")

    def _job_verdict(self, body: bytes) -> None:
        try:
            verdict = parse_verdict(json.loads(body))
        except ValueError as error:
            self._answer(400, f"{VERDICT_PATH}: {error}")
            return
        VERDICTS.report(verdict)
        self._send(200, b"{}", "application/json")

    def do_GET(self) -> None:
        status = 405 if self.path.split("?")[0] == TRACES_PATH else 404
        self._answer(status, f"GET {self.path}: this OTLP receiver takes POST requests at {TRACES_PATH}")

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._answer(411, "a Content-Length header is required")
            return None
        if int(length) > MAX_BODY:
            self._answer(413, f"the body has {length} bytes, more than {MAX_BODY}")
            return None
        return self.rfile.read(int(length))

    def _answer(self, status: int, reason: str, headers: dict[str, str] | None = None, *, keep: bool = True) -> None:
        if keep:
            self.owner._reject(status, reason)
        self._send(status, reason.encode("utf-8"), "text/plain; charset=utf-8", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # no access log on stderr; errors are kept in receiver.rejections


_RECEIVER = pytest.StashKey["OTLPReceiver"]()
_start_lock = threading.Lock()


def session_receiver(config: pytest.Config) -> OTLPReceiver:
    """The session's receiver, started on first use (one per process: each xdist worker has its own),
    stopped when the session ends."""
    with _start_lock:
        receiver = config.stash.get(_RECEIVER, None)
        if receiver is None:
            host, port = _address(config)
            receiver = config.stash[_RECEIVER] = OTLPReceiver(host, port).start()
            config.add_cleanup(receiver.stop)
        return receiver


def _address(config: pytest.Config) -> tuple[str, int]:
    """``jobtrace_live_receiver`` (host:port, shifted by N on xdist worker gwN), else 127.0.0.1 and a free port."""
    spec = str(session_options(config).get("live_receiver", "") or "")
    # the xdist worker this session is, if it is one (not $PYTEST_XDIST_WORKER: a pytest run inside a
    # test of an xdist worker inherits that variable without being a worker)
    worker = getattr(config, "workerinput", {}).get("workerid")
    try:
        return receiver_address(spec, worker)
    except ValueError as error:
        raise pytest.UsageError(f"pytest-jobtrace: {error}") from None


def stop_session_receiver(config: pytest.Config) -> None:
    """Stop the session's receiver if one was started (at session finish, before the summary)."""
    receiver = config.stash.get(_RECEIVER, None)
    if receiver is not None:
        receiver.stop()
