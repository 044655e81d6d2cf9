"""The RQ spans' names and attributes, and their recognition (imports nothing from RQ).

This is the one place that knows how the RQ instrumentation's spans look; ``recognise`` is what
``job()`` and ``jobs()`` learn about them through the adapter.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
)
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_MESSAGE, EXCEPTION_TYPE
from opentelemetry.trace import StatusCode

from pytest_jobtrace._jobs.info import AttemptOutcome, JobSpanInfo

SYSTEM = "rq"
META_KEY = "otel"
"""The ``job.meta`` key holding the propagated context (a dict of ``traceparent``, ``baggage``...)."""
META_ATTEMPT = "otel_attempt"
"""The ``job.meta`` key counting attempts across retries (RQ itself counts only retries left)."""

FUNC_NAME = "rq.job.func_name"
ATTEMPT = "rq.job.attempt"
STATUS = "rq.job.status"
"""The job's RQ status when the span ended: ``finished``, ``failed``, ``stopped``, ``scheduled``..."""
ENQUEUE_REASON = "rq.enqueue.reason"
"""Why a send span was made: ``enqueue``, ``schedule``, ``retry`` or ``dependency``."""
SCHEDULED_FOR = "rq.job.scheduled_for"
DEPENDS_ON = "rq.job.depends_on"
RETRIES_LEFT = "rq.job.retries_left"
RETRY_EVENT = "rq.job.retry"
RETRY_ATTEMPT = "rq.retry.attempt"
RETRY_DELAY = "rq.retry.delay"
EXHAUSTED_EVENT = "rq.job.retries_exhausted"
RETRY_ATTEMPTS = "rq.retry.attempts"
_EXCEPTION_EVENT = "exception"


def recognise_span(span: ReadableSpan) -> JobSpanInfo | None:
    """Describe ``span`` as a send or process span of an RQ job, or return None."""
    attributes = span.attributes or {}
    name, operation = attributes.get(FUNC_NAME), attributes.get(MESSAGING_OPERATION_TYPE)
    if attributes.get(MESSAGING_SYSTEM) != SYSTEM or not isinstance(name, str):
        return None
    job_id = _optional_str(attributes.get(MESSAGING_MESSAGE_ID))
    queue = _optional_str(attributes.get(MESSAGING_DESTINATION_NAME))
    if operation == "send":
        return JobSpanInfo(SYSTEM, "send", name, job_id, queue)
    if operation != "process":
        return None
    attempt = attributes.get(ATTEMPT)
    return JobSpanInfo(
        SYSTEM,
        "process",
        name,
        job_id,
        queue,
        attempt=attempt if isinstance(attempt, int) else None,
        attempt_outcome=_outcome(span),
        retry_reason=_retry_reason(span),
    )


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _outcome(span: ReadableSpan) -> AttemptOutcome:
    if any(event.name == RETRY_EVENT for event in span.events):
        return "retried"
    return "failed" if span.status.status_code is StatusCode.ERROR else "succeeded"


def _retry_reason(span: ReadableSpan) -> str | None:
    retry = _event_attributes(span, RETRY_EVENT)
    if retry is None:
        return None
    reason = retry.get(EXCEPTION_TYPE)
    if reason is None:
        return "returned Retry"
    message = (_event_attributes(span, _EXCEPTION_EVENT) or {}).get(EXCEPTION_MESSAGE)
    return f"{reason}: {message}" if message else str(reason)


def _event_attributes(span: ReadableSpan, name: str) -> dict[str, object] | None:
    for event in span.events:
        if event.name == name:
            return dict(event.attributes or {})
    return None
