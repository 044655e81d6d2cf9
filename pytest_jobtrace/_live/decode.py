"""OTLP/HTTP trace requests (protobuf or JSON, maybe gzipped) decoded into the SDK's ``ReadableSpan``.

Decoded by OpenTelemetry's own proto package (``opentelemetry-proto``): protobuf with
``ExportTraceServiceRequest.FromString``, JSON with protobuf's JSON mapping after turning the ids back
from hex (the OTLP/JSON spec writes trace and span ids as hex, where protobuf's mapping expects base64).
The spans then are what the capture already holds, so trees, job matchers, render and reports read them
unchanged.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

_ID_LENGTHS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
_KINDS = {0: SpanKind.INTERNAL, 1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT}
_KINDS.update({4: SpanKind.PRODUCER, 5: SpanKind.CONSUMER})
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags in trace.proto


class BadRequest(ValueError):
    """A request body the receiver cannot read; the message says what is wrong (sent back with a 400)."""


def decode_request(body: bytes, content_type: str, encoding: str = "") -> list[ReadableSpan]:
    """The spans of one OTLP/HTTP trace request; raises :class:`BadRequest` naming what is wrong."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    data = _decompressed(body, encoding.strip().lower())
    media = content_type.split(";")[0].strip().lower()
    if media == "application/x-protobuf":
        try:
            request = ExportTraceServiceRequest.FromString(data)
        except Exception as error:  # protobuf's DecodeError, or worse on truncated input
            raise BadRequest(f"the body is not a protobuf ExportTraceServiceRequest: {error}") from None
    elif media == "application/json":
        request = _from_json(data)
    else:
        raise BadRequest(f"unsupported Content-Type {content_type!r}: send application/x-protobuf or application/json")
    return list(_spans(request))


def _decompressed(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as error:
        raise BadRequest(f"the body is not valid {encoding} data: {error}") from None
    raise BadRequest(f"unsupported Content-Encoding {encoding!r}: send gzip, deflate or none")


def _from_json(data: bytes) -> Any:
    from google.protobuf.json_format import ParseDict, ParseError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        message = json.loads(data)
    except ValueError as error:
        raise BadRequest(f"the body is not JSON: {error}") from None
    if not isinstance(message, dict):
        raise BadRequest(f"the body is JSON but not an object (an ExportTraceServiceRequest): {type(message).__name__}")
    for where, span in _json_spans(message):
        _ids_to_base64(span, where)
        for n, link in enumerate(span.get("links") or []):
            _ids_to_base64(link, f"{where}.links[{n}]")
    try:
        return ParseDict(message, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except ParseError as error:
        raise BadRequest(f"the JSON is not an ExportTraceServiceRequest: {error}") from None


def _json_spans(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for r, resource_spans in enumerate(_list(message, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_list(resource_spans, "scopeSpans", "scope_spans")):
            for n, span in enumerate(_list(scope_spans, "spans", "spans")):
                if isinstance(span, dict):
                    yield f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]", span


def _list(parent: object, key: str, other: str) -> list[Any]:
    found = parent.get(key, parent.get(other)) if isinstance(parent, dict) else None
    return found if isinstance(found, list) else []


def _ids_to_base64(holder: dict[str, Any], where: str) -> None:
    """OTLP/JSON ids are hex ("5b8efff798038103d269b633813fc60c"); protobuf's JSON mapping wants base64."""
    for key, length in _ID_LENGTHS.items():
        for spelled in (key, _snake(key)):
            value = holder.get(spelled)
            if value in (None, ""):
                continue
            try:
                raw = bytes.fromhex(value) if isinstance(value, str) else None
            except ValueError:
                raw = None
            if raw is None or len(raw) != length:
                raise BadRequest(
                    f"{where}.{key} is {value!r}, not {length * 2} hex digits (OTLP/JSON writes ids as hex, not base64)"
                )
            holder[spelled] = base64.b64encode(raw).decode("ascii")


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def _spans(request: Any) -> Iterator[ReadableSpan]:
    for resource_spans in request.resource_spans:
        resource = _resource(resource_spans.resource.SerializeToString(), resource_spans.schema_url)
        for scope_spans in resource_spans.scope_spans:
            scope = _scope(scope_spans.scope.SerializeToString(), scope_spans.schema_url)
            for span in scope_spans.spans:
                yield _span(span, resource, scope)


# A worker sends the same resource and scopes with every request: each is decoded once (a Resource checks
# its attributes as it is made, a third of decoding a job's spans). Both are immutable, so sharing is safe.
@functools.lru_cache(maxsize=256)
def _resource(encoded: bytes, schema_url: str) -> Resource:
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceMessage

    return Resource(_attributes(ResourceMessage.FromString(encoded).attributes), schema_url or None)


@functools.lru_cache(maxsize=256)
def _scope(encoded: bytes, schema_url: str) -> InstrumentationScope:
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope as ScopeMessage

    scope = ScopeMessage.FromString(encoded)
    return InstrumentationScope(scope.name, scope.version, schema_url, _attributes(scope.attributes))


def _span(span: Any, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    trace_id = _id(span.trace_id, 16, "trace_id")
    state = _trace_state(span.trace_state)
    context = SpanContext(trace_id, _id(span.span_id, 8, "span_id"), False, TraceFlags(TraceFlags.SAMPLED), state)
    parent = None
    if span.parent_span_id:
        parent_id = _id(span.parent_span_id, 8, "parent_span_id")
        parent = SpanContext(trace_id, parent_id, _is_remote(span.flags), TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=_attributes(span.attributes),
        events=[Event(e.name, _attributes(e.attributes), e.time_unix_nano) for e in span.events],
        links=[_link(link) for link in span.links],
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        status=_status(span.status),
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=scope,
    )


def _id(raw: bytes, length: int, field: str) -> int:
    if len(raw) != length:
        raise BadRequest(f"a span's {field} has {len(raw)} bytes, not {length}")
    return int.from_bytes(raw, "big")


def _is_remote(flags: int) -> bool:
    """Whether the parent (or link target) was in another process, per the span's ``flags`` (bit 8: known,
    bit 9: remote); False when the sender does not say, as for a parent in the same process."""
    return bool(flags & _HAS_IS_REMOTE and flags & _IS_REMOTE)


def _trace_state(header: str) -> TraceState | None:
    return TraceState.from_header([header]) if header else None


def _link(link: Any) -> Link:
    trace_id = _id(link.trace_id, 16, "link trace_id")
    span_id = _id(link.span_id, 8, "link span_id")
    context = SpanContext(trace_id, span_id, _is_remote(link.flags), TraceFlags(TraceFlags.SAMPLED))
    return Link(context, _attributes(link.attributes))


def _status(status: Any) -> Status:
    code = StatusCode(status.code) if status.code in (0, 1, 2) else StatusCode.UNSET
    # The SDK keeps a description only on ERROR (it warns otherwise).
    return Status(code, status.message or None) if code is StatusCode.ERROR else Status(code)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return {pair.key: _value(pair.value) for pair in value.kvlist_value.values}
    if which is None:
        return None
    return getattr(value, which)
