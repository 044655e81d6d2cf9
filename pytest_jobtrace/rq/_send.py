"""PRODUCER spans for RQ: enqueue, schedule, enqueue_many, retries and dependency releases.

Each hook wraps an RQ method with wrapt's ``(wrapped, instance, args, kwargs)`` signature. The tracing code
never lets its own failure reach RQ: a span that cannot be made is skipped and logged, and the enqueue runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
)
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from pytest_jobtrace.adapters import exception_text, record_exception
from pytest_jobtrace.rq import _names as names

log = logging.getLogger("pytest_jobtrace.rq.instrumentation")

# Set while a send span is open: RQ's enqueue paths call one another (enqueue_job -> _enqueue_job,
# Job.retry -> schedule_job), and one enqueue is one span.
_SENDING: ContextVar[bool] = ContextVar("pytest_jobtrace_rq_sending", default=False)

Wrapped = Callable[..., Any]


def job_attributes(job: Any, queue_name: str | None, operation: str) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        MESSAGING_SYSTEM: names.SYSTEM,
        MESSAGING_OPERATION_TYPE: operation,
        MESSAGING_OPERATION_NAME: operation,
        MESSAGING_MESSAGE_ID: str(job.id),
        names.FUNC_NAME: str(job.func_name),
    }
    if queue_name:
        attributes[MESSAGING_DESTINATION_NAME] = queue_name
    return attributes


def carrier_of(job: Any) -> dict[str, str]:
    carrier = (job.meta or {}).get(names.META_KEY)
    return carrier if isinstance(carrier, dict) else {}


def attempt_of(job: Any) -> int:
    attempt = (job.meta or {}).get(names.META_ATTEMPT, 1)
    return attempt if isinstance(attempt, int) else 1


# The job a worker is executing and its attempt number, set by the process hook: a job function may replace
# ``job.meta`` (``job.meta = {...}``), and the retry must still count on from the attempt that ran.
EXECUTING_ATTEMPT: ContextVar[tuple[Any, int] | None] = ContextVar("pytest_jobtrace_rq_attempt", default=None)


def meta_unreadable(job: Any) -> bool:
    """Whether ``job.meta`` is RQ's placeholder for stored meta it could not deserialize.

    RQ writes the original bytes back only while the placeholder is untouched (``Job._serialize_meta``):
    a key added to it would replace the job's meta for good.
    """
    raw = getattr(job, "_unreadable_meta", None)
    meta = job.meta or {}
    return raw is not None and len(meta) == 1 and meta.get("unserialized") is raw


class Sender:
    """Opens the send spans and puts their context in ``job.meta`` before RQ saves the job."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    @contextmanager
    def send(
        self,
        jobs: Sequence[Any],
        queue_name: str | None,
        reason: str,
        parent: Context | None = None,
        extra: dict[str, AttributeValue] | None = None,
    ) -> Iterator[None]:
        """One send span per job around the enqueue; nested RQ enqueue calls add none."""
        if _SENDING.get():
            yield
            return
        started = (self._start(job, queue_name, reason, parent, extra or {}) for job in jobs)
        spans = [span for span in started if span is not None]
        token = _SENDING.set(True)
        try:
            yield
        except BaseException as exc:
            for span in spans:
                _safely(record_exception, span, exc)
                _safely(span.set_status, trace.Status(trace.StatusCode.ERROR, exception_text(exc)))
            raise
        finally:
            _SENDING.reset(token)
            for span in spans:
                _safely(span.end)

    def _start(
        self, job: Any, queue_name: str | None, reason: str, parent: Context | None, extra: dict[str, AttributeValue]
    ) -> Span | None:
        try:
            attributes = {**job_attributes(job, queue_name, "send"), names.ENQUEUE_REASON: reason, **extra}
            # a release links to the execution that released it; the enqueue already linked the dependencies
            links = _current_link() if parent is not None else _dependency_links(job, attributes)
            span = self.tracer.start_span(
                f"send {queue_name}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes, links=links
            )
        except Exception:
            log.warning("RQ instrumentation: no send span for job %r", getattr(job, "id", None), exc_info=True)
            return None
        _safely(_inject, job, trace.set_span_in_context(span, parent))
        return span

    # -- the hooks -------------------------------------------------------------------------------

    def enqueue_job(self, wrapped: Wrapped, queue: Any, args: Any, kwargs: Any) -> Any:
        job = args[0] if args else kwargs["job"]
        with self.send([job], queue.name, "enqueue"):
            return wrapped(*args, **kwargs)

    def schedule_job(self, wrapped: Wrapped, queue: Any, args: Any, kwargs: Any) -> Any:
        job = args[0] if args else kwargs["job"]
        when = args[1] if len(args) > 1 else kwargs.get("datetime")
        with self.send([job], queue.name, "schedule", extra=_scheduled_for(when)):
            return wrapped(*args, **kwargs)

    def retry(self, wrapped: Wrapped, job: Any, args: Any, kwargs: Any) -> Any:
        """``Job.retry(queue, pipeline)`` after an exception; ``Job._handle_retry_result`` for a returned Retry."""
        queue = args[0] if args else kwargs["queue"]
        _safely(_count_attempt, job)
        with self.send([job], queue.name, "retry"):
            return wrapped(*args, **kwargs)

    def release(self, wrapped: Wrapped, queue: Any, args: Any, kwargs: Any) -> Any:
        """``Queue._enqueue_job`` reached outside any enqueue: RQ releasing a dependent (or requeueing a job)."""
        job = args[0] if args else kwargs["job"]
        reason = _release_reason(job)
        if reason is None or _SENDING.get():
            return wrapped(*args, **kwargs)
        parent = propagate.extract(carrier_of(job), context=Context()) if reason == "dependency" else None
        with self.send([job], queue.name, reason, parent):
            return wrapped(*args, **kwargs)

    def enqueue_many(self, wrapped: Wrapped, queue: Any, args: Any, kwargs: Any) -> Any:
        """``enqueue_many`` creates its jobs inside, bypassing ``enqueue_job``: one span per entry, found by meta."""
        if _SENDING.get():
            return wrapped(*args, **kwargs)
        datas = list(args[0] if args else kwargs["job_datas"])
        many = _ManySends(self.tracer, queue.name)
        datas = [many.prepare(data) for data in datas]
        args, kwargs = ((datas, *args[1:]), kwargs) if args else (args, {**kwargs, "job_datas": datas})
        token = _SENDING.set(True)
        try:
            jobs = wrapped(*args, **kwargs)
        except BaseException as exc:
            many.fail(exc)
            raise
        finally:
            _SENDING.reset(token)
        many.finish(jobs)
        return jobs


class _ManySends:
    """The send spans of one ``enqueue_many`` call, opened before RQ creates the jobs.

    RQ creates the jobs inside, in an order of its own (jobs with dependencies last), so each span is found
    again by its carrier: the very dict RQ put in the job's meta, or else the span context the propagator
    wrote in it. Not by ``traceparent``: a B3 or Jaeger propagator writes none.
    """

    def __init__(self, tracer: Tracer, queue_name: str) -> None:
        self.tracer, self.queue_name = tracer, queue_name
        self.spans: list[tuple[dict[str, str], Span]] = []

    def prepare(self, data: Any) -> Any:
        try:
            span = self.tracer.start_span(f"send {self.queue_name}", kind=SpanKind.PRODUCER)
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            self.spans.append((carrier, span))
            return data._replace(meta={**(data.meta or {}), names.META_KEY: carrier})
        except Exception:
            log.warning("RQ instrumentation: no send span for an enqueue_many entry", exc_info=True)
            return data

    def finish(self, jobs: Sequence[Any]) -> None:
        for job in jobs:
            span = self._pop(carrier_of(job))
            if span is not None:
                _safely(_describe_many, span, job, self.queue_name)
                _safely(span.end)
        for _, span in self.spans:  # entries RQ did not turn into jobs
            _safely(span.end)

    def _pop(self, carrier: dict[str, str]) -> Span | None:
        sent = trace.get_current_span(propagate.extract(carrier, context=Context())).get_span_context()
        ids = (sent.trace_id, sent.span_id) if sent.is_valid else None

        def same_context(_: object, span: Span) -> bool:  # the extracted context is remote: compare the ids
            made = span.get_span_context()
            return ids == (made.trace_id, made.span_id)

        for matches in (lambda c, _: c is carrier, same_context):
            for index, (made, span) in enumerate(self.spans):
                if matches(made, span):
                    del self.spans[index]
                    return span
        return None

    def fail(self, exc: BaseException) -> None:
        for _, span in self.spans:
            _safely(record_exception, span, exc)
            _safely(span.set_status, trace.Status(trace.StatusCode.ERROR, exception_text(exc)))
            _safely(span.end)


def _describe_many(span: Span, job: Any, queue_name: str) -> None:
    """What an enqueue_many span learns once RQ made its job: the job, and links to what it depends on."""
    attributes = {**job_attributes(job, queue_name, "send"), names.ENQUEUE_REASON: "enqueue"}
    for link in _dependency_links(job, attributes):
        span.add_link(link.context, link.attributes)
    span.set_attributes(attributes)


def _inject(job: Any, context: Context) -> None:
    if meta_unreadable(job):
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    if job.meta is None:
        job.meta = {}
    job.meta[names.META_KEY] = carrier


def _dependency_links(job: Any, attributes: dict[str, AttributeValue]) -> list[Link]:
    """Links to the send spans of the jobs ``job`` waits for (their context is in their meta)."""
    ids = [str(i) for i in getattr(job, "_dependency_ids", None) or ()]
    if not ids:
        return []
    attributes[names.DEPENDS_ON] = ids
    links = []
    for dependency in _fetch_dependencies(job):
        carrier = carrier_of(dependency)
        context = trace.get_current_span(propagate.extract(carrier, context=Context())).get_span_context()
        if context.is_valid:
            links.append(Link(context, {MESSAGING_MESSAGE_ID: str(dependency.id)}))
    return links


def _fetch_dependencies(job: Any) -> list[Any]:
    dependency = getattr(job, "_dependency", None)
    if dependency is not None and len(job._dependency_ids) == 1:
        return [dependency]  # the Job object given as depends_on: no Redis round trip
    return [d for d in job.fetch_dependencies() if d is not None]


def _current_link() -> list[Link]:
    context = trace.get_current_span().get_span_context()
    return [Link(context)] if context.is_valid else []


def _release_reason(job: Any) -> str | None:
    status = job.get_status(refresh=False)
    if status is not None and str(getattr(status, "value", status)) == "scheduled":
        return None  # the scheduler moving a due job: its send span was made when it was scheduled
    return "dependency" if getattr(job, "_dependency_ids", None) else "requeue"


def _count_attempt(job: Any) -> None:
    if meta_unreadable(job):
        return
    executing = EXECUTING_ATTEMPT.get()
    ran = executing[1] if executing is not None and executing[0] is job else attempt_of(job)
    job.meta[names.META_ATTEMPT] = ran + 1


def _scheduled_for(when: object) -> dict[str, AttributeValue]:
    if not isinstance(when, datetime):
        return {}
    if when.tzinfo is None:
        when = when.astimezone()  # RQ reads a naive datetime as local time too
    return {names.SCHEDULED_FOR: when.astimezone(timezone.utc).isoformat()}


def _safely(function: Callable[..., Any], *args: Any) -> None:
    try:
        function(*args)
    except Exception:
        log.warning("RQ instrumentation: %s failed", getattr(function, "__name__", function), exc_info=True)
