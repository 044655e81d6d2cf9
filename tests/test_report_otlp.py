"""--jobtrace-export: each test's spans as OTLP JSON (an ExportTraceServiceRequest), one file per test."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeSpan
from google.protobuf.json_format import ParseDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, Tracer
from opentelemetry.trace import Link, SpanKind, StatusCode
from report_project import make_shop

from pytest_jobtrace._report.otlp import export_test, file_name, otlp_json


def _spans(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        span
        for resource in document.get("resourceSpans", [])
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]


def _as_protobuf_json(document: dict[str, Any]) -> dict[str, Any]:
    """Back to protobuf's own JSON mapping (base64 ids), to parse the file with protobuf."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    for span in _spans(copy):
        for record in (span, *span.get("links", [])):
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in record:
                    record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
    return copy


def test_the_file_is_the_encoders_request_with_hex_ids(make_span: MakeSpan) -> None:
    root = make_span("POST /checkout", kind=SpanKind.SERVER, attributes={"note": "\x1b[31m"})
    child = make_span("charge", root, status=(StatusCode.ERROR, "declined"), links=[root])
    spans = [child, root]
    document = otlp_json(spans)  # type: ignore[arg-type]
    parsed = ParseDict(_as_protobuf_json(document), ExportTraceServiceRequest())
    assert parsed == encode_spans(spans)  # type: ignore[arg-type]
    charge, checkout = _spans(document)
    assert checkout["traceId"] == f"{root.get_span_context().trace_id:032x}"
    assert checkout["spanId"] == f"{root.get_span_context().span_id:016x}"
    assert charge["parentSpanId"] == checkout["spanId"]
    assert charge["links"][0]["spanId"] == checkout["spanId"]
    assert (checkout["kind"], charge["status"]) == (2, {"code": 2, "message": "declined"})  # enums as numbers
    assert checkout["attributes"] == [{"key": "note", "value": {"stringValue": "\x1b[31m"}}]


@pytest.mark.parametrize("xdist", [[], ["-n", "2", "-p", "xdist"]], ids=["plain", "xdist"])
def test_one_file_per_test_with_a_capture(pytester: pytest.Pytester, xdist: list[str]) -> None:
    make_shop(pytester)
    result = pytester.runpytest_subprocess("--jobtrace-export=otlp", *xdist)
    result.assert_outcomes(passed=3, failed=1, skipped=1, xfailed=1, errors=1)
    files = sorted(path.name for path in (pytester.path / "otlp").iterdir())
    expected = ["test_checkout_fails", "test_checkout_passes", "test_hostile_names", "test_setup_error", "test_xfailed"]
    assert files == sorted(file_name(f"test_shop.py::{name}") for name in expected)
    document = json.loads(_file(pytester.path, "test_checkout_passes").read_text())
    names = sorted(span["name"] for span in _spans(document))
    assert names == sorted(["POST /checkout", "send payments", "audit"] + ["process payments", "charge_card"] * 3)
    assert _spans(document)[0]["traceId"] != ""
    assert len(_spans(document)[0]["traceId"]) == 32
    for path in (pytester.path / "otlp").iterdir():
        _check_pdata_rules(json.loads(path.read_text()))


_HEX = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
_VALUE_KEYS = {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"}


def _check_pdata_rules(document: dict[str, Any]) -> None:
    """What the Collector's JSON decoder (pdata, which Jaeger and otel-desktop-viewer use) requires of a
    request: ids as lowercase hex of exactly their length (pdata/internal/data/bytesid.go), enums as
    numbers, 64-bit integers as decimal strings, one value field per attribute."""
    assert set(document) <= {"resourceSpans"}
    for span in _spans(document):
        for record in (span, *span.get("links", [])):
            for key, length in _HEX.items():
                if key in record:
                    assert re.fullmatch(f"[0-9a-f]{{{length}}}", record[key]), (key, record[key])
        assert span["kind"] in range(6)
        assert span.get("status", {}).get("code", 0) in range(3)
        assert span["startTimeUnixNano"].isdigit()
        assert span["endTimeUnixNano"].isdigit()
        for owner in (span, *span.get("events", []), *span.get("links", [])):
            for attribute in owner.get("attributes", []):
                (kind,) = attribute["value"]
                assert kind in _VALUE_KEYS
                if kind == "intValue":
                    assert re.fullmatch(r"-?\d+", attribute["value"][kind])


def test_control_characters_are_escaped_in_the_file(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    pytester.runpytest("--jobtrace-export=otlp", "-k", "hostile").assert_outcomes(passed=1)
    raw = _file(pytester.path, "test_hostile_names").read_bytes()
    assert raw.isascii()
    assert b"\x1b" not in raw
    assert b"\n\x1b" not in raw
    (span,) = _spans(json.loads(raw))
    assert span["name"] == "evil \x1b[2J\x1b[31mname\nsecond line"  # the data itself is kept exactly


def _file(root: Path, test: str) -> Path:
    return root / "otlp" / file_name(f"test_shop.py::{test}")


def test_file_names_are_safe_and_distinct() -> None:
    a, b = file_name("tests/test_x.py::test_y[a/b]"), file_name("tests/test_x.py::test_y[a_b]")
    assert a != b
    assert a.startswith("tests_test_x.py_test_y_a_b-")
    assert a.endswith(".json")
    assert all(c.isalnum() or c in "._-" for c in a)
    assert len(file_name("t::" + "x" * 500)) < 140


def test_export_without_the_encoder_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.protobuf", None)  # as if protobuf were not installed
    make_shop(pytester)
    result = pytester.runpytest("--jobtrace-export=otlp")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--jobtrace-export needs OpenTelemetry's OTLP encoder*pytest-jobtrace[[]report[]]*"])


# --- An OpenTelemetry Collector reads the file (opt-in) ------------------------------------------------------------
#
# Jaeger v2 and otel-desktop-viewer read OTLP/JSON with the Collector's own decoder (pdata), the one behind the
# Collector's OTLP/HTTP receiver. This test hands a file to a real Collector and compares what its file exporter
# writes with the spans the file was made from. It runs when JOBTRACE_OTELCOL names a Collector binary that has
# the otlp receiver and the file exporter (the otelcol-contrib distribution has both).

OTELCOL = os.environ.get("JOBTRACE_OTELCOL", "")
COLLECTOR_TIMEOUT = 30.0  # seconds, for each wait: the collector listening, then its exporter writing

COLLECTOR_CONFIG = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: {endpoint}
exporters:
  file:
    path: {path}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"""

# Text a reader could mangle: non-ASCII, ANSI escapes, line breaks, NUL, DEL, C1 and bidi controls.
HOSTILE_TEXT = "Zahlung ✓ 支付 🧾 \x1b[31mred\x1b[0m\nline\ttab\r\x00nul\x7f\x85\u202e"


def _spans_of_every_shape(make_span: MakeSpan, tracer: Tracer) -> list[ReadableSpan]:
    other_trace = make_span("nightly sweep", kind=SpanKind.CONSUMER)
    root = make_span(
        "POST /checkout",
        kind=SpanKind.SERVER,
        at=1,
        attributes={
            "text": HOSTILE_TEXT,
            "empty": "",
            "yes": True,
            "no": False,
            "count": 42,
            "negative": -7,
            "int64.max": 2**63 - 1,
            "int64.min": -(2**63),
            "ratio": 0.1,
            "tiny": 5e-324,
            "big": 1.7976931348623157e308,
            "strings": ("a", HOSTILE_TEXT, ""),
            "bools": (True, False),
            "ints": (1, -2, 2**62),
            "floats": (0.5, -1.25),
            "nothing": (),
        },
        status=StatusCode.OK,
    )
    producer = make_span("send payments", root, at=2, kind=SpanKind.PRODUCER, events=["enqueued"])
    consumer = make_span(
        HOSTILE_TEXT,
        producer,
        at=3,
        kind=SpanKind.CONSUMER,
        status=(StatusCode.ERROR, "declined: " + HOSTILE_TEXT),
        events=[("retry", {"attempt": 2, "reason": HOSTILE_TEXT, "delays": (0.5, 1.0)})],
        exception=ValueError("card expired\n\x1b[2J"),
        links=[other_trace],
    )
    client = make_span("charge_card", consumer, at=4, kind=SpanKind.CLIENT)
    linked = tracer.start_span(
        "audit",
        links=[Link(root.get_span_context(), {"link.reason": "follows", "link.n": 3, "link.ok": True})],
        start_time=other_trace.start_time,  # type: ignore[attr-defined]
    )
    linked.end(end_time=other_trace.end_time)  # type: ignore[attr-defined]
    return [other_trace, client, consumer, producer, root, linked]  # type: ignore[list-item]


def _py_value(value: Any) -> tuple[str, Any]:
    """An SDK attribute value in the shape ``_json_value`` gives an OTLP/JSON AnyValue."""
    if isinstance(value, bool):
        return ("boolValue", value)
    if isinstance(value, int):
        return ("intValue", value)
    if isinstance(value, float):
        return ("doubleValue", value)
    if isinstance(value, str):
        return ("stringValue", value)
    return ("arrayValue", [_py_value(item) for item in value])


def _json_value(value: dict[str, Any]) -> tuple[str, Any]:
    assert len(value) == 1, value  # exactly one of the AnyValue fields
    ((kind, raw),) = value.items()
    if kind == "intValue":
        return (kind, int(raw))  # int64: a decimal string in OTLP/JSON, a number is allowed too
    if kind == "doubleValue":
        return (kind, float(raw))
    if kind == "arrayValue":
        return (kind, [_json_value(item) for item in raw.get("values", [])])
    return (kind, raw)


def _py_attributes(attributes: Any) -> dict[str, tuple[str, Any]]:
    return {key: _py_value(value) for key, value in (attributes or {}).items()}


def _json_attributes(attributes: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    keys = [attribute["key"] for attribute in attributes]
    assert len(keys) == len(set(keys)), keys
    return {attribute["key"]: _json_value(attribute["value"]) for attribute in attributes}


def _expected_from_spans(spans: Sequence[ReadableSpan]) -> dict[str, dict[str, Any]]:
    """What a reader must get back, taken from the SDK's spans themselves (not from the file)."""
    expected = {}
    for span in spans:
        context, parent, status = span.get_span_context(), span.parent, span.status
        assert context is not None
        expected[f"{context.span_id:016x}"] = {
            "resource": _py_attributes(span.resource.attributes),
            "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version or "")
            if span.instrumentation_scope
            else ("", ""),
            "traceId": f"{context.trace_id:032x}",
            "parentSpanId": f"{parent.span_id:016x}" if parent is not None else "",
            "name": span.name,
            "kind": span.kind.value + 1,  # OTLP counts from SPAN_KIND_UNSPECIFIED = 0
            "start": span.start_time,
            "end": span.end_time,
            "attributes": _py_attributes(span.attributes),
            "status": (status.status_code.value, status.description or ""),
            "events": [(event.name, event.timestamp, _py_attributes(event.attributes)) for event in span.events],
            "links": [
                (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}", _py_attributes(link.attributes))
                for link in span.links
            ],
        }
    return expected


def _fields_from_json(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every span of an OTLP/JSON document by span id, in the shape of ``_expected_from_spans`` plus the fields
    that only the wire format has (flags, trace state, dropped counts)."""
    found: dict[str, dict[str, Any]] = {}
    for resource_spans in document.get("resourceSpans", []):
        resource = _json_attributes(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", []):
            scope = scope_spans.get("scope", {})
            for span in scope_spans.get("spans", []):
                assert span["spanId"] not in found, span["spanId"]
                status = span.get("status", {})
                found[span["spanId"]] = {
                    "resource": resource,
                    "scope": (scope.get("name", ""), scope.get("version", "")),
                    "traceId": span["traceId"],
                    "parentSpanId": span.get("parentSpanId", ""),
                    "name": span.get("name", ""),
                    "kind": span.get("kind", 0),
                    "start": int(span["startTimeUnixNano"]),
                    "end": int(span["endTimeUnixNano"]),
                    "attributes": _json_attributes(span.get("attributes", [])),
                    "status": (status.get("code", 0), status.get("message", "")),
                    "events": [
                        (
                            event.get("name", ""),
                            int(event["timeUnixNano"]),
                            _json_attributes(event.get("attributes", [])),
                        )
                        for event in span.get("events", [])
                    ],
                    "links": [
                        (link["traceId"], link["spanId"], _json_attributes(link.get("attributes", [])))
                        for link in span.get("links", [])
                    ],
                    "wire": {
                        "flags": span.get("flags", 0),
                        "traceState": span.get("traceState", ""),
                        "dropped": [span.get(f"dropped{what}Count", 0) for what in ("Attributes", "Events", "Links")],
                        "links": [(link.get("flags", 0), link.get("traceState", "")) for link in span.get("links", [])],
                    },
                }
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _running_collector(directory: Path, received: Path) -> Iterator[int]:
    """Start the collector on a free port, yield the port once it listens; always stop it."""
    port = _free_port()
    config = directory / "otelcol.yaml"
    # JSON strings are YAML strings: any path or endpoint is quoted right.
    config.write_text(
        COLLECTOR_CONFIG.format(endpoint=json.dumps(f"127.0.0.1:{port}"), path=json.dumps(str(received))),
        encoding="utf-8",
    )
    log = directory / "otelcol.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [OTELCOL, f"--config={config}"], stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + COLLECTOR_TIMEOUT
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the collector exited with {process.returncode}:\n{_tail(log)}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(
                            f"the collector did not listen on port {port} in {COLLECTOR_TIMEOUT}s:\n{_tail(log)}"
                        )
                    time.sleep(0.1)
            yield port
        finally:
            process.kill()
            process.wait(timeout=10)


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-4000:]


def _post(port: int, body: bytes, log: Path) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/traces", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=COLLECTOR_TIMEOUT) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, answer = error.code, error.read()
    if status != 200:
        pytest.fail(f"the collector refused the file: HTTP {status} {answer!r}\n{_tail(log)}")
    parsed: dict[str, Any] = json.loads(answer or b"{}")
    return parsed


def _exported(received: Path, spans: int, log: Path) -> dict[str, Any]:
    """The file exporter's output (one JSON document a line) once it holds ``spans`` spans."""
    deadline = time.monotonic() + COLLECTOR_TIMEOUT
    while True:
        text = received.read_text(encoding="utf-8") if received.exists() else ""
        lines = [line for line in text.split("\n")[:-1] if line.strip()]  # a line counts once it is whole
        document = {"resourceSpans": [rs for line in lines for rs in json.loads(line).get("resourceSpans", [])]}
        if len(_spans(document)) >= spans:
            return document
        if time.monotonic() > deadline:
            pytest.fail(
                f"the collector wrote {len(_spans(document))} of {spans} spans in {COLLECTOR_TIMEOUT}s:\n{_tail(log)}"
            )
        time.sleep(0.1)


@pytest.mark.skipif(
    not OTELCOL,
    reason="opt-in: set JOBTRACE_OTELCOL to an OpenTelemetry Collector binary with the otlp receiver and file exporter"
    " (e.g. otelcol-contrib)",
)
def test_an_opentelemetry_collector_reads_the_files(tmp_path: Path, make_span: MakeSpan, tracer: Tracer) -> None:
    spans = _spans_of_every_shape(make_span, tracer)
    file = export_test(tmp_path / "otlp", "tests/test_shop.py::test_checkout", spans)
    sent = _fields_from_json(json.loads(file.read_text(encoding="ascii")))
    expected = _expected_from_spans(spans)
    # The test covers what it says it covers: every kind, status code and attribute type, events, links.
    assert {fields["kind"] for fields in expected.values()} == {1, 2, 3, 4, 5}
    assert {fields["status"][0] for fields in expected.values()} == {0, 1, 2}
    types = {kind for fields in expected.values() for kind, _ in fields["attributes"].values()}
    assert types == {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue"}

    received = tmp_path / "received.json"
    with _running_collector(tmp_path, received) as port:
        # A test whose spans were all dropped (sampled out) gets an empty request: it must be accepted too.
        for body in (json.dumps(otlp_json([])).encode(), file.read_bytes()):
            answer = _post(port, body, tmp_path / "otelcol.log")
            assert int(answer.get("partialSuccess", {}).get("rejectedSpans", 0)) == 0, answer
        got = _fields_from_json(_exported(received, len(spans), tmp_path / "otelcol.log"))

    assert sorted(got) == sorted(expected)  # the same span ids, each once
    for span_id, fields in expected.items():
        for field, value in fields.items():
            assert got[span_id][field] == value, f"span {fields['name']!r}: {field}"
        # what the wire format adds (flags, trace state, dropped counts) comes back as the file had it
        assert got[span_id]["wire"] == sent[span_id]["wire"], f"span {fields['name']!r}"
