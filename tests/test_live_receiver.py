"""The OTLP receiver: requests decoded (protobuf, JSON, gzip) into the spans the capture holds; bad ones refused."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import MakeSpan
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
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
