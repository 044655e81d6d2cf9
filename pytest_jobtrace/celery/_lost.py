"""A live Celery worker's main process reports a task lost with its pool process to the test's receiver.

When a prefork pool process dies mid-task (killed, out of memory), its run span dies with it: the trace
alone cannot say the attempt is over. Celery's main process notices (``Request.on_failure`` with a
``WorkerLostError``) and decides: fail the task (the message was acknowledged when the worker took it: no
``acks_late``), requeue it (``acks_late`` with ``task_reject_on_worker_lost``) or retry it
(``task_retry_on_worker_lost``). :func:`install` wraps ``on_failure`` in the worker's main process to post
that decision to ``/jobtrace/v1/worker-lost`` on the test's receiver, where ``job_spans.wait()`` reads it
(``pytest_jobtrace._jobs.lost``).

Two more decisions leave no span that says so, and are posted to ``/jobtrace/v1/job-verdict``:

- a task discarded unrun (revoked, expired) or killed by ``revoke(terminate=True)``: the main process sends
  ``task_revoked``, and :func:`install` reports the job discarded, so that ``wait()`` stops waiting for it;
- ``Reject(requeue=True)``: the run span says ``REJECTED``, as for a final rejection. The process that ran
  the task reports the requeue (:func:`report_requeue`, on ``task_postrun`` before the instrumentation ends
  the run span, so the report is in before the span can leave), and ``wait()`` waits for the redelivery.

Test machinery of live mode only: production tracing is untouched, and the trace stays what
opentelemetry-instrumentation-celery makes.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Any

from pytest_jobtrace.adapters import live_tracing

log = logging.getLogger(__name__)


def install(traces_endpoint: str) -> Callable[[], None]:
    """Report lost and discarded tasks from this process (a Celery worker's main process); returns the undo."""
    from celery import signals
    from celery.worker.request import Request

    url = live_tracing.report_url(traces_endpoint, live_tracing.LOST_PATH)
    verdict_url = live_tracing.report_url(traces_endpoint, live_tracing.VERDICT_PATH)
    original = Request.on_failure

    def on_revoked(request: Any = None, terminated: bool = False, signum: Any = None, expired: bool = False,
                   **_: Any) -> None:  # fmt: skip
        try:
            report = revoked_verdict(request, terminated=terminated, signum=signum, expired=expired)
        except Exception:
            log.warning("pytest-jobtrace: could not read a revoked request", exc_info=True)
            return
        live_tracing.post_report(verdict_url, report)

    def on_failure(self: Any, exc_info: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            report = lost_report(self, exc_info)
        except Exception:
            log.warning("pytest-jobtrace: could not read a failed request", exc_info=True)
            report = None
        if report is not None:
            live_tracing.post_report(url, report)
        return original(self, exc_info, *args, **kwargs)

    Request.on_failure = on_failure
    signals.task_revoked.connect(on_revoked, weak=False)

    def undo() -> None:
        Request.on_failure = original
        signals.task_revoked.disconnect(on_revoked)

    return undo


def revoked_verdict(request: Any, *, terminated: bool, signum: Any, expired: bool) -> dict[str, object]:
    """The verdict for a task the worker discarded (``task_revoked``: revoked, expired or terminated)."""
    if expired:
        reason = "expired"
    elif terminated:
        reason = f"revoked with terminate=True ({_signal_name(signum)})"
    else:
        reason = "revoked"
    return {"job_id": request.id, "job_name": request.task, "verdict": "discarded", "reason": reason}


def _signal_name(signum: Any) -> str:
    try:
        return signal.Signals(int(signum)).name
    except (TypeError, ValueError):
        return str(signum)


def requeue_verdict(task_id: str, task: Any, retval: Any, state: str) -> dict[str, object] | None:
    """The verdict for an attempt that raised ``Reject(requeue=True)`` (from ``task_postrun``), else None."""
    from celery.exceptions import Reject

    if state != "REJECTED" or not isinstance(retval, Reject) or not retval.requeue:
        return None
    reason = "Reject(requeue=True)" + (f": {retval.reason}" if retval.reason else "")
    return {"job_id": task_id, "job_name": task.name, "verdict": "requeued", "reason": reason}


def report_requeue(traces_endpoint: str) -> Callable[..., None]:
    """A ``task_postrun`` receiver posting :func:`requeue_verdict` (connect it before the instrumentation's)."""
    url = live_tracing.report_url(traces_endpoint, live_tracing.VERDICT_PATH)

    def on_postrun(task_id: str = "", task: Any = None, retval: Any = None, state: str = "", **_: Any) -> None:
        try:
            report = requeue_verdict(task_id, task, retval, state)
        except Exception:
            log.warning("pytest-jobtrace: could not read a rejected task", exc_info=True)
            return
        if report is not None:
            live_tracing.post_report(url, report)

    return on_postrun


def lost_report(request: Any, exc_info: Any) -> dict[str, object] | None:
    """The report for a request whose pool process died, or None for any other failure.

    Mirrors Celery 5's decision in ``Request.on_failure`` (a success stored before the loss is no loss)."""
    from billiard.einfo import ExceptionWithTraceback
    from billiard.exceptions import WorkerLostError

    exc = exc_info.exception
    if isinstance(exc, ExceptionWithTraceback):
        exc = exc.exc
    died = isinstance(exc, WorkerLostError) or (
        isinstance(exc, (SystemExit, KeyboardInterrupt))
        and not (request._already_cancelled or request._already_revoked)
    )
    if not died or request._success_was_stored():
        return None
    task = request.task
    retries = int(request.request_dict.get("retries") or 0)
    redelivered, why = _fate(task, retries)
    pid = request.worker_pid
    return {
        "job_id": request.id,
        "job_name": request.name,
        "attempt": retries + 1,
        "worker": f"pid {pid}" if pid else "pool process (pid unknown)",
        "cause": f"{type(exc).__name__}: {exc}",
        "redelivered": redelivered,
        "why": why,
    }


def _fate(task: Any, retries: int) -> tuple[bool, str]:
    exceeded = task.max_retries is not None and retries >= task.max_retries
    if getattr(task, "retry_on_worker_lost", False) and not exceeded:
        return True, "task_retry_on_worker_lost: retried"
    if not task.acks_late:
        return False, "the task has no acks_late: its message was acknowledged when the worker took it"
    if task.reject_on_worker_lost and not exceeded:
        return True, "acks_late and task_reject_on_worker_lost: the message was requeued"
    return False, "acks_late without task_reject_on_worker_lost: the message was not requeued"
