"""What ``rq_jobs`` reports: one record per execution, and the jobs still waiting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class RQRun:
    """One execution of a job by ``rq_jobs`` (what ``drain()`` and ``perform_one()`` return).

    ``status`` is RQ's status of the job right after the execution: ``finished``, ``failed``, ``stopped``,
    or ``queued`` / ``scheduled`` when RQ retries it.
    """

    job: Any = field(repr=False)
    job_id: str
    name: str
    description: str
    queue: str
    attempt: int
    status: str
    exception: BaseException | None = None
    at: float = 0.0
    """The virtual time at which it ran."""

    @property
    def attempts(self) -> int:
        """Executions of this job so far, this one included (what failure messages count)."""
        return self.attempt

    @property
    def failed_for_good(self) -> bool:
        return self.status in ("failed", "stopped")

    @property
    def retried(self) -> bool:
        return self.status in ("queued", "scheduled")

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True)
class PendingRQJob:
    """A job waiting in a queue or on the schedule (``rq_jobs.pending``)."""

    name: str
    job_id: str
    queue: str
    description: str
    due: float | None = None
    """The virtual time a scheduled job becomes due; None for a queued job."""

    def describe(self) -> str:
        return f"{self.description} on queue {self.queue!r}"
