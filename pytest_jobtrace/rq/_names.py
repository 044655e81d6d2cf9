"""The RQ spans' names and attributes, and their recognition (imports nothing from RQ).

This is the one place that knows how the RQ instrumentation's spans look; ``recognise`` is what
``job()`` and ``jobs()`` learn about them through the adapter.
"""

from __future__ import annotations

import dataclasses

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace.adapters import MESSAGING_VOLATILE_ATTRIBUTES, JobSpanInfo, MessagingJobSpans

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
HORSE_PID = "rq.work_horse.pid"
"""On the span a forking worker's parent writes for an attempt whose work horse died: the horse's pid."""
HORSE_TERMINATION = "rq.work_horse.termination"
"""How that horse ended: ``signal 9 (SIGKILL)``, ``exit status 1``."""


VOLATILE_ATTRIBUTES = (*MESSAGING_VOLATILE_ATTRIBUTES, "rq.job.id", "rq.job.depends_on", "rq.job.scheduled_for")
"""What ``render(details=True)`` writes as ``*`` on RQ's spans: the generated job ids, and the wall-clock time
a scheduled job is due."""

# RQ schedules a retry ``rq.retry.delay`` seconds of real time after failing the attempt (when the event
# is added); the built-in adapter's delays are on the test's virtual clock, so only RQ's give a due time.
_SPANS = MessagingJobSpans(
    SYSTEM, FUNC_NAME, ATTEMPT, RETRY_EVENT, retry_without_exception="returned Retry", retry_delay=RETRY_DELAY
)


def recognise_span(span: ReadableSpan) -> JobSpanInfo | None:
    """Describe ``span`` as a send or process span of an RQ job, or return None."""
    info = _SPANS.recognise(span)
    ended = (span.attributes or {}).get(HORSE_TERMINATION)
    if info is None or not isinstance(ended, str):
        return info
    pid = (span.attributes or {}).get(HORSE_PID)
    return dataclasses.replace(info, worker_lost=f"work horse pid {pid} terminated: {ended}")
