"""Which spans opentelemetry-instrumentation-celery made, read from their attributes (Celery is not imported).

The instrumentation names a publish ``apply_async/<task>`` (PRODUCER) and an execution ``run/<task>``
(CONSUMER), and sets ``celery.action``, ``celery.task_name``, ``messaging.message.id`` (the task id,
which retries reuse: attempts group by it), ``celery.retries`` (omitted when 0), ``celery.state`` and
``celery.retry.reason``. Run spans are written at postrun, so an attempt still running has no state.
"""

from __future__ import annotations

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
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
