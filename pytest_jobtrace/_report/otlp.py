"""``--jobtrace-export``: a test's spans as OTLP JSON, one file per test.

Encoded by OpenTelemetry's own OTLP encoder (opentelemetry-exporter-otlp-proto-common) into an
``ExportTraceServiceRequest``, then written with protobuf's JSON mapping, adjusted where the OTLP/JSON
spec departs from that mapping so that Jaeger and otel-desktop-viewer read the file: trace and span ids
are hex (not base64) and enums are integers. The JSON is ASCII, so control characters are ``\\u`` escapes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The OTLP/JSON form of an ``ExportTraceServiceRequest`` holding ``spans``."""
    # Imported here: the encoder is an optional dependency (the "report" extra), checked at configure time.
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    message: dict[str, Any] = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in message.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                _hex_ids(span)
                for link in span.get("links", []):
                    _hex_ids(link)
    return message


def _hex_ids(record: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        if key in record:
            record[key] = base64.b64decode(record[key]).hex()


def file_name(nodeid: str) -> str:
    """A file name for a test: readable, safe on every file system, and unique (a hash of the node id)."""
    readable = _UNSAFE_FILE_CHARS.sub("_", nodeid).strip("._")[:120] or "test"
    digest = hashlib.sha1(nodeid.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{readable}-{digest}.json"


def export_test(directory: Path, nodeid: str, spans: Sequence[ReadableSpan]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(nodeid)
    path.write_text(json.dumps(otlp_json(spans), ensure_ascii=True, indent=1) + "\n", encoding="ascii")
    return path
