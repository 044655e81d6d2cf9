"""Recognising job spans that follow OpenTelemetry's messaging semantic conventions.

The built-in adapter and the RQ instrumentation both write ``send``/``process`` spans with
``messaging.system``, ``messaging.operation.type``, the message id and the destination, plus a job-name
attribute, an attempt attribute and retry/discard events of their own; this reads them back. Light on
purpose: the production RQ instrumentation imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

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

_EXCEPTION_EVENT = "exception"

MESSAGING_VOLATILE_ATTRIBUTES = (
    "messaging.message.id",
    "messaging.message.conversation_id",
    "messaging.conversation_id",
)
"""The messaging conventions' generated ids: an adapter whose spans carry them lists them in its
``volatile_attributes``, so that ``render(details=True)`` writes them as ``*``."""


@dataclass(frozen=True)
class MessagingJobSpans:
    """How one job system names what the conventions leave to it."""

    system: str
    """The ``messaging.system`` value."""
    job_name: str
    """The attribute holding the job's full name."""
    attempt: str
    """The attribute holding the 1-based attempt number of a process span."""
    retry_event: str
    """The event a retried attempt carries (its ``exception.type`` is the reason)."""
    discard_event: str | None = None
    """The event a discarded attempt carries, if the system discards."""
    retry_without_exception: str = "exception"
    """The reason given when the retry event names no exception type."""
    retry_delay: str | None = None
    """The retry event's attribute giving, in seconds of real time, how long after the event the next
    attempt is due (``job_spans.wait()`` names the due time); None when the delay is not real time."""

    def recognise(self, span: ReadableSpan) -> JobSpanInfo | None:
        """Describe ``span`` as a send or process span of this system's jobs, or return None."""
        attributes = span.attributes or {}
        name, operation = attributes.get(self.job_name), attributes.get(MESSAGING_OPERATION_TYPE)
        if attributes.get(MESSAGING_SYSTEM) != self.system or not isinstance(name, str):
            return None
        job_id = _optional_str(attributes.get(MESSAGING_MESSAGE_ID))
        queue = _optional_str(attributes.get(MESSAGING_DESTINATION_NAME))
        if operation == "send":
            return JobSpanInfo(self.system, "send", name, job_id, queue)
        if operation != "process":
            return None
        attempt = attributes.get(self.attempt)
        return JobSpanInfo(
            self.system,
            "process",
            name,
            job_id,
            queue,
            attempt=attempt if isinstance(attempt, int) else None,
            attempt_outcome=self._outcome(span),
            retry_reason=self._retry_reason(span),
            retry_due=self._retry_due(span),
        )

    def _outcome(self, span: ReadableSpan) -> AttemptOutcome:
        names = {event.name for event in span.events}
        if self.retry_event in names:
            return "retried"
        if self.discard_event is not None and self.discard_event in names:
            return "discarded"
        return "failed" if span.status.status_code is StatusCode.ERROR else "succeeded"

    def _retry_reason(self, span: ReadableSpan) -> str | None:
        retry = _event_attributes(span, self.retry_event)
        if retry is None:
            return None
        reason = retry.get(EXCEPTION_TYPE)
        if reason is None:
            return self.retry_without_exception
        message = (_event_attributes(span, _EXCEPTION_EVENT) or {}).get(EXCEPTION_MESSAGE)
        if message is None and span.status.status_code is StatusCode.ERROR:
            message = span.status.description  # no exception in this process: a worker that died, say
        return f"{reason}: {message}" if message else str(reason)

    def _retry_due(self, span: ReadableSpan) -> int | None:
        if self.retry_delay is None:
            return None
        for event in span.events:
            if event.name == self.retry_event:
                delay = (event.attributes or {}).get(self.retry_delay)
                if isinstance(delay, (int, float)) and not isinstance(delay, bool):
                    return event.timestamp + int(delay * 1e9)
        return None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _event_attributes(span: ReadableSpan, name: str) -> dict[str, object] | None:
    for event in span.events:
        if event.name == name:
            return dict(event.attributes or {})
    return None
