"""Which spans opentelemetry-instrumentation-celery made, read from their attributes (Celery is not imported).

The instrumentation names a publish ``apply_async/<task>`` (PRODUCER) and an execution ``run/<task>``
(CONSUMER), and sets ``celery.action``, ``celery.task_name``, ``messaging.message.id`` (the task id,
which retries reuse: attempts group by it), ``celery.retries`` (omitted when 0), ``celery.state`` and
``celery.retry.reason``. Run spans are written at postrun, so an attempt still running has no state.
"""

from __future__ import annotations

import datetime
import re

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace.adapters import AttemptOutcome, JobSpanInfo

SYSTEM = "celery"

# Celery states with no outcome of their own map to "discarded": the task will not run again and did
# not fail (IGNORED: the task raised Ignore; REJECTED: Reject; REVOKED: revoked or expired).
OUTCOMES: dict[str, AttemptOutcome] = {
    "SUCCESS": "succeeded",
    "RETRY": "retried",
    "FAILURE": "failed",
    "IGNORED": "discarded",
    "REJECTED": "discarded",
    "REVOKED": "discarded",
}
_ROLES = {"apply_async": "send", "run": "process"}


def recognise(span: ReadableSpan) -> JobSpanInfo | None:
    """Describe a Celery publish or run span, or return None for any other span."""
    attributes = span.attributes or {}
    action, task_name = attributes.get("celery.action"), attributes.get("celery.task_name")
    if action not in _ROLES or not isinstance(task_name, str) or not span.name.startswith(f"{action}/"):
        return None
    job_id = _text(attributes.get("messaging.message.id"))
    queue = _text(attributes.get("messaging.destination"))
    if action == "apply_async":
        return JobSpanInfo(SYSTEM, "send", task_name, job_id, queue)
    retries = attributes.get("celery.retries")
    state = attributes.get("celery.state")
    return JobSpanInfo(
        SYSTEM,
        "process",
        task_name,
        job_id,
        queue,
        attempt=retries + 1 if isinstance(retries, int) else 1,
        attempt_outcome=OUTCOMES.get(state) if isinstance(state, str) else None,
        retry_reason=_text(attributes.get("celery.retry.reason")),
        retry_due=_retry_due(_text(attributes.get("celery.retry.reason")), span.end_time),
    )


_RETRY_IN = re.compile(r"Retry in (\d+(?:\.\d+)?)s")


def _retry_due(reason: str | None, ended: int | None) -> int | None:
    """When the retry is due, from Celery's ``Retry.humanize()`` in the reason: ``Retry in 5s: ...``
    (from the end of the attempt), or ``Retry at 2026-12-04 18:20:00+00:00: ...`` (naive: UTC, Celery's
    default timezone). None when the reason is the task's own message."""
    if reason is None:
        return None
    found = _RETRY_IN.match(reason)
    if found is not None:
        return None if ended is None else ended + int(float(found.group(1)) * 1e9)
    if reason.startswith("Retry at "):
        try:
            moment = datetime.datetime.fromisoformat(reason[len("Retry at ") :].split(": ")[0])
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return int(moment.timestamp() * 1e9)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
