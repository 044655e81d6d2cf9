"""What an adapter tells the matchers about one span of a job: the common vocabulary of all job systems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["send", "process"]
AttemptOutcome = Literal["succeeded", "retried", "failed", "discarded"]


@dataclass(frozen=True)
class JobSpanInfo:
    """A span recognised as part of a background job by the adapter that owns its job system.

    ``send`` spans enqueue a job; ``process`` spans are one attempt at performing it, so only they carry
    ``attempt``, ``attempt_outcome`` and, for a retried attempt, ``retry_reason``.
    """

    system: str
    """The ``messaging.system`` value, e.g. ``"jobtrace"``."""
    role: Role
    job_name: str
    """The job's full name, e.g. ``"tests.shop.ProcessOrderJob"``."""
    job_id: str | None
    queue: str | None
    attempt: int | None = None
    """1-based attempt number (process spans)."""
    attempt_outcome: AttemptOutcome | None = None
    """How this attempt ended (process spans)."""
    retry_reason: str | None = None
    """Exception type and message that caused the retry, e.g. ``"shop.PaymentError: card declined"``."""
    retry_due: int | None = None
    """For a retried attempt, when the next one is due (ns since the epoch), if the spans tell;
    ``job_spans.wait()`` names it when it times out waiting for the retry."""
    worker_lost: str | None = None
    """For an attempt whose worker process died while running it, what the job system's parent process
    recorded (``work horse pid 4242 terminated: signal 9 (SIGKILL)``): the span was written by the parent,
    so spans the dead process exported under its own span have no parent in the trace."""
