"""The built-in runtime's spans: names, attributes and events (messaging semconv 1.44), and their recognition.

This is the one place that knows how the built-in adapter's spans look; the matchers learn about them only
through `recognise_span`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_TYPE
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

from pytest_jobtrace.adapters import (
    JobSpanInfo,
    MessagingJobSpans,
    exception_text,
    qualified_type_name,
    record_exception,
)
from pytest_jobtrace.builtin._model import Propagation

SEMCONV_VERSION = "1.44.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
TRACER_NAME = "pytest_jobtrace.builtin"
SYSTEM = "jobtrace"

JOB_CLASS = "jobtrace.job.class"
JOB_ATTEMPT = "jobtrace.job.attempt"
RETRY_EVENT = "jobtrace.retry"
RETRY_ATTEMPT = "jobtrace.retry.attempt"
RETRY_DELAY = "jobtrace.retry.delay"
EXHAUSTED_EVENT = "jobtrace.retries_exhausted"
RETRY_ATTEMPTS = "jobtrace.retry.attempts"
DISCARD_EVENT = "jobtrace.discard"


@dataclass(frozen=True)
class MessageRef:
    """What every span of one job says about it."""

    job_class: str
    queue: str
    destination: str
    job_id: str


@functools.cache
def _package_version() -> str:
    try:
        return importlib.metadata.version("pytest-jobtrace")
    except importlib.metadata.PackageNotFoundError:
        return "0"


_tracers: weakref.WeakKeyDictionary[TracerProvider, Tracer] = weakref.WeakKeyDictionary()


def get_tracer(provider: TracerProvider | None) -> Tracer:
    """The adapter's tracer, looked up per operation so the global provider in force at that moment is used.

    Cached per provider: asking a provider for a tracer costs as much as a span, and a job makes two.
    """
    provider = provider or trace.get_tracer_provider()
    tracer = _tracers.get(provider)
    if tracer is None:
        tracer = provider.get_tracer(TRACER_NAME, _package_version(), schema_url=SCHEMA_URL)
        if not isinstance(provider, trace.ProxyTracerProvider):
            _tracers[provider] = tracer  # a proxy's tracer would stay a no-op once a real provider is set
    return tracer


def _attributes(ref: MessageRef, operation: str) -> dict[str, AttributeValue]:
    return {
        MESSAGING_SYSTEM: SYSTEM,
        MESSAGING_OPERATION_TYPE: operation,
        MESSAGING_OPERATION_NAME: operation,
        MESSAGING_DESTINATION_NAME: ref.queue,
        MESSAGING_MESSAGE_ID: ref.job_id,
        JOB_CLASS: ref.job_class,
    }


@contextmanager
def send_span(tracer: Tracer, ref: MessageRef) -> Iterator[dict[str, str]]:
    """Open the PRODUCER span of an enqueue; yields the carrier holding its trace context and baggage."""
    with tracer.start_as_current_span(
        f"send {ref.destination}", kind=SpanKind.PRODUCER, attributes=_attributes(ref, "send")
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield carrier


def consumer_context(carrier: dict[str, str], propagation: Propagation) -> tuple[Context, list[Link]]:
    """The context a process span starts in and its links; never the context current around the worker."""
    if propagation == "none":
        return Context(), []
    extracted = propagate.extract(carrier, context=Context())
    if propagation == "child":
        return extracted, []
    sent = trace.get_current_span(extracted).get_span_context()
    return _baggage_only(extracted), [Link(sent)] if sent.is_valid else []


def _baggage_only(extracted: Context) -> Context:
    # A linked process span starts a new trace, yet the request's baggage still reaches the job.
    ctx = Context()
    for key, value in baggage.get_all(extracted).items():
        ctx = baggage.set_baggage(key, value, ctx)
    return ctx


@contextmanager
def process_span(
    tracer: Tracer, ref: MessageRef, attempt: int, parent: Context, links: Sequence[Link]
) -> Iterator[Span]:
    """Make ``parent`` (with its baggage) current and open the CONSUMER span of one attempt inside it."""
    # Attaching first, rather than passing context=, makes the parent's baggage current during perform.
    token = context.attach(parent)
    try:
        with tracer.start_as_current_span(
            f"process {ref.destination}",
            kind=SpanKind.CONSUMER,
            attributes={**_attributes(ref, "process"), JOB_ATTEMPT: attempt},
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span
    finally:
        context.detach(token)


def record_failure(span: Span, exc: BaseException) -> None:
    """Mark an attempt that raised; the description is exactly ``str(exc)`` (where that works)."""
    record_exception(span, exc)
    span.set_status(StatusCode.ERROR, exception_text(exc))
    span.set_attribute(ERROR_TYPE, qualified_type_name(exc))


def add_retry_event(span: Span, attempt: int, delay: float, exc: BaseException) -> None:
    attributes: dict[str, AttributeValue] = {
        RETRY_ATTEMPT: attempt,
        RETRY_DELAY: float(delay),
        EXCEPTION_TYPE: qualified_type_name(exc),
    }
    span.add_event(RETRY_EVENT, attributes)


def add_exhausted_event(span: Span, attempts: int, exc: BaseException) -> None:
    span.add_event(EXHAUSTED_EVENT, {RETRY_ATTEMPTS: attempts, EXCEPTION_TYPE: qualified_type_name(exc)})


def add_discard_event(span: Span, exc: BaseException) -> None:
    span.add_event(DISCARD_EVENT, {EXCEPTION_TYPE: qualified_type_name(exc)})


def recognise_span(span: ReadableSpan) -> JobSpanInfo | None:
    """Describe ``span`` as part of a built-in job, or return None if the built-in runtime did not make it."""
    return _SPANS.recognise(span)


_SPANS = MessagingJobSpans(SYSTEM, JOB_CLASS, JOB_ATTEMPT, RETRY_EVENT, discard_event=DISCARD_EVENT)
