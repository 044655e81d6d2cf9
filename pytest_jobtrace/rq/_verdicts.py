"""RQ jobs that will never run and that no span says so of: canceled or deleted before a worker took them.

``Job.cancel()`` and ``Job.delete()`` take a queued (or scheduled, or deferred) job out of its queue; no
worker sees it again, so its trace is the send span alone, as RQ's own truth is: the job was published and
never run. ``job_spans.wait()`` would wait for it until its timeout. :func:`install` wraps both methods and
reports such a job discarded (``pytest_jobtrace._jobs.lost``'s verdict), so ``wait()`` stops waiting for it:

- in the test process, for the test's live RQ worker: straight into the process's verdicts;
- in the live worker (a job that cancels another): posted to the test's receiver.

A job that a worker had already started when it was canceled or deleted is not reported: it runs on, and
its spans arrive.

A job whose data is gone by the time RQ comes to it (its ``ttl=`` ran out while it waited, or its key was
deleted by other code) is dropped by RQ without a word: the worker takes its id off the queue, finds no
job and takes the next (``Job.fetch`` raising ``NoSuchJobError`` in ``Queue.dequeue_any``), and the
scheduler removes a due id without a job from its registry (``Job.fetch_many`` giving ``None`` in
``RQScheduler.enqueue_scheduled_jobs``). :func:`install_dropped` reports each such id discarded, from the
live worker, at the moment RQ drops it: RQ's own decision, not a guess from the ttl.

Test machinery of live mode only: the RQ instrumentation and the trace are untouched.
"""

from __future__ import annotations

import functools
import logging
import threading
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


DROPPED_BY_WORKER = (
    "its data was gone when RQ's worker took it off its queue (its ttl ran out while it waited, or its key "
    "was deleted): RQ dropped it"
)
DROPPED_BY_SCHEDULER = (
    "its data was gone when RQ's scheduler came to enqueue it (its ttl ran out while it waited, or its key "
    "was deleted): RQ dropped it"
)
_taking = threading.local()  # .where: "worker" inside Queue.dequeue_any, "scheduler" inside enqueue_scheduled_jobs


def install_dropped(report: Report) -> Callable[[], None]:
    """Report the job ids RQ's worker and scheduler drop because the job's data is gone; returns the undo.
    For the live worker's process (and its scheduler, forked from it)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.queue import Queue
    from rq.scheduler import RQScheduler

    saved = [
        (Queue, "dequeue_any", Queue.__dict__["dequeue_any"]),
        (RQScheduler, "enqueue_scheduled_jobs", RQScheduler.__dict__["enqueue_scheduled_jobs"]),
        (Job, "fetch", Job.__dict__["fetch"]),
        (Job, "fetch_many", Job.__dict__["fetch_many"]),
    ]
    fetch, fetch_many = Job.__dict__["fetch"].__func__, Job.__dict__["fetch_many"].__func__

    def taking(where: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            before = getattr(_taking, "where", None)
            _taking.where = where
            try:
                return method(*args, **kwargs)
            finally:
                _taking.where = before

        return wrapper

    @functools.wraps(fetch)
    def fetching(cls: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fetch(cls, *args, **kwargs)
        except NoSuchJobError:
            if getattr(_taking, "where", None) == "worker":
                job_id = args[0] if args else kwargs.get("id")
                _report(report, dropped(str(job_id), DROPPED_BY_WORKER))
            raise

    @functools.wraps(fetch_many)
    def fetching_many(cls: Any, job_ids: Any, *args: Any, **kwargs: Any) -> Any:
        job_ids = list(job_ids)  # an iterator would be spent by the fetch
        jobs = fetch_many(cls, job_ids, *args, **kwargs)
        if getattr(_taking, "where", None) == "scheduler":
            for job_id, job in zip(job_ids, jobs):
                if job is None:
                    _report(report, dropped(str(job_id), DROPPED_BY_SCHEDULER))
        return jobs

    dequeue_any = Queue.__dict__["dequeue_any"].__func__
    Queue.dequeue_any = classmethod(taking("worker", dequeue_any))  # type: ignore[method-assign,assignment]
    RQScheduler.enqueue_scheduled_jobs = taking("scheduler", RQScheduler.enqueue_scheduled_jobs)  # type: ignore[method-assign]
    Job.fetch = classmethod(fetching)  # type: ignore[method-assign,assignment]
    Job.fetch_many = classmethod(fetching_many)  # type: ignore[method-assign,assignment]

    def undo() -> None:
        for owner, name, original in saved:
            setattr(owner, name, original)

    return undo


def dropped(job_id: str, reason: str) -> dict[str, object]:
    """The verdict for a job id RQ dropped because its data was gone (the job's name went with it)."""
    return {"job_id": job_id, "job_name": job_id, "verdict": "discarded", "reason": reason}


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
