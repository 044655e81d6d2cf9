"""The built-in job runtime: a queue on a virtual clock, drained on the calling thread, with ActiveJob retries."""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context
from opentelemetry.trace import Tracer, TracerProvider

from pytest_jobtrace.adapters import JobChainError, JobRunner, Selected, StepInfo, VirtualClock
from pytest_jobtrace.builtin._attempt import Envelope, Verdict, WaitError, instantiate, judge_failure
from pytest_jobtrace.builtin._model import (
    MODES,
    PROPAGATIONS,
    SPAN_NAMINGS,
    JobHandle,
    JobRun,
    Mode,
    PendingJob,
    Propagation,
    SpanNaming,
    check_choice,
    display_name,
)
from pytest_jobtrace.builtin._tracing import (
    MessageRef,
    consumer_context,
    get_tracer,
    process_span,
    record_failure,
    send_span,
)

if TYPE_CHECKING:
    from pytest_jobtrace.builtin._job import Job

# Each nested inline job adds a handful of Python frames; past this depth a chain is reported as not ending
# well before the interpreter's recursion limit would turn it into an unreadable RecursionError.
INLINE_DEPTH_LIMIT = 64
_RAISE_INLINE_BOUND = "If it does end, raise the bound: JobRuntime(max_jobs=N) on your own runtime."
_USE_QUEUE = (
    "Inline mode performs each job inside the perform_later() of the job that enqueued it; run long"
    " chains in queue mode (the default; not @pytest.mark.jobtrace(mode='inline')) and drain()."
)

_ACTIVE: list[JobRuntime] = []


@dataclass(frozen=True)
class _Performing:
    runtime: JobRuntime | None
    job_id: str


# The job being performed in this context: who enqueues, and which runtime receives its jobs.
_CURRENT: ContextVar[_Performing | None] = ContextVar("pytest_jobtrace_builtin_current_job", default=None)


@dataclass(frozen=True)
class _Tracing:
    provider: TracerProvider | None
    span_naming: SpanNaming

    def tracer(self) -> Tracer:
        return get_tracer(self.provider)

    def ref(self, job_class: type[Job], job_id: str) -> MessageRef:
        destination = job_class.queue if self.span_naming == "queue" else display_name(job_class)
        return MessageRef(_full_name(job_class), job_class.queue, destination, job_id)


_DEFAULT_TRACING = _Tracing(None, "queue")


def _full_name(job_class: type[Job]) -> str:
    """The job's name in spans and in ``job()``: module and qualified class name."""
    return f"{job_class.__module__}.{job_class.__qualname__}"


def enqueue(job_class: type[Job], args: tuple[Any, ...], kwargs: dict[str, Any]) -> JobHandle:
    """Enqueue on the runtime performing the current job, else on the innermost active runtime."""
    __tracebackhide__ = True
    runtime = _current_runtime(f"{display_name(job_class)}.perform_later()")
    if runtime is None:
        raise RuntimeError(
            f"{display_name(job_class)}.perform_later(): no JobRuntime is active. Request the `builtin_jobs` "
            "fixture in your test, or run this code inside `with JobRuntime() as rt:` and call rt.drain()."
        )
    return runtime._enqueue(job_class, args, kwargs)


def perform_now(job_class: type[Job], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run one attempt in the caller's context under a process span; exceptions reach the caller."""
    __tracebackhide__ = True
    runtime = _current_runtime(f"{display_name(job_class)}.perform_now()")
    tracing = runtime._tracing if runtime is not None else _DEFAULT_TRACING
    ref = tracing.ref(job_class, uuid.uuid4().hex)
    with process_span(tracing.tracer(), ref, 1, context.get_current(), ()) as span, _performing(runtime, ref.job_id):
        try:
            return instantiate(job_class, ref.job_id, 1).perform(*args, **kwargs)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the attempt did not succeed
            record_failure(span, exc)
            raise


def _current_runtime(caller: str) -> JobRuntime | None:
    __tracebackhide__ = True
    performing = _CURRENT.get()
    if performing is None or performing.runtime is None:
        return _ACTIVE[-1] if _ACTIVE else None
    runtime = performing.runtime
    if runtime._closed and not runtime._busy:
        # A copy of a job's context (an asyncio task, contextvars.copy_context().run) outlived the job and
        # its test: enqueued there, the job would wait on a runtime nobody drains again.
        raise RuntimeError(
            f"{caller}: called from work that job {performing.job_id[:8]} started on a JobRuntime that has "
            "since been closed (its test has ended), through a copied context (an asyncio task, "
            "contextvars.copy_context().run, an executor); the job would never run. Wait for that work "
            "in the test that started it."
        )
    return runtime


@contextmanager
def _performing(runtime: JobRuntime | None, job_id: str) -> Iterator[None]:
    token = _CURRENT.set(_Performing(runtime, job_id))
    if runtime is not None:
        runtime._busy += 1
    try:
        yield
    finally:
        _CURRENT.reset(token)
        if runtime is not None:
            runtime._busy -= 1


class JobRuntime(JobRunner[Envelope, "JobRun | PendingJob", JobRun]):
    """An in-process job queue with ActiveJob-like semantics, traced with OpenTelemetry.

    Activate it with ``with JobRuntime() as rt:``; ``Job.perform_later`` then enqueues on it (the innermost active
    runtime wins when they are nested) and ``rt.drain()`` performs the jobs on the calling thread, advancing a
    virtual clock (``rt.now``) instead of sleeping. Only the pending queue is guarded by a lock: jobs may be
    enqueued from other threads, but drain from one thread.

    ``mode="inline"`` performs each job inside ``perform_later``. ``propagation`` is how a process span relates to
    the send span ("child", "link" or "none") unless the job class sets its own. ``span_naming`` picks the span
    name's destination: the queue or the job class. ``max_jobs`` bounds the attempts one drain (or one inline
    enqueue) may perform before a `JobChainError`. ``expect_failures`` is the default of ``drain()``'s.
    """

    drains_when_closed = True  # the queue is in memory: a closed runtime's jobs still run (and enqueue on it)

    def __init__(
        self,
        *,
        mode: Mode = "queue",
        propagation: Propagation = "child",
        span_naming: SpanNaming = "queue",
        tracer_provider: TracerProvider | None = None,
        max_jobs: int = 1000,
        expect_failures: bool = False,
        clock: VirtualClock | None = None,
    ) -> None:
        check_choice("JobRuntime(): mode", mode, MODES)
        check_choice("JobRuntime(): propagation", propagation, PROPAGATIONS)
        check_choice("JobRuntime(): span_naming", span_naming, SPAN_NAMINGS)
        super().__init__(clock=clock, max_jobs=max_jobs, expect_failures=expect_failures)
        self._mode, self._propagation = mode, propagation
        self._tracing = _Tracing(tracer_provider, span_naming)
        self._lock = threading.Lock()
        self._queue: list[tuple[float, int, Envelope]] = []
        self._seq = itertools.count()
        self._inline_depth = 0
        self._inline_attempted: list[str] = []
        self._closed = False  # closed and performing nothing: enqueues through a stale context are refused
        self._busy = 0  # jobs being performed now (a closed runtime may still be drained)
        self._retried_on: dict[str, BaseException | None] = {}  # job id -> what its retried attempt raised

    def __repr__(self) -> str:
        return (
            f"<JobRuntime mode={self._mode!r} now={self._clock.now} pending={len(self._queue)}"
            f" performed={len(self.performed)}>"
        )

    def _open(self) -> None:
        _ACTIVE.append(self)
        self._closed = False

    def _close(self) -> None:
        """Deactivate this runtime, making the one active before it current again. Pending jobs stay pending."""
        self._closed = True
        for index in range(len(_ACTIVE) - 1, -1, -1):
            if _ACTIVE[index] is self:
                del _ACTIVE[index]
                return

    @property
    def mode(self) -> Mode:
        """``"queue"`` (jobs wait for drain()) or ``"inline"`` (each runs inside its perform_later()).

        Settable, so a test can switch: ``builtin_jobs.mode = "inline"``.
        """
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        check_choice("JobRuntime.mode", mode, MODES)
        self._mode = mode

    @property
    def now(self) -> float:
        """The virtual clock in seconds: 0.0 at creation, moved forward by waits before retries.

        In a test it is the test's shared clock (the ``job_clock`` fixture), which every adapter moves.
        """
        return self._clock.now

    @property
    def pending(self) -> list[PendingJob]:
        """The jobs (and scheduled retries) waiting to be performed, in the order drain() would perform them."""
        with self._lock:
            queued = sorted(self._queue)
        return [envelope.pending() for _, _, envelope in queued]

    # -- the runner's steps -------------------------------------------------------------------------

    def _take(self, selected: Selected | None) -> Envelope | None:
        with self._lock:
            if selected is None:
                return heapq.heappop(self._queue)[2] if self._queue else None
            entries = (entry for entry in self._queue if selected(_full_name(entry[2].job_class), entry[2].job_id))
            chosen = min(entries, default=None)
            if chosen is None:
                return None
            self._queue.remove(chosen)
            heapq.heapify(self._queue)
            return chosen[2]

    def _put_back(self, envelope: Envelope) -> None:
        self._push(envelope)

    def _about(self, envelope: Envelope) -> StepInfo:
        job_class = envelope.job_class
        return StepInfo(
            _full_name(job_class),
            envelope.job_id,
            envelope.attempt,
            job_class.attempts,
            display_name(job_class),
            envelope.due,
        )

    def _perform(self, envelope: Envelope) -> JobRun | PendingJob:
        """One attempt at its due time; a retried job goes back in the queue and gives its `PendingJob`."""
        __tracebackhide__ = True
        self._clock.advance_to(envelope.due)
        run = self._settle(envelope, self._attempt(envelope))
        if run is None:
            self._push(envelope)
            return envelope.pending()
        return run

    def _settles(self, record: JobRun | PendingJob) -> bool:
        return isinstance(record, JobRun)

    def _outcome(self, record: JobRun | PendingJob) -> str:
        return record.outcome if isinstance(record, JobRun) else "retried"

    def _exception(self, record: JobRun | PendingJob) -> BaseException | None:
        return record.exception if isinstance(record, JobRun) else self._retried_on.pop(record.job_id, None)

    def _failed_for_good(self, record: JobRun | PendingJob) -> bool:
        return isinstance(record, JobRun) and record.outcome == "failed"

    # -- enqueue and attempts -----------------------------------------------------------------------

    def _enqueue(self, job_class: type[Job], args: tuple[Any, ...], kwargs: dict[str, Any]) -> JobHandle:
        __tracebackhide__ = True
        performing = _CURRENT.get()
        envelope = Envelope(
            job_class, uuid.uuid4().hex, json.dumps([args, kwargs]), performing.job_id if performing else None
        )
        envelope.due, envelope.seq = self._clock.now, next(self._seq)
        self._enqueued(envelope.job_id, _full_name(job_class), by=envelope.enqueued_by, due=envelope.due)
        with send_span(self._tracing.tracer(), self._tracing.ref(job_class, envelope.job_id)) as carrier:
            envelope.carrier = carrier
            if self._mode == "queue":
                self._push(envelope)
        if self._mode == "inline":
            self._run_inline(envelope)
        return envelope.handle()

    def _push(self, envelope: Envelope) -> None:
        with self._lock:
            heapq.heappush(self._queue, (envelope.due, envelope.seq, envelope))

    def _attempt(self, envelope: Envelope) -> Verdict:
        __tracebackhide__ = True  # a job's exception, chained under JobFailedError, then starts at perform
        job_class = envelope.job_class
        parent, links = consumer_context(envelope.carrier, job_class.propagation or self._propagation)
        ref = self._tracing.ref(job_class, envelope.job_id)
        args, kwargs = envelope.arguments()
        with process_span(self._tracing.tracer(), ref, envelope.attempt, parent, links) as span:
            try:
                with _performing(self, envelope.job_id):
                    instantiate(job_class, envelope.job_id, envelope.attempt).perform(*args, **kwargs)
            except JobChainError:
                raise  # the runtime's own verdict on the whole chain, not this job's failure
            except Exception as exc:
                try:
                    return judge_failure(span, envelope, exc)
                except WaitError:  # the job's wait function failed: it cannot be rescheduled
                    self._settle_failed(envelope, exc)
                    raise
            except BaseException as exc:
                # SystemExit, KeyboardInterrupt, GeneratorExit: no retry_on can name them. The attempt is
                # recorded as the failure it was, then the exception goes on to stop what it was meant to stop.
                record_failure(span, exc)
                self._settle_failed(envelope, exc)
                raise
        return Verdict("succeeded")

    def _settle(self, envelope: Envelope, verdict: Verdict) -> JobRun | None:
        """Reschedule a retried job (same id, same carrier, behind the jobs already due) or give its outcome."""
        if verdict.kind == "retry":
            envelope.attempt += 1
            envelope.due, envelope.seq = self._clock.now + verdict.delay, next(self._seq)
            self._enqueued(envelope.job_id, _full_name(envelope.job_class), due=envelope.due, attempt=envelope.attempt)
            self._retried_on[envelope.job_id] = verdict.exception
            return None
        return envelope.run(verdict.kind, verdict.exception)

    def _settle_failed(self, envelope: Envelope, exc: BaseException) -> None:
        """Record a job whose attempt ended in an exception that goes on (the runner never sees its record)."""
        info, noted = self._about(envelope), len(self._clock.timeline)
        run = self._settle(envelope, Verdict("failed", exc))
        if run is not None:
            self._record(run)
            self._attempted(info, run, self._clock.now, noted)

    # -- inline mode --------------------------------------------------------------------------------

    def _run_inline(self, envelope: Envelope) -> None:
        __tracebackhide__ = True
        if self._inline_depth == 0:
            self._inline_attempted = []
        self._inline_depth += 1
        try:
            run = self._perform_inline(envelope)
        except JobChainError as error:
            if self._inline_depth > 1:
                raise
            # Raised from the outermost perform_later alone: the nested frames would repeat the chain
            # the message already shows, dozens of times.
            raise error.with_traceback(None) from None
        finally:
            self._inline_depth -= 1
        where = f"{display_name(envelope.job_class)}.perform_later() in inline mode"
        self._raise_failures([run], None, where, "create the runtime with JobRuntime(expect_failures=True)")

    def _perform_inline(self, envelope: Envelope) -> JobRun:
        while True:
            self._check_inline_bounds(envelope)
            self._inline_attempted.append(display_name(envelope.job_class))
            info, before, noted = self._about(envelope), self._clock.now, len(self._clock.timeline)
            run = self._settle(envelope, self._attempt(envelope))
            self._attempted(info, run if run is not None else envelope.pending(), before, noted)
            if run is not None:
                self._record(run)
                return run
            self._clock.advance_to(envelope.due)

    def _check_inline_bounds(self, envelope: Envelope) -> None:
        if self._inline_depth > INLINE_DEPTH_LIMIT:
            reason = f"inline jobs are nested {self._inline_depth} deep (limit {INLINE_DEPTH_LIMIT})"
            raise self._inline_chain_error(envelope, reason, _USE_QUEUE)
        if len(self._inline_attempted) >= self._max_jobs:
            reason = f"inline perform_later() performed max_jobs={self._max_jobs} attempts"
            raise self._inline_chain_error(envelope, reason, _RAISE_INLINE_BOUND)

    def _inline_chain_error(self, envelope: Envelope, reason: str, hint: str) -> JobChainError:
        message = self._chain_message(self._about(envelope), self._inline_attempted, reason, hint)
        self.chain_error = JobChainError(message)
        return self.chain_error
