"""One attempt of a built-in job: the message a broker would hold, and what a worker decides when perform raises."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry.trace import Span

from pytest_jobtrace.builtin._model import JobHandle, JobRun, Outcome, PendingJob, display_name
from pytest_jobtrace.builtin._tracing import add_discard_event, add_exhausted_event, add_retry_event, record_failure

if TYPE_CHECKING:
    from pytest_jobtrace.builtin._job import Job


@dataclass
class Envelope:
    """A job in the queue, as a broker holds it: a JSON payload and the carrier of its send span's context."""

    job_class: type[Job]
    job_id: str
    payload: str
    enqueued_by: str | None
    carrier: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    due: float = 0.0
    seq: int = 0

    def arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # Decoded afresh for each attempt, as a worker would, so an attempt cannot see the last one's mutations.
        args, kwargs = json.loads(self.payload)
        return tuple(args), kwargs

    def handle(self) -> JobHandle:
        return JobHandle(self.job_id, self.job_class, self.job_class.queue, *self.arguments())

    def pending(self) -> PendingJob:
        handle = self.handle()
        return PendingJob(**vars(handle), due=self.due, attempt=self.attempt, enqueued_by=self.enqueued_by)

    def run(self, outcome: Outcome, exception: BaseException | None) -> JobRun:
        fields = vars(self.handle())
        return JobRun(
            **fields, attempts=self.attempt, outcome=outcome, exception=exception, enqueued_by=self.enqueued_by
        )


class WaitError(ValueError):
    """A job class's ``wait`` function raised or gave no usable delay."""


@dataclass(frozen=True)
class Verdict:
    """How one attempt ended; a ``"retry"`` comes back ``delay`` seconds later."""

    kind: Literal["succeeded", "retry", "failed", "discarded"]
    exception: BaseException | None = None
    delay: float = 0.0


def instantiate(job_class: type[Job], job_id: str, executions: int) -> Job:
    """A fresh job object per attempt, as a worker deserialising the message would make."""
    job = job_class()
    job.job_id, job.executions = job_id, executions
    return job


def retry_delay(job_class: type[Job], attempt: int) -> float:
    """Seconds before the retry of failed ``attempt``: ``"exponential"`` is 1, 2, 4... with no jitter."""
    wait = job_class.wait
    if callable(wait):
        return _called_wait(job_class, wait, attempt)
    if isinstance(wait, str):  # validated at class definition: "exponential"
        return float(2 ** (attempt - 1))
    return float(wait)


def _called_wait(job_class: type[Job], wait: Callable[[int], float], attempt: int) -> float:
    """The job's own wait function, whose errors name the job: they surface from a drain of many jobs."""
    call = f"{display_name(job_class)}.wait({attempt})"
    try:
        result = wait(attempt)
        delay = float(result)
    except Exception as exc:
        raise WaitError(f"{call} raised {type(exc).__name__}: {exc}; it must return seconds >= 0") from exc
    if not math.isfinite(delay) or delay < 0:  # NaN would compare false with every due time in the queue
        raise WaitError(f"{call} returned {result!r}; a delay must be a finite number of seconds >= 0")
    return delay


def judge_failure(span: Span, envelope: Envelope, exc: Exception) -> Verdict:
    """Record a raising attempt on its span and decide, as ActiveJob does, what happens to the job."""
    record_failure(span, exc)
    job_class = envelope.job_class
    if isinstance(exc, job_class.discard_on):  # discard_on wins over retry_on: it is the narrower intent
        add_discard_event(span, exc)
        return Verdict("discarded", exc)
    if not isinstance(exc, job_class.retry_on):
        return Verdict("failed", exc)
    if envelope.attempt < job_class.attempts:
        delay = retry_delay(job_class, envelope.attempt)
        add_retry_event(span, envelope.attempt, delay, exc)
        return Verdict("retry", exc, delay)
    if job_class.attempts > 1:
        add_exhausted_event(span, envelope.attempt, exc)
    return Verdict("failed", exc)
