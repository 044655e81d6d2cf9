"""CONSUMER spans for RQ: one per execution of a job by a worker, with its failure, retry and final status.

``BaseWorker.perform_job`` opens the span; the worker's own failure and retry handlers, which RQ calls
inside it, tell the span what happened. As in ``_send``, a failure of the tracing code is logged, never
raised into the worker.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_TYPE
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from pytest_jobtrace.adapters import exception_text, qualified_type_name, record_exception
from pytest_jobtrace.rq import _names as names
from pytest_jobtrace.rq._send import EXECUTING_ATTEMPT, Wrapped, attempt_of, carrier_of, job_attributes

log = logging.getLogger("pytest_jobtrace.rq.instrumentation")


@dataclass
class _Execution:
    job: Any
    span: Span
    attempt: int
    exception_type: str | None = None


_EXECUTING: ContextVar[_Execution | None] = ContextVar("pytest_jobtrace_rq_executing", default=None)
# In a forking worker's parent, while it watches a work horse: the span it writes for a horse that died.
_WATCHING: ContextVar[list[tuple[_Execution, list[Callable[[], None]]]] | None] = ContextVar(
    "pytest_jobtrace_rq_watching", default=None
)
# There too: how the horse ended, as ``wait_for_horse`` returned it (pid, waitpid status).
_HORSE_ENDED: ContextVar[list[tuple[object, object]] | None] = ContextVar("pytest_jobtrace_rq_horse", default=None)
STOPPED = "Job stopped by user, work-horse terminated."
"""RQ's words for a job stopped on request (``send_stop_job_command``): its horse was killed on purpose."""


class Processor:
    """Opens the process span of each execution and records what the worker decides about it."""

    def __init__(self, tracer: Tracer, use_span_links: bool, flush: Callable[[], object]) -> None:
        self.tracer = tracer
        self.use_span_links = use_span_links
        self.flush = flush

    def perform_job(self, wrapped: Wrapped, worker: Any, args: Any, kwargs: Any) -> Any:
        job = args[0] if args else kwargs["job"]
        queue = args[1] if len(args) > 1 else kwargs.get("queue")
        started = self._start(job, getattr(queue, "name", None) or getattr(job, "origin", None))
        if started is None:
            return wrapped(*args, **kwargs)
        execution, token = started
        state = _EXECUTING.set(execution)
        attempt = EXECUTING_ATTEMPT.set((job, execution.attempt))
        try:
            return wrapped(*args, **kwargs)
        except BaseException as exc:  # RQ handles job errors itself; this is the worker dying (SystemExit...)
            _record_failure(execution.span, exc)
            raise
        finally:
            EXECUTING_ATTEMPT.reset(attempt)
            _EXECUTING.reset(state)
            _safely(_finish, execution)
            context.detach(token)
            if getattr(worker, "_is_horse", False):
                _safely(self.flush)  # a forked work horse leaves with os._exit: no exporter flushes after it

    def _start(self, job: Any, queue_name: str | None) -> tuple[_Execution, Token[Context]] | None:
        try:
            parent, links = self._parent(carrier_of(job))
            attempt = attempt_of(job)
            attributes = {**job_attributes(job, queue_name, "process"), names.ATTEMPT: attempt}
            span = self.tracer.start_span(
                f"process {queue_name}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
            )
            # the parent's baggage stays current during the job, under the process span
            token = context.attach(trace.set_span_in_context(span, parent))
            return _Execution(job, span, attempt), token
        except Exception:
            log.warning("RQ instrumentation: no process span for job %r", getattr(job, "id", None), exc_info=True)
            return None

    def _parent(self, carrier: dict[str, str]) -> tuple[Context, list[Link]]:
        extracted = propagate.extract(carrier, context=Context())
        if not self.use_span_links:
            return extracted, []
        sent = trace.get_current_span(extracted).get_span_context()
        ctx = Context()
        for key, value in baggage.get_all(extracted).items():
            ctx = baggage.set_baggage(key, value, ctx)
        return ctx, [Link(sent)] if sent.is_valid else []

    # -- a work horse that died: its parent fails the job, and writes the span the horse could not --------

    def monitor_work_horse(self, wrapped: Wrapped, worker: Any, args: Any, kwargs: Any) -> Any:
        """The parent of a forked work horse waits for it here; when the horse died (killed, crashed), RQ
        calls ``handle_work_horse_killed`` and then fails or retries the job, inside this call."""
        watching: list[tuple[_Execution, list[Callable[[], None]]]] = []
        token, ended = _WATCHING.set(watching), _HORSE_ENDED.set([])
        try:
            return wrapped(*args, **kwargs)
        finally:
            _HORSE_ENDED.reset(ended)
            _WATCHING.reset(token)
            for execution, resets in watching:
                for reset in reversed(resets):
                    _safely(reset)
                _safely(_finish, execution)
            if watching:
                _safely(self.flush)

    def wait_for_horse(self, wrapped: Wrapped, worker: Any, args: Any, kwargs: Any) -> Any:
        """Keep how the horse ended, for a horse stopped on request (RQ passes it on only when it died)."""
        result = wrapped(*args, **kwargs)
        ended = _HORSE_ENDED.get()
        if ended is not None and isinstance(result, tuple) and len(result) >= 2:
            ended.append((result[0], result[1]))
        return result

    def handle_work_horse_killed(self, wrapped: Wrapped, worker: Any, args: Any, kwargs: Any) -> Any:
        """The horse died running ``job``: its process span died with it. Write the attempt's span here,
        from the horse's start to now, with RQ's verdict, so the trace shows the attempt and its failure."""
        watching = _WATCHING.get()
        job, ret_val = (args[0], args[2]) if len(args) > 2 else (kwargs.get("job"), kwargs.get("ret_val"))
        retpid = args[1] if len(args) > 1 else kwargs.get("retpid")
        if watching is not None and job is not None:
            try:
                self._lost_attempt(watching, job, retpid, ret_val)
            except Exception:
                log.warning("RQ instrumentation: no span for the lost attempt of job %r", job.id, exc_info=True)
        return wrapped(*args, **kwargs)

    def _stopped_attempt(self, worker: Any, job: Any) -> None:
        """The horse was killed on request (``send_stop_job_command``): RQ fails the job as stopped without
        ``handle_work_horse_killed``, and the attempt's span died with the horse. Write it here, as for a
        horse that died, with RQ's words for it."""
        watching = _WATCHING.get()
        if watching is None or any(execution.job is job for execution, _ in watching):
            return
        ended = _HORSE_ENDED.get() or []
        pid, ret_val = ended[-1] if ended else (getattr(worker, "horse_pid", None), None)
        self._lost_attempt(watching, job, pid, ret_val, description=STOPPED)

    def _lost_attempt(
        self,
        watching: list[tuple[_Execution, list[Callable[[], None]]]],
        job: Any,
        pid: object,
        ret_val: object,
        description: str | None = None,
    ) -> None:
        queue_name = getattr(job, "origin", None)
        parent, links = self._parent(carrier_of(job))
        attempt = attempt_of(job)
        ended = termination(ret_val)
        attributes = {
            **job_attributes(job, queue_name, "process"),
            names.ATTEMPT: attempt,
            names.HORSE_PID: pid if isinstance(pid, int) else 0,
            names.HORSE_TERMINATION: ended,
            ERROR_TYPE: _error_type(ret_val),
        }
        started = getattr(job, "started_at", None)
        span = self.tracer.start_span(
            f"process {queue_name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
            start_time=int(started.timestamp() * 1e9) if started is not None else None,
        )
        span.set_status(StatusCode.ERROR, description or f"Work-horse terminated unexpectedly: {ended}")
        execution = _Execution(job, span, attempt, exception_type=_error_type(ret_val))
        state, running = _EXECUTING.set(execution), EXECUTING_ATTEMPT.set((job, attempt))
        current = context.attach(trace.set_span_in_context(span, parent))  # a retry is sent from inside it
        resets = [lambda: _EXECUTING.reset(state), lambda: EXECUTING_ATTEMPT.reset(running)]
        watching.append((execution, [*resets, lambda: context.detach(current)]))

    # -- what the worker decides, inside perform_job --------------------------------------------

    def handle_exception(self, wrapped: Wrapped, worker: Any, args: Any, kwargs: Any) -> Any:
        execution = _EXECUTING.get()
        exc = args[2] if len(args) > 2 else None
        if execution is not None and isinstance(exc, BaseException):
            _safely(_record_failure, execution.span, exc)
            execution.exception_type = qualified_type_name(exc)
        return wrapped(*args, **kwargs)

    def handle_job_failure(self, wrapped: Wrapped, worker: Any, args: Any, kwargs: Any) -> Any:
        job = args[0] if args else kwargs.get("job")
        stopped = job is not None and getattr(worker, "_stopped_job_id", None) == job.id
        if stopped and _EXECUTING.get() is None:
            try:
                self._stopped_attempt(worker, job)
            except Exception:
                log.warning("RQ instrumentation: no span for the stopped attempt of job %r", job.id, exc_info=True)
        execution = _EXECUTING.get()
        if execution is None or job is not execution.job:
            return wrapped(*args, **kwargs)
        retrying = bool(job.retries_left) and not stopped
        delay = job.get_retry_interval() if retrying else 0
        result = wrapped(*args, **kwargs)
        if retrying:
            _safely(_retry_event, execution, delay, execution.exception_type)
        elif job.retries_left is not None and not stopped:
            _safely(_exhausted_event, execution)
        return result

    def handle_job_retry(self, wrapped: Wrapped, worker: Any, args: Any, kwargs: Any) -> Any:
        """A job that returned ``Retry``: retried again, or failed once ``Retry.max`` is used up."""
        execution = _EXECUTING.get()
        job = args[0] if args else kwargs.get("job")
        retry = args[2] if len(args) > 2 else kwargs.get("retry")
        if execution is None or job is not execution.job or retry is None:
            return wrapped(*args, **kwargs)
        done = job.number_of_retries or 0
        exhausted = done >= retry.max
        result = wrapped(*args, **kwargs)
        if exhausted:
            message = f"returned Retry with no retries left ({done} of {retry.max} used)"
            _safely(execution.span.set_status, StatusCode.ERROR, message)
            _safely(_exhausted_event, execution)
        else:
            _safely(_retry_event, execution, type(retry).get_interval(done, retry.intervals), None)
        return result


def termination(ret_val: object) -> str:
    """How a horse ended, from ``os.wait4``'s status: ``signal 9 (SIGKILL)`` or ``exit status 1``."""
    if not isinstance(ret_val, int):
        return f"waitpid returned {ret_val!r}"
    if os.WIFSIGNALED(ret_val):
        return f"signal {os.WTERMSIG(ret_val)} ({_signal_name(ret_val)})"
    return f"exit status {os.waitstatus_to_exitcode(ret_val)}"


def _error_type(ret_val: object) -> str:
    """``error.type`` of a dead horse's attempt: the signal's name (``SIGKILL``), else how it exited."""
    return _signal_name(ret_val) if isinstance(ret_val, int) and os.WIFSIGNALED(ret_val) else termination(ret_val)


def _signal_name(ret_val: int) -> str:
    number = os.WTERMSIG(ret_val)
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _record_failure(span: Span, exc: BaseException) -> None:
    record_exception(span, exc)
    span.set_status(StatusCode.ERROR, exception_text(exc))
    span.set_attribute(ERROR_TYPE, qualified_type_name(exc))


def _retry_event(execution: _Execution, delay: float, exception_type: str | None) -> None:
    attributes: dict[str, AttributeValue] = {
        names.RETRY_ATTEMPT: execution.attempt,
        names.RETRY_DELAY: float(delay or 0),
    }
    if exception_type:
        attributes[EXCEPTION_TYPE] = exception_type
    execution.span.add_event(names.RETRY_EVENT, attributes)


def _exhausted_event(execution: _Execution) -> None:
    execution.span.add_event(names.EXHAUSTED_EVENT, {names.RETRY_ATTEMPTS: execution.attempt})


def _finish(execution: _Execution) -> None:
    try:
        status = execution.job.get_status(refresh=False)
        if status is not None:
            execution.span.set_attribute(names.STATUS, str(getattr(status, "value", status)))
        if execution.job.retries_left is not None:
            execution.span.set_attribute(names.RETRIES_LEFT, int(execution.job.retries_left))
    finally:
        execution.span.end()


def _safely(function: Callable[..., Any], *args: Any) -> None:
    try:
        function(*args)
    except Exception:
        log.warning("RQ instrumentation: %s failed", getattr(function, "__name__", function), exc_info=True)
