"""RQ jobs that will never run and that no span says so of: canceled or deleted before a worker took them.

``Job.cancel()`` and ``Job.delete()`` take a queued (or scheduled, or deferred) job out of its queue; no
worker sees it again, so its trace is the send span alone, as RQ's own truth is: the job was published and
never run. ``job_spans.wait()`` would wait for it until its timeout. :func:`install` wraps both methods and
reports such a job discarded (``pytest_jobtrace._jobs.lost``'s verdict), so ``wait()`` stops waiting for it:

- in the test process, for the test's live RQ worker: straight into the process's verdicts;
- in the live worker (a job that cancels another): posted to the test's receiver.

A job that a worker had already started when it was canceled or deleted is not reported: it runs on, and
its spans arrive. A job whose data expired in its queue (``ttl=``) is dropped by the worker without a word;
nothing reports it (docs/live.md).

Test machinery of live mode only: the RQ instrumentation and the trace are untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

UNRUN = frozenset({"queued", "scheduled", "deferred"})
"""RQ's statuses of a job that no worker has taken yet."""

Report = Callable[[dict[str, object]], object]


def install(report: Report) -> Callable[[], None]:
    """Report the jobs discarded unrun through ``Job.cancel`` and ``Job.delete`` with ``report``; returns the
    undo. One at a time per process (the live adapter installs it for a test and undoes it after)."""
    from rq.job import Job

    cancel, delete = Job.cancel, Job.delete

    def reporting(method: Callable[..., Any], reason: str) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            before = _unrun(self)
            result = method(self, *args, **kwargs)
            if before:
                _report(report, verdict(self, reason))
            return result

        wrapper.__wrapped__ = method  # type: ignore[attr-defined]
        return wrapper

    canceled = reporting(cancel, "canceled (Job.cancel) before a worker took it")
    # delete_dependents=True deletes each dependent with Job.delete too: each is reported from here
    deleted = reporting(delete, "deleted (Job.delete) before a worker took it")
    Job.cancel, Job.delete = canceled, deleted  # type: ignore[method-assign]

    def undo() -> None:
        if Job.cancel is canceled:
            Job.cancel = cancel  # type: ignore[method-assign]
        if Job.delete is deleted:
            Job.delete = delete  # type: ignore[method-assign]

    return undo


def verdict(job: Any, reason: str) -> dict[str, object]:
    """The verdict (``pytest_jobtrace._jobs.lost.parse_verdict``'s JSON) for ``job`` discarded unrun."""
    return {"job_id": job.id, "job_name": _name(job), "verdict": "discarded", "reason": reason}


def _unrun(job: Any) -> bool:
    """Whether no worker has taken ``job`` yet, as Redis has it now (the job object may be stale)."""
    try:
        status = job.get_status(refresh=True)
    except Exception:  # its hash is gone (deleted, expired): nothing to report
        return False
    return status is not None and str(getattr(status, "value", status)) in UNRUN


def _name(job: Any) -> str:
    try:
        name = job.func_name
    except Exception:  # data RQ cannot read: the id names it
        name = None
    return str(name or job.id)


def _report(report: Report, found: dict[str, object]) -> None:
    try:
        report(found)
    except Exception:  # never into the caller's cancel or delete
        log.warning("pytest-jobtrace: could not report job %s discarded", found["job_id"], exc_info=True)
