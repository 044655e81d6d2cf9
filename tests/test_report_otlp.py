"""--jobtrace-export: each test's spans as OTLP JSON (an ExportTraceServiceRequest), one file per test."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeSpan
from google.protobuf.json_format import ParseDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind, StatusCode
from report_project import make_shop

from pytest_jobtrace._report.otlp import file_name, otlp_json


def _spans(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        span for resource in document["resourceSpans"] for scope in resource["scopeSpans"] for span in scope["spans"]
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
