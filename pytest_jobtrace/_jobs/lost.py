"""Lost attempts: a worker process died while running a job, so that attempt's span never arrives.

The spans cannot tell it: the process span is ended, and exported, by the process that died. What the
job system's parent process knows about it reaches the job model here, as a :class:`WorkerLoss`. A live
worker reports one through the receiver (``POST /jobtrace/v1/worker-lost``); ``job_spans.wait()``
reads them by job id (ids are unique across tests and processes: UUIDs), and

- fails at once for a job whose lost attempt was not redelivered (waiting cannot bring it back), and
- does not wait for the parent of the spans the lost attempt exported before it died (they stay
  orphans: their parent died with the process).

An adapter whose instrumentation writes the lost attempt's span from the parent (RQ's work horse) says so
in ``JobSpanInfo.worker_lost``; the job then needs no report.

Two more things a worker decides that no span says reach the job model as a :class:`JobVerdict`
(``POST /jobtrace/v1/job-verdict``): a job discarded without an attempt that ends (Celery: revoked,
expired, or revoked with ``terminate=True`` while it ran), which ``wait()`` then stops waiting for, and an
attempt rejected with requeue (Celery: ``Reject(requeue=True)``, whose run span says ``REJECTED`` as a
final rejection's does), after which ``wait()`` waits for the redelivered attempt.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar


@dataclass(frozen=True)
class WorkerLoss:
    """A worker process that died while it ran an attempt of job ``job_id``, as its parent reports it."""

    job_id: str
    job_name: str
    attempt: int
    """The 1-based attempt that was running (Celery: the request's retries + 1)."""
    worker: str
    """Which process died, e.g. ``pid 4242``."""
    cause: str
    """What the parent saw, e.g. ``WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 0.``."""
    redelivered: bool
    """Whether the job system gave the job another attempt (Celery: ``acks_late`` with
    ``task_reject_on_worker_lost``, or ``task_retry_on_worker_lost``)."""
    why: str = ""
    """Why it was (not) redelivered, in the job system's words, e.g. ``the task has no acks_late``."""

    def describe(self) -> str:
        what = f"attempt {self.attempt} started on worker {self.worker}, which died ({self.cause})"
        fate = "redelivered" if self.redelivered else "not redelivered"
        return f"{what}; {fate}" + (f" ({self.why})" if self.why else "")


Verdict = Literal["discarded", "requeued"]


@dataclass(frozen=True)
class JobVerdict:
    """A worker's decision about job ``job_id`` that its spans do not show."""

    job_id: str
    job_name: str
    verdict: Verdict
    """``discarded``: the job will not run (again), and no run span ends it; ``requeued``: an attempt was
    rejected with requeue, so one more attempt comes (its run span arrives after this report)."""
    reason: str
    """In the job system's words: ``revoked``, ``expired``, ``revoked with terminate=True (SIGTERM)``,
    ``Reject(requeue=True): storage not ready``."""
    received_ns: int = field(default_factory=time.time_ns, compare=False, repr=False)
    """When this process took the report (ns since the epoch, as span times)."""

    def discards(self, published_ns: int | None) -> bool:
        """Whether this verdict ends the job published at ``published_ns``: a discard taken after that. A job
        published again under the same id afterwards (an explicit RQ ``job_id``, a Celery ``task_id``) is
        another job, which the discard is not about: it is waited for (worst case, a clock behind the
        worker's: a timeout naming it, never a wait that returns early)."""
        return self.verdict == "discarded" and (published_ns is None or published_ns <= self.received_ns)

    def describe(self) -> str:
        if self.verdict == "discarded":
            return f"discarded: {self.reason}"
        return f"rejected and requeued ({self.reason})"


Report = TypeVar("Report", WorkerLoss, JobVerdict)


class ReportBook(Generic[Report]):
    """Every report of one kind received in this process, by job id (thread-safe: the receiver's threads
    report)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_job: dict[str, list[Report]] = {}

    def report(self, report: Report) -> None:
        with self._lock:
            self._by_job.setdefault(report.job_id, []).append(report)

    def of(self, job_id: str | None) -> list[Report]:
        if job_id is None:
            return []
        with self._lock:
            return list(self._by_job.get(job_id, ()))

    def clear(self) -> None:
        with self._lock:
            self._by_job.clear()


LOSSES: ReportBook[WorkerLoss] = ReportBook()
"""The process's reported losses; the receiver fills it, ``job_spans.wait()`` reads it."""
VERDICTS: ReportBook[JobVerdict] = ReportBook()
"""The process's reported verdicts; the receiver fills it, ``job_spans.wait()`` reads it."""


def parse_loss(data: object) -> WorkerLoss:
    """A :class:`WorkerLoss` from a report's JSON object; ValueError naming what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"a worker-lost report is a JSON object, not {type(data).__name__}")
    fields = {"job_id": str, "job_name": str, "attempt": int, "worker": str, "cause": str, "redelivered": bool}
    values: dict[str, object] = {}
    for key, kind in fields.items():
        value = data.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"a worker-lost report needs {key!r} as {kind.__name__}, got {value!r}")
        values[key] = value
    why = data.get("why", "")
    if not isinstance(why, str):
        raise ValueError(f"a worker-lost report's 'why' is a string, got {why!r}")
    return WorkerLoss(why=why, **values)  # type: ignore[arg-type]


def parse_verdict(data: object) -> JobVerdict:
    """A :class:`JobVerdict` from a report's JSON object; ValueError naming what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"a job verdict is a JSON object, not {type(data).__name__}")
    values: dict[str, str] = {}
    for key in ("job_id", "job_name", "verdict", "reason"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"a job verdict needs {key!r} as a non-empty string, got {value!r}")
        values[key] = value
    if values["verdict"] not in ("discarded", "requeued"):
        raise ValueError(f"a job verdict is 'discarded' or 'requeued', not {values['verdict']!r}")
    return JobVerdict(**values)  # type: ignore[arg-type]


def report_verdict(data: object) -> JobVerdict:
    """Record a verdict made in this process (a job the test canceled), as the receiver records a worker's;
    ValueError naming what is wrong with ``data`` (:func:`parse_verdict`)."""
    verdict = parse_verdict(data)
    VERDICTS.report(verdict)
    return verdict
