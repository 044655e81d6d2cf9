"""The OTLP receiver: requests decoded (protobuf, JSON, gzip) into the spans the capture holds; bad ones refused."""

from __future__ import annotations

import gzip
import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import MakeSpan
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pytest_jobtrace._core.capture import CaptureSink, SpanRouter
from pytest_jobtrace._live import tracing as live_tracing
from pytest_jobtrace._live.decode import BadRequest, decode_request
from pytest_jobtrace._live.receiver import OTLPReceiver
from pytest_jobtrace._live.routing import LiveRouter
from pytest_jobtrace._report.otlp import otlp_json

PROTOBUF = "application/x-protobuf"


@pytest.fixture(name="worker_spans")
def _worker_spans(make_span: MakeSpan) -> list[ReadableSpan]:
    """A publish, a failed attempt with an exception event and a user span, and a linked consumer."""
    publish = make_span("apply_async/shop.charge", kind=SpanKind.PRODUCER, attributes={"celery.task_name": "x"})
    run = make_span(
        "run/shop.charge",
        publish,
        at=1,
        kind=SpanKind.CONSUMER,
        attributes={"celery.retries": 2, "tags": ("a", "b"), "ratio": 0.5, "ok": False},
        status=(StatusCode.ERROR, "card declined"),
        exception=ValueError("card declined"),
    )
    make_span("charge card", run, at=2, events=[("retrying", {"n": 1})])
    make_span("process", at=3, kind=SpanKind.CONSUMER, links=[publish])
    return [publish, run]  # the rest are read back from the exporter


def _all(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


def _same(original: ReadableSpan, decoded: ReadableSpan) -> None:
    assert original.context is not None
    assert decoded.context is not None
    assert (decoded.name, decoded.kind) == (original.name, original.kind)
    assert (decoded.context.trace_id, decoded.context.span_id) == (original.context.trace_id, original.context.span_id)
    assert (decoded.parent.span_id if decoded.parent else None) == (
        original.parent.span_id if original.parent else None
    )
    assert dict(decoded.attributes or {}) == dict(original.attributes or {})
    assert (decoded.status.status_code, decoded.status.description) == (
        original.status.status_code,
        original.status.description,
    )
    assert [(e.name, dict(e.attributes or {}), e.timestamp) for e in decoded.events] == [
        (e.name, dict(e.attributes or {}), e.timestamp) for e in original.events
    ]
    assert [(link.context.trace_id, link.context.span_id) for link in decoded.links] == [
        (link.context.trace_id, link.context.span_id) for link in original.links
    ]
    assert (decoded.start_time, decoded.end_time) == (original.start_time, original.end_time)
    assert dict(decoded.resource.attributes) == dict(original.resource.attributes)
    assert decoded.instrumentation_scope is not None
    assert original.instrumentation_scope is not None
    assert decoded.instrumentation_scope.name == original.instrumentation_scope.name


@pytest.mark.parametrize("form", ["protobuf", "json", "protobuf+gzip", "json+gzip"])
def test_every_field_the_capture_reads_survives_the_trip(
    form: str, worker_spans: list[ReadableSpan], exporter: InMemorySpanExporter
) -> None:
    spans = _all(exporter)
    if form.startswith("protobuf"):
        body, content_type = encode_spans(spans).SerializeToString(), PROTOBUF
    else:
        body, content_type = json.dumps(otlp_json(spans)).encode(), "application/json; charset=utf-8"
    encoding = ""
    if form.endswith("gzip"):
        body, encoding = gzip.compress(body), "gzip"
    decoded = decode_request(body, content_type, encoding)
    assert len(decoded) == len(spans) == 4
    for original, back in zip(spans, decoded):
        _same(original, back)
    run = decoded[1]
    assert run.events[0].name == "exception"
    assert run.events[0].attributes is not None
    assert run.events[0].attributes["exception.type"] == "ValueError"


def test_the_resource_and_scope_come_through() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "worker-1", "host.name": "h"}))
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("shop.worker", "1.2").start_as_current_span("job"):
        pass
    (decoded,) = decode_request(encode_spans(exporter.get_finished_spans()).SerializeToString(), PROTOBUF)
    assert decoded.resource.attributes["service.name"] == "worker-1"
    assert decoded.instrumentation_scope is not None
    assert (decoded.instrumentation_scope.name, decoded.instrumentation_scope.version) == ("shop.worker", "1.2")


def test_each_span_keeps_its_own_resource_and_scope_when_requests_repeat_them() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = InMemorySpanExporter()
    for worker in ("worker-1", "worker-2"):
        provider = TracerProvider(resource=Resource({"service.name": worker}, "https://schemas.example/" + worker))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        for scope in ("a", "b"):
            tracer = provider.get_tracer(scope, "1", schema_url=f"s-{scope}-{worker}")
            with tracer.start_as_current_span(f"{worker}/{scope}"):
                pass
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    for _ in range(2):  # the second time from what was decoded before
        seen = [
            (s.name, s.resource.attributes["service.name"], s.resource.schema_url, scope.name, scope.schema_url)
            for s in decode_request(body, PROTOBUF)
            if (scope := s.instrumentation_scope) is not None
        ]
        assert sorted(seen) == [
            ("worker-1/a", "worker-1", "https://schemas.example/worker-1", "a", "s-a-worker-1"),
            ("worker-1/b", "worker-1", "https://schemas.example/worker-1", "b", "s-b-worker-1"),
            ("worker-2/a", "worker-2", "https://schemas.example/worker-2", "a", "s-a-worker-2"),
            ("worker-2/b", "worker-2", "https://schemas.example/worker-2", "b", "s-b-worker-2"),
        ]


def test_the_live_workers_resource_hashed_once_is_equal_and_encodes_the_same() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    attributes = {"service.name": "celery-worker", "host.name": "h", "process.pid": 7}
    plain, once = Resource(attributes, "https://s"), live_tracing.HashedOnce(attributes, "https://s")
    assert once == plain
    assert hash(once) == hash(plain) == hash(once)
    assert once != live_tracing.HashedOnce({**attributes, "process.pid": 8}, "https://s")
    encoded = []
    for resource in (plain, once):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("w").start_as_current_span("job", start_time=1) as span:
            span.set_attribute("k", "v")
            span.end(end_time=2)
        message = encode_spans(exporter.get_finished_spans())
        for resource_spans in message.resource_spans:  # ids differ between the two runs: compare the rest
            for scope_spans in resource_spans.scope_spans:
                for encoded_span in scope_spans.spans:
                    encoded_span.trace_id = encoded_span.span_id = b""
        encoded.append(message.SerializeToString(deterministic=True))
    assert encoded[0] == encoded[1]


@pytest.fixture(name="cached_encoding")
def _cached_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stock encoder with :func:`live_tracing.cache_encoding` (as in a live worker), undone after."""
    from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder

    for name in ("_encode_attributes", "_encode_resource", "_encode_instrumentation_scope"):
        monkeypatch.setattr(trace_encoder, name, getattr(trace_encoder, name))  # restored at teardown


def _varied_spans() -> list[ReadableSpan]:
    """Spans of two resources and three scopes, with every kind of attribute value and look-alikes that a
    cache keyed on the value alone would confuse (True and 1, 0.0 and -0.0, "1" and 1)."""
    from opentelemetry.trace import Link

    spans: list[ReadableSpan] = []
    for service in ("celery-worker", "rq-worker"):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=live_tracing.HashedOnce({"service.name": service, "process.pid": 7}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        for scope in ("opentelemetry.instrumentation.celery", "shop"):
            tracer = provider.get_tracer(scope, "1.0", attributes={"scope.kind": scope[:4]})
            with tracer.start_as_current_span("run/shop.charge", kind=SpanKind.CONSUMER) as run:
                run.set_attributes({"flag": True, "one": 1, "text": "1", "zero": 0.0, "negative_zero": -0.0})
                run.set_attributes({"many": ("a", "b"), "ints": (1, 2), "huge": 2**70, "empty": ""})
                run.add_event("retry", {"attempt": 2, "reason": "boom"})
                with tracer.start_as_current_span("charge", links=[Link(run.get_span_context(), {"n": 1})]) as inner:
                    inner.set_attributes({"flag": 1, "one": True, "text": 1, "zero": -0.0, "negative_zero": 0.0})
                    inner.set_status(StatusCode.ERROR, "declined")
        spans.extend(exporter.get_finished_spans())
    return spans


def test_cached_encoding_sends_the_stock_encoder_s_bytes(
    cached_encoding: None, caplog: pytest.LogCaptureFixture
) -> None:
    spans = _varied_spans()
    stock = [encode_spans(spans[:n]).SerializeToString() for n in (1, 2, len(spans))]
    assert "Failed to encode key huge" in caplog.text  # the stock encoder leaves an int64 overflow out
    assert live_tracing.cache_encoding()
    assert live_tracing.cache_encoding()  # a second call wraps nothing twice
    for _ in range(3):  # cold, then from what was kept
        assert [encode_spans(spans[:n]).SerializeToString() for n in (1, 2, len(spans))] == stock


def test_cached_encoding_starts_afresh_when_full(cached_encoding: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_tracing, "ENCODED_PAIRS_KEPT", 3)
    spans = _varied_spans()
    stock = encode_spans(spans).SerializeToString()
    live_tracing.cache_encoding()
    assert encode_spans(spans).SerializeToString() == encode_spans(spans).SerializeToString() == stock


def test_cached_encoding_leaves_a_call_it_does_not_know_to_the_encoder(
    cached_encoding: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newer encoder may pass more arguments: the wrappers hand such calls over unchanged."""
    from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder

    def newer(value: object, *more: object, **options: object) -> object:
        return ("stock", value, more, options)

    for name in ("_encode_attributes", "_encode_resource", "_encode_instrumentation_scope"):
        monkeypatch.setattr(trace_encoder, name, newer)
    assert live_tracing.cache_encoding()
    encoder: Any = trace_encoder
    assert encoder._encode_attributes({"k": "v"}, allow_null=True) == ("stock", {"k": "v"}, (), {"allow_null": True})
    assert encoder._encode_resource("r", 2) == ("stock", "r", (2,), {})
    assert encoder._encode_instrumentation_scope("s", x=1) == ("stock", "s", (), {"x": 1})


def _json_request(**span: Any) -> bytes:
    fields = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "work", **span}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [fields]}]}]}).encode()


def test_json_ids_are_hex_as_the_otlp_spec_writes_them() -> None:
    body = _json_request(parentSpanId="eee19b7ec3c1b173", kind=5, flags=0x300)  # parent known to be remote
    (span,) = decode_request(body, "application/json")
    assert span.context is not None
    assert span.parent is not None
    assert f"{span.context.trace_id:032x}" == "5b8efff798038103d269b633813fc60c"
    assert f"{span.parent.span_id:016x}" == "eee19b7ec3c1b173"
    assert span.kind is SpanKind.CONSUMER
    assert span.parent.is_remote


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "message"),
    [
        (b"\xff\x00garbage", PROTOBUF, "", "the body is not a protobuf ExportTraceServiceRequest: "),
        (b"{not json", "application/json", "", "the body is not JSON: "),
        (b"[1]", "application/json", "", "the body is JSON but not an object (an ExportTraceServiceRequest): list"),
        (
            _json_request(traceId="W47/95gDgQPSabYzgT/GDA=="),
            "application/json",
            "",
            "resourceSpans[0].scopeSpans[0].spans[0].traceId is 'W47/95gDgQPSabYzgT/GDA==', not 32 hex digits"
            " (OTLP/JSON writes ids as hex, not base64)",
        ),
        (
            _json_request(startTimeUnixNano="soon"),
            "application/json",
            "",
            "the JSON is not an ExportTraceServiceRequest: ",
        ),
        (b"abc", PROTOBUF, "gzip", "the body is not valid gzip data: "),
        (b"abc", PROTOBUF, "br", "unsupported Content-Encoding 'br': send gzip, deflate or none"),
        (b"abc", "text/plain", "", "unsupported Content-Type 'text/plain': send application/x-protobuf or"),
    ],
    ids=["protobuf", "json", "json-list", "base64-id", "json-enum", "gzip", "encoding", "content-type"],
)
def test_a_body_it_cannot_read_is_refused_saying_why(
    body: bytes, content_type: str, encoding: str, message: str
) -> None:
    with pytest.raises(BadRequest) as error:
        decode_request(body, content_type, encoding)
    assert str(error.value).startswith(message)


@pytest.fixture(name="captures")
def _captures() -> SpanRouter:
    """A router of its own: the spans these tests make in-process are not the receiver's to route."""
    return SpanRouter()


@pytest.fixture(name="receiver")
def _receiver(captures: SpanRouter) -> Iterator[OTLPReceiver]:
    with OTLPReceiver(router=LiveRouter(captures)) as receiver:
        yield receiver


def _post(url: str, body: bytes, content_type: str = PROTOBUF, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, body, {"Content-Type": content_type, **headers}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_malformed_body_gets_a_400_with_the_reason_and_is_kept(receiver: OTLPReceiver) -> None:
    status, text = _post(receiver.traces_endpoint, b"{oops", "application/json")
    assert (status, text) == (
        400,
        "the body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    )
    assert [(r.status, r.reason[:20]) for r in receiver.rejections] == [(400, "the body is not JSON")]


def test_an_unknown_path_gets_a_404_naming_the_right_one(receiver: OTLPReceiver) -> None:
    status, text = _post(receiver.endpoint + "/v1/metrics", b"")
    assert (status, text) == (404, "no such path '/v1/metrics': this OTLP receiver takes traces at /v1/traces")


def _raw(receiver: OTLPReceiver, *requests: bytes) -> list[bytes]:
    """Send ``requests`` one after the other on one connection; the status line and body of each answer,
    and ``b"<closed>"`` for each request the receiver read no more after closing the connection."""
    host, port = receiver.endpoint.removeprefix("http://").split(":")
    answers = []
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        reader = connection.makefile("rb")
        for request in requests:
            try:
                connection.sendall(request)
            except OSError:
                answers.append(b"<closed>")
                continue
            status = reader.readline().rstrip()
            if not status:
                answers.append(b"<closed>")
                continue
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answers.append(status + b" " + reader.read(length))
    return answers


def _request(body: bytes, *headers: str, line: str = "POST /v1/traces HTTP/1.1") -> bytes:
    head = [line, "Host: 127.0.0.1", *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def test_headers_are_read_case_blind_folded_and_the_connection_kept_until_it_says_close(
    receiver: OTLPReceiver, worker_spans: list[ReadableSpan]
) -> None:
    body = encode_spans(worker_spans).SerializePartialToString()
    first = _request(body, "content-TYPE:   application/x-protobuf  ")
    folded = _request(body, "Content-Type: application/x-protobuf;", "\tcharset=binary", "Connection: close")
    assert _raw(receiver, first, folded, first) == [b"HTTP/1.1 200 OK ", b"HTTP/1.1 200 OK ", b"<closed>"]
    assert receiver.requests == 2
    assert receiver.rejections == []


def test_an_http_1_0_request_is_answered_and_its_connection_closed(
    receiver: OTLPReceiver, worker_spans: list[ReadableSpan]
) -> None:
    body = encode_spans(worker_spans).SerializePartialToString()
    request = _request(body, f"Content-Type: {PROTOBUF}", line="POST /v1/traces HTTP/1.0")
    assert _raw(receiver, request, request) == [b"HTTP/1.1 200 OK ", b"<closed>"]


def test_expect_100_continue_gets_its_interim_answer(receiver: OTLPReceiver) -> None:
    host, port = receiver.endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(_request(b"{}", "Content-Type: application/json", "Expect: 100-continue"))
        reader = connection.makefile("rb")
        interim = [reader.readline(), reader.readline()]
        final = reader.readline()
        while reader.readline() not in (b"\r\n", b""):  # the final answer's headers
            pass
        body = reader.read(2)
    assert interim == [b"HTTP/1.1 100 Continue\r\n", b"\r\n"]
    assert (final, body) == (b"HTTP/1.1 200 OK\r\n", b"{}")
    assert receiver.requests == 1


@pytest.mark.parametrize(
    ("request_bytes", "answer"),
    [
        (b"POST /v1/traces\r\n\r\n", b"HTTP/1.1 400 Bad request syntax ('POST /v1/traces')"),
        (b"POST /v1/traces HTTP/2.0\r\n\r\n", b"HTTP/1.1 505 Invalid HTTP version ('HTTP/2.0')"),
        (b"POST /v1/traces HTTX/1.1\r\n\r\n", b"HTTP/1.1 400 Bad request version ('HTTX/1.1')"),
        (b"POST /v1/traces HTTP/1.1\r\nno colon here\r\n\r\n", b"HTTP/1.1 400 Bad header line ('no colon here')"),
        (b"POST /v1/traces HTTP/1.1\r\n: empty name\r\n\r\n", b"HTTP/1.1 400 Bad header line (': empty name')"),
        (b"POST /v1/traces HTTP/1.1\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", b"HTTP/1.1 431 Line too long"),
        (b"POST /v1/traces HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", b"HTTP/1.1 431 More than 100 headers"),
    ],
    ids=["no-version", "http-2", "not-http", "no-colon", "no-name", "long-line", "many-headers"],
)
def test_a_request_it_cannot_parse_gets_an_error_naming_the_problem(
    receiver: OTLPReceiver, request_bytes: bytes, answer: bytes
) -> None:
    (got,) = _raw(receiver, request_bytes)
    assert got.startswith(answer)
    assert receiver.requests == 0


def test_received_spans_join_the_capture_that_owns_their_trace(
    receiver: OTLPReceiver, captures: SpanRouter, worker_spans: list[ReadableSpan], exporter: InMemorySpanExporter
) -> None:
    publish = worker_spans[0]
    sink = CaptureSink("test_a")
    sink.add(publish)  # the test's own span: its trace is the test's
    captures.open(sink)
    try:
        status, text = _post(receiver.traces_endpoint, encode_spans(_all(exporter)[1:]).SerializeToString())
        assert (status, text) == (200, "")
        json_status, json_text = _post(receiver.traces_endpoint, _json_request(), "application/json")
        assert (json_status, json_text) == (200, "{}")  # a trace of nobody's: held, not given to test_a
    finally:
        captures.close(sink)
    names = [span.name for span in sink.spans]
    assert names == ["apply_async/shop.charge", "run/shop.charge", "charge card", "process"]  # process: linked
    assert [span.name for span in receiver.router.held()] == ["work"]
    assert len(sink.received) == 3
    receiver.stop()
    assert [(leak.name, leak.started_in, leak.received) for leak in captures.take_leaks()] == [("work", "", True)]


def _stock_exporter(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


def _transport_name(exporter: SpanExporter) -> str:
    return type(getattr(getattr(exporter, "_client", None), "_transport", None)).__name__


@pytest.mark.parametrize("make_exporter", [_stock_exporter, live_tracing.exporter], ids=["stock", "live-worker"])
def test_refused_requests_are_retried_by_the_exporter_and_nothing_is_lost(
    receiver: OTLPReceiver, captures: SpanRouter, make_exporter: Callable[[str], SpanExporter]
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

    sink = CaptureSink("test_refused")
    worker = TracerProvider()
    results: list[SpanExportResult] = []
    exporter = make_exporter(receiver.traces_endpoint)
    original = exporter.export
    exporter.export = lambda spans: results.append(original(spans)) or results[-1]  # type: ignore[method-assign]
    worker.add_span_processor(SimpleSpanProcessor(exporter))
    captures.open(sink)
    try:
        with worker.get_tracer("worker").start_as_current_span("root") as root:
            sink.add(root)  # stands for the test's span the worker continues: its trace is the test's
            receiver.refuse(2, status=503)
            with worker.get_tracer("worker").start_as_current_span("first"):
                pass
            receiver.refuse(1, status=429, retry_after=0.1)
            with worker.get_tracer("worker").start_as_current_span("second"):
                pass
    finally:
        captures.close(sink)
        worker.shutdown()
    assert results[:2] == [SpanExportResult.SUCCESS, SpanExportResult.SUCCESS]
    assert [span.name for span in sink.spans] == ["root", "first", "second"]
    assert sink.duplicates == 1  # root: the test's own, sent back too
    assert receiver.rejections == []  # refusals are the test's fault, not errors


def test_the_live_workers_exporter_keeps_its_connection_and_opens_another_when_it_closes(
    captures: SpanRouter,
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    if live_tracing.keep_alive_transport("http://127.0.0.1:1/v1/traces") is None:
        pytest.skip("this opentelemetry-exporter-otlp-proto-http takes no transport: the stock one is used")
    sink = CaptureSink("test_keep_alive")
    worker = TracerProvider()
    first = OTLPReceiver(router=LiveRouter(captures)).start()
    second: OTLPReceiver | None = None
    exporter = live_tracing.exporter(first.traces_endpoint)
    assert _transport_name(exporter) == "KeepAliveTransport"
    worker.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = worker.get_tracer("worker")
    captures.open(sink)
    try:
        with tracer.start_as_current_span("root") as root:
            sink.add(root)
            with tracer.start_as_current_span("first"):
                pass
            connection = exporter._client._transport._connection  # type: ignore[attr-defined]
            with tracer.start_as_current_span("second"):
                pass
            assert exporter._client._transport._connection is connection  # type: ignore[attr-defined]
            port = int(first.endpoint.rsplit(":", 1)[1])
            first.stop()  # the connection it kept is closed by the other end
            second = OTLPReceiver(port=port, router=LiveRouter(captures)).start()
            with tracer.start_as_current_span("third"):
                pass
    finally:
        captures.close(sink)
        worker.shutdown()
        first.stop()
        if second is not None:
            second.stop()
    assert [span.name for span in sink.spans] == ["root", "first", "second", "third"]
    assert second is not None
    assert (first.requests, second.requests) == (2, 2)  # the second one had "third" and "root" (a duplicate)
    assert sink.duplicates == 1
    assert first.rejections == second.rejections == []


def test_the_live_workers_exporter_is_the_stock_one_where_no_transport_can_be_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _transport_name(live_tracing.exporter("https://collector.example:4318/v1/traces")) != "KeepAliveTransport"
    monkeypatch.setattr(live_tracing, "keep_alive_transport", lambda endpoint: None)  # an exporter before 1.45
    assert _transport_name(live_tracing.exporter("http://127.0.0.1:4318/v1/traces")) != "KeepAliveTransport"


def test_the_live_workers_request_head_is_plain_http_and_a_header_it_cannot_send_is_named() -> None:
    headers = {"Content-Type": PROTOBUF, "host": "x"}
    head = live_tracing.request_head("POST", "/v1/traces", "127.0.0.1:4318", headers, 12)
    assert head == (
        b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:4318\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: 12\r\n\r\n"
    )
    for bad, named in [
        ({"X-Tenant": "a\r\nX-Evil: 1"}, r"the header 'X-Tenant': 'a\r\nX-Evil: 1' cannot be sent"),
        ({"X:Y": "1"}, r"the header 'X:Y': '1' cannot be sent"),
        ({"X-Name": "Zoë 🙂"}, r"a header has a character HTTP cannot carry: '🙂'"),
    ]:
        with pytest.raises(ValueError, match=f"^{re.escape(named)}"):
            live_tracing.request_head("POST", "/", "h:1", bad, 0)


def test_a_header_the_exporter_cannot_send_fails_the_export_without_a_request(
    receiver: OTLPReceiver, worker_spans: list[ReadableSpan]
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    transport = live_tracing.keep_alive_transport(receiver.traces_endpoint)
    if transport is None:
        pytest.skip("this opentelemetry-exporter-otlp-proto-http takes no transport: the stock one is used")
    exporter = OTLPSpanExporter(  # type: ignore[call-overload,unused-ignore]
        endpoint=receiver.traces_endpoint, headers={"X-Tenant": "a\nb"}, _transport=transport
    )
    try:
        assert exporter.export(worker_spans) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    assert receiver.requests == 0
    assert receiver.rejections == []


def test_refuse_takes_only_statuses_exporters_retry(receiver: OTLPReceiver) -> None:
    with pytest.raises(ValueError, match=r"refuse\(status=500\): exporters retry only 429, 502, 503 and 504"):
        receiver.refuse(status=500)


def test_the_endpoint_of_a_receiver_not_started_says_so() -> None:
    with pytest.raises(RuntimeError, match=r"the OTLP receiver is not started: call start\(\) first"):
        _ = OTLPReceiver().endpoint


def test_a_routing_error_is_a_500_saying_so_not_a_silent_drop(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(spans: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(receiver.router, "deliver", broken)
    status, text = _post(receiver.traces_endpoint, _json_request(), "application/json")
    assert (status, text) == (500, "pytest-jobtrace could not route the spans: KeyError: 'boom'")
    assert [rejection.status for rejection in receiver.rejections] == [500]


def test_reports_and_render_read_received_spans_as_the_originals(
    worker_spans: list[ReadableSpan], exporter: InMemorySpanExporter
) -> None:
    from pytest_jobtrace import render

    spans = _all(exporter)
    decoded = decode_request(encode_spans(spans).SerializeToString(), PROTOBUF)
    assert otlp_json(decoded) == otlp_json(spans)  # what --jobtrace-export writes: every field
    assert render(decoded, details=True) == render(spans, details=True)
    assert render(decoded, "jobs") == render(spans, "jobs")
