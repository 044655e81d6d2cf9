"""Tracing inside a live worker process: spans exported over OTLP/HTTP to the test's receiver.

Runs in the worker (the test process reads only the report paths from it): no pytest here. The worker
bootstraps of the adapters (``pytest_jobtrace.celery.live_worker``, ``pytest_jobtrace.rq.live_worker``)
call :func:`install` where the worker runs jobs and :func:`flush` when a job ends, so that
``job_spans.wait()`` returns as soon as the job's last span is sent instead of after the batch processor's
next tick. A worker reports what no span shows with :func:`post_report` (``LOST_PATH``, ``VERDICT_PATH``).

A ``BatchSpanProcessor``'s thread and its exporter's HTTP connection do not survive ``fork``: a forked
child (Celery's prefork pool, RQ's work horse) would lose its spans or write on its parent's socket.
:class:`ForkSafeExport` builds a new processor and exporter in every child, so each process sends its
own spans on its own connection, and the parent's unsent spans stay the parent's to send.

The exporter is the stock ``OTLPSpanExporter`` (its encoding, retries, ``Retry-After`` and timeouts). Where
the installed exporter takes an HTTP transport (``opentelemetry-exporter-otlp-proto-http`` 1.45 and later,
through its ``_transport`` argument), it sends with :class:`KeepAliveTransport`, one socket kept open and
each request written in one ``sendall``, instead of a ``requests`` session: on loopback that is under
0.4 ms instead of 0.9 ms a request, paid once per job while the test waits for the job's spans
(``benchmarks/live_workers.py``).
Elsewhere (an older exporter, an ``https`` receiver) the stock transport is used as it is.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import sys
import threading
import urllib.request
from collections.abc import Mapping
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

ENDPOINT_ENV = "JOBTRACE_LIVE_ENDPOINT"
"""The receiver's traces URL (``http://127.0.0.1:PORT/v1/traces``) the fixture gives the worker."""
INSTRUMENTATION_ENV = "JOBTRACE_LIVE_INSTRUMENTATION"
"""JSON: the options the test process instruments the job system with (``use_span_links``); the worker's match."""
READY_ENV = "JOBTRACE_LIVE_READY"
"""A file the worker writes once it takes jobs."""
LOST_PATH = "/jobtrace/v1/worker-lost"
"""Where a worker reports an attempt lost with its process (``pytest_jobtrace._jobs.lost``)."""
VERDICT_PATH = "/jobtrace/v1/job-verdict"
"""Where a worker reports a decision no span shows (a job discarded unrun, an attempt requeued)."""
FLUSH_TIMEOUT_MILLIS = 10_000
SCHEDULE_DELAY_MILLIS = 100  # spans outside a job (a scheduler's) go out within this, flushed or not

_provider: TracerProvider | None = None
_lock = threading.Lock()
log = logging.getLogger(__name__)


class ForkSafeExport(SpanProcessor):
    """A batch processor exporting over OTLP/HTTP, made anew in each forked child."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._inner = self._new()
        os.register_at_fork(after_in_child=self._renew)

    def _new(self) -> BatchSpanProcessor:
        return BatchSpanProcessor(exporter(self.endpoint), schedule_delay_millis=SCHEDULE_DELAY_MILLIS)

    def _renew(self) -> None:
        self._inner = self._new()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._inner.on_end(span)

    def force_flush(self, timeout_millis: int = FLUSH_TIMEOUT_MILLIS) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]


def exporter(endpoint: str) -> SpanExporter:
    """The stock OTLP/HTTP exporter for ``endpoint``, on a :class:`KeepAliveTransport` where it takes one."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    transport = keep_alive_transport(endpoint)
    if transport is not None:
        try:
            return OTLPSpanExporter(endpoint=endpoint, _transport=transport)  # type: ignore[call-overload,unused-ignore]
        except TypeError:  # an exporter whose constructor has no _transport after all
            transport.close()
    return OTLPSpanExporter(endpoint=endpoint)


def keep_alive_transport(endpoint: str) -> Any:
    """A :class:`KeepAliveTransport` for an ``http://`` endpoint, if the installed exporter has the transport
    interface (``opentelemetry.exporter.http.transport``); else None."""
    if urlsplit(endpoint).scheme != "http":
        return None
    try:
        from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
    except ImportError:
        return None
    return _transport_class(BaseHTTPResult, BaseHTTPTransport)(endpoint)


_TRANSPORT: type | None = None


def _transport_class(result_base: type, transport_base: type) -> type:
    """:class:`KeepAliveTransport` on the exporter's own base classes (made once: they are imported late,
    as the exporter is optional)."""
    global _TRANSPORT
    if _TRANSPORT is not None:
        return _TRANSPORT

    class Result(result_base):  # type: ignore[misc]
        """A response (``status_code``, ``reason``) or an ``error``; the body read in full."""

        __slots__ = ("_body", "_headers")

        def __init__(self, status_code: int | None = None, reason: str | None = None, error: Exception | None = None,
                     body: bytes = b"", headers: Mapping[str, str] | Message | None = None) -> None:  # fmt: skip
            super().__init__(status_code=status_code, reason=reason, error=error)
            object.__setattr__(self, "_body", body)
            object.__setattr__(self, "_headers", headers if headers is not None else {})

        def content(self) -> bytes:
            return self._body  # type: ignore[no-any-return]

        def headers(self) -> Mapping[str, str]:
            return self._headers  # type: ignore[no-any-return]  # http.client's Message: case-insensitive get()

    class KeepAliveTransport(transport_base):  # type: ignore[misc]
        """HTTP/1.1 on one socket, kept open between exports and opened again after an error (the exporter
        retries a connection error once at once, and 429/5xx with backoff). A request goes out in one
        ``sendall``; the answer is read by ``http.client.HTTPResponse``."""

        def __init__(self, endpoint: str) -> None:
            parts = urlsplit(endpoint)
            self.host = parts.hostname or "127.0.0.1"
            self.port = parts.port or 80
            self._host_header = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            self._connection: socket.socket | None = None
            self._lock = threading.Lock()

        def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                    timeout: float | None = None, data: bytes | None = None) -> Any:  # fmt: skip
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            body = data or b""
            try:
                head = request_head(method, target, self._host_header, headers or {}, len(body))
            except ValueError as error:  # a header the exporter was configured with cannot be sent
                return Result(error=error)
            with self._lock:
                try:
                    connection = self._open(timeout)
                    connection.sendall(head + body)
                    response = http.client.HTTPResponse(connection, method=method)
                    response.begin()
                    payload = response.read()
                except (OSError, http.client.HTTPException) as error:
                    self._drop()
                    return Result(error=error)
                if response.will_close:
                    self._drop()
                return Result(response.status, response.reason, body=payload, headers=response.headers)

        def _open(self, timeout: float | None) -> socket.socket:
            if self._connection is None:
                connection = socket.create_connection((self.host, self.port), timeout=timeout)
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._connection = connection
            else:
                self._connection.settimeout(timeout)
            return self._connection

        def _drop(self) -> None:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.close()

        def is_connection_error(self, exception: Exception | None) -> bool:
            return isinstance(exception, (OSError, http.client.HTTPException))

        def close(self) -> None:
            with self._lock:
                self._drop()

    KeepAliveTransport.__qualname__ = KeepAliveTransport.__name__ = "KeepAliveTransport"
    _TRANSPORT = KeepAliveTransport
    return KeepAliveTransport


_ILLEGAL_IN_HEADER = re.compile(r"[\x00\r\n]")


def request_head(method: str, target: str, host: str, headers: Mapping[str, str], length: int) -> bytes:
    """The request line and headers of an HTTP/1.1 request with a body of ``length`` bytes; a ValueError
    names a header that cannot be sent (a line break in it, or a character outside Latin-1)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if name.strip().lower() in ("host", "content-length"):
            continue
        if not name.strip() or ":" in name or _ILLEGAL_IN_HEADER.search(f"{name}{value}"):
            raise ValueError(f"the header {name!r}: {value!r} cannot be sent (an empty name, a colon or a line break)")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {length}")
    text = "\r\n".join(lines) + "\r\n\r\n"
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as error:
        raise ValueError(f"a header has a character HTTP cannot carry: {text[error.start : error.end]!r}") from None


class HashedOnce(Resource):
    """A ``Resource`` that computes its hash once. The stock OTLP encoder groups spans by resource, hashing
    it (a JSON dump of its attributes) for every span of every export: a fifth of encoding a job's spans.
    A resource does not change once made, so neither does its hash; the spans sent are the same."""

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = super().__hash__()
        return self._hash


ENCODED_PAIRS_KEPT = 4096
"""Encoded attributes :func:`cache_encoding` keeps (then it starts afresh): a job's ids never repeat."""


def cache_encoding() -> bool:
    """Have the stock OTLP trace encoder reuse what it encoded before, in this process: the resource and
    the instrumentation scopes (the same objects for every span a worker sends) and attributes whose value
    is a ``str``, ``bool`` or ``int`` (``celery.action = "run"``, the task's name, the host: the same for
    every job). The request it builds is the same, byte for byte (tests/test_live_receiver.py); encoding a
    Celery job's two spans takes 36 instead of 57 microseconds (warm). The stock functions are wrapped where
    they are looked up, in ``opentelemetry.exporter.otlp.proto.common._internal.trace_encoder``; an
    encoder without them is left as it is (False), and a call with arguments these wrappers do not know
    goes to the stock function.
    """
    try:
        from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder as module
    except ImportError:
        return False
    trace_encoder: Any = module
    names = ("_encode_attributes", "_encode_resource", "_encode_instrumentation_scope")
    if not all(callable(getattr(trace_encoder, name, None)) for name in names):
        return False
    stock_attributes = trace_encoder._encode_attributes
    if getattr(stock_attributes, "_jobtrace_cached", False):
        return True
    pairs: dict[tuple[str, type, object], Any] = {}

    def attributes(values: Any, *more: Any, **options: Any) -> list[Any]:
        if more or options:  # an encoder newer than this wrapper: its own way
            return stock_attributes(values, *more, **options)  # type: ignore[no-any-return]
        if not values:
            return []
        encoded: list[Any] = []
        for key, value in values.items():
            kind = type(value)
            if kind is not str and kind is not bool and kind is not int:  # a float's 0.0 == -0.0, a tuple...
                encoded.extend(stock_attributes({key: value}))
                continue
            pair = pairs.get((key, kind, value))
            if pair is None:
                found = stock_attributes({key: value})  # encoded, or logged and left out, as the stock does
                if len(found) != 1:
                    continue
                if len(pairs) >= ENCODED_PAIRS_KEPT:
                    pairs.clear()
                pair = pairs[(key, kind, value)] = found[0]
            encoded.append(pair)  # protobuf copies it into the span: the kept one never changes
        return encoded

    attributes._jobtrace_cached = True  # type: ignore[attr-defined]
    trace_encoder._encode_attributes = attributes
    trace_encoder._encode_resource = _by_identity(trace_encoder._encode_resource)
    trace_encoder._encode_instrumentation_scope = _by_identity(trace_encoder._encode_instrumentation_scope)
    return True


def _by_identity(encode: Any) -> Any:
    """``encode`` for objects that do not change once made (a resource, a scope), encoded once each."""
    done: dict[int, tuple[object, Any]] = {}

    def cached(value: object, *more: Any, **options: Any) -> Any:
        if more or options:  # an encoder newer than this wrapper: its own way
            return encode(value, *more, **options)
        entry = done.get(id(value))
        if entry is None or entry[0] is not value:
            if len(done) >= 256:
                done.clear()
            entry = done[id(value)] = (value, encode(value))  # the value kept: its id is not reused meanwhile
        return entry[1]

    return cached


OTLP_TRACES_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTLP_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
NO_ENDPOINT = (
    f"pytest-jobtrace live worker: set {ENDPOINT_ENV} (or {OTLP_TRACES_ENV}) to the receiver's traces URL, "
    "http://HOST:PORT/v1/traces"
)


def adopt_otlp_endpoint() -> str | None:
    """For a worker started elsewhere (``jobtrace_live_workers = external``): where ``$JOBTRACE_LIVE_ENDPOINT``
    is not set, take the receiver's traces URL from the OTLP exporter's own variables,
    ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as it is or ``$OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``,
    and set it, so that this process and its children export and report there. Returns the URL, or None."""
    endpoint = os.environ.get(ENDPOINT_ENV) or os.environ.get(OTLP_TRACES_ENV)
    if not endpoint and os.environ.get(OTLP_ENV):
        endpoint = os.environ[OTLP_ENV].rstrip("/") + "/v1/traces"
    if endpoint:
        os.environ[ENDPOINT_ENV] = endpoint
    return endpoint or None


def install(service: str, endpoint: str | None = None) -> TracerProvider:
    """The process's global provider, exporting to ``endpoint`` (default: ``$JOBTRACE_LIVE_ENDPOINT``).

    Once per process; a forked child inherits it (and exports on its own processor, see above)."""
    global _provider
    with _lock:
        if _provider is None:
            target = endpoint or os.environ.get(ENDPOINT_ENV)
            if not target:
                raise RuntimeError(NO_ENDPOINT)
            resource = Resource.create({"service.name": service})
            provider = TracerProvider(resource=HashedOnce(resource.attributes, resource.schema_url))
            provider.add_span_processor(ForkSafeExport(target))
            cache_encoding()
            trace.set_tracer_provider(provider)
            _provider = provider
        return _provider


def instrumentation_options() -> dict[str, Any]:
    """The instrumentor's options the fixture gives the worker (``$JOBTRACE_LIVE_INSTRUMENTATION``)."""
    options = json.loads(os.environ.get(INSTRUMENTATION_ENV) or "{}")
    if not isinstance(options, dict):
        raise RuntimeError(f"pytest-jobtrace live worker: {INSTRUMENTATION_ENV} is not a JSON object: {options!r}")
    return options


def flush() -> None:
    """Send every ended span now (at the end of each job)."""
    if _provider is not None:
        _provider.force_flush(FLUSH_TIMEOUT_MILLIS)


def shutdown() -> None:
    """Send what is left and stop the exporter (when a worker process exits)."""
    if _provider is not None:
        _provider.shutdown()


def ready() -> None:
    """Tell the fixture that the worker takes jobs now."""
    path = os.environ.get(READY_ENV)
    if path:
        Path(path).write_text(str(os.getpid()))
    print(f"pytest-jobtrace live worker ready (pid {os.getpid()})", file=sys.stderr, flush=True)


def report_url(traces_endpoint: str, path: str) -> str:
    """The report URL ``path`` beside the receiver's traces URL (``http://127.0.0.1:PORT/v1/traces``)."""
    base = traces_endpoint.rstrip("/")
    if base.endswith("/v1/traces"):
        base = base[: -len("/v1/traces")]
    return base + path


def post_report(url: str, report: dict[str, object]) -> None:
    """POST ``report`` (JSON) to the test's receiver; a failure is logged in the worker's output, never raised
    into the job system (the test then says what it misses when its wait times out)."""
    request = urllib.request.Request(
        url, json.dumps(report).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()
    except Exception:
        log.warning("pytest-jobtrace: could not report job %s to %s", report.get("job_id"), url, exc_info=True)
