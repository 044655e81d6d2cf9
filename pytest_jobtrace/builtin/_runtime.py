"""The built-in job runtime: a queue on a virtual clock, drained on the calling thread, with ActiveJob retries."""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context
from opentelemetry.trace import Tracer, TracerProvider

from pytest_jobtrace._core.clock import VirtualClock
from pytest_jobtrace._core.errors import JobChainError, JobFailedError, chain_message, failures_message
from pytest_jobtrace._jobs.names import job_name_matches
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
_CHAIN_SHOWN = 10
_RAISE_BOUND = (
    "If it does end, raise the bound: builtin_jobs.drain(max_jobs=N) in a test, or"
    " drain(max_jobs=N) / JobRuntime(max_jobs=N) on your own runtime."
)
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


class JobRuntime:
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
        self._mode, self._propagation, self._expect_failures = mode, propagation, expect_failures
        self._max_jobs = _check_max_jobs("JobRuntime()", max_jobs)
        self._tracing = _Tracing(tracer_provider, span_naming)
        self._lock = threading.Lock()
        self._queue: list[tuple[float, int, Envelope]] = []
        self._seq = itertools.count()
        self._clock = clock if clock is not None else VirtualClock()
        self._performed: list[JobRun] = []
        self._lineage: dict[str, tuple[str, str | None]] = {}  # job id -> (class name, enqueued by)
        self._inline_depth = 0
        self._inline_attempted: list[str] = []
        self._closed = False  # closed and performing nothing: enqueues through a stale context are refused
        self._busy = 0  # jobs being performed now (a closed runtime may still be drained)
        self.chain_error: JobChainError | None = None
        """The JobChainError this runtime raised, if any (its jobs are left pending on purpose)."""

    def __repr__(self) -> str:
        return (
            f"<JobRuntime mode={self._mode!r} now={self._clock.now} pending={len(self._queue)}"
            f" performed={len(self._performed)}>"
        )

    def __enter__(self) -> JobRuntime:
        _ACTIVE.append(self)
        self._closed = False
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
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
    def clock(self) -> VirtualClock:
        """The virtual clock this runtime orders its jobs on."""
        return self._clock

    @property
    def pending(self) -> list[PendingJob]:
        """The jobs (and scheduled retries) waiting to be performed, in the order drain() would perform them."""
        with self._lock:
            queued = sorted(self._queue)
        return [envelope.pending() for _, _, envelope in queued]

    @property
    def performed(self) -> list[JobRun]:
        """Every job that reached its final outcome on this runtime, in the order they did."""
        return list(self._performed)

    def drain(
        self, max_jobs: int | None = None, *, only: object = None, expect_failures: bool | None = None
    ) -> list[JobRun]:
        """Perform every pending job, the jobs they enqueue and their retries, by due time then FIFO.

        ``only`` (a job class, a name as ``job()`` takes it, or a list of them) performs only the jobs it
        names, leaving the others pending. Returns a `JobRun` for each job that reached its final outcome.
        Raises `JobChainError` before the ``max_jobs + 1``-th attempt (default: the runtime's ``max_jobs``)
        and, once done, `JobFailedError` if any job failed, unless ``expect_failures`` (default: the
        runtime's) is true.
        """
        __tracebackhide__ = True
        limit = self._max_jobs if max_jobs is None else _check_max_jobs("drain()", max_jobs)
        selected = self._selector(only)
        finished: list[JobRun] = []
        attempted: list[str] = []
        while (envelope := self._pop(selected)) is not None:
            if len(attempted) >= limit:
                self._push(envelope)
                reason = f"JobRuntime.drain() performed max_jobs={limit} attempts"
                raise self._chain_error(envelope, attempted, reason, _RAISE_BOUND)
            attempted.append(display_name(envelope.job_class))
            run = self._perform(envelope)
            if run is not None:
                finished.append(run)
        self._raise_failures(finished, expect_failures, "JobRuntime.drain()", "pass drain(expect_failures=True)")
        return finished

    def perform_one(self, *, expect_failures: bool | None = None) -> JobRun | PendingJob:
        """Perform the next due attempt only, moving the virtual clock to it, to look between attempts.

        Returns the job's `JobRun` when that attempt settled it, or its `PendingJob` (the retry, with its
        due time) when it will be retried. Raises `LookupError` when nothing is pending, and `JobFailedError`
        when the job failed for good, unless ``expect_failures`` (default: the runtime's) is true.
        """
        __tracebackhide__ = True
        envelope = self._pop()
        if envelope is None:
            raise LookupError("JobRuntime.perform_one(): no job is pending")
        run = self._perform(envelope)
        if run is None:
            return envelope.pending()
        remedy = "pass perform_one(expect_failures=True)"
        self._raise_failures([run], expect_failures, "JobRuntime.perform_one()", remedy)
        return run

    @property
    def failed(self) -> list[JobRun]:
        """The jobs that failed for good on this runtime so far (reported by drain() unless expected)."""
        return [run for run in self._performed if run.outcome == "failed"]

    def _perform(self, envelope: Envelope) -> JobRun | None:
        """One attempt at its due time; a retried job goes back in the queue and gives None."""
        self._clock.advance_to(envelope.due)
        run = self._settle(envelope, self._attempt(envelope))
        if run is None:
            self._push(envelope)
        return run

    def _enqueue(self, job_class: type[Job], args: tuple[Any, ...], kwargs: dict[str, Any]) -> JobHandle:
        __tracebackhide__ = True
        performing = _CURRENT.get()
        envelope = Envelope(
            job_class, uuid.uuid4().hex, json.dumps([args, kwargs]), performing.job_id if performing else None
        )
        envelope.due, envelope.seq = self._clock.now, next(self._seq)
        self._lineage[envelope.job_id] = (display_name(job_class), envelope.enqueued_by)
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

    def _pop(self, selected: Callable[[Envelope], bool] | None = None) -> Envelope | None:
        with self._lock:
            if selected is None:
                return heapq.heappop(self._queue)[2] if self._queue else None
            chosen = min((entry for entry in self._queue if selected(entry[2])), default=None)
            if chosen is None:
                return None
            self._queue.remove(chosen)
            heapq.heapify(self._queue)
            return chosen[2]

    def _selector(self, only: object) -> Callable[[Envelope], bool] | None:
        """What ``drain(only=...)`` performs; naming no pending job is an error that lists the pending ones."""
        __tracebackhide__ = True
        if only is None:
            return None
        names = list(only) if isinstance(only, (list, tuple, set, frozenset)) else [only]

        def selected(envelope: Envelope) -> bool:
            full_name = _full_name(envelope.job_class)
            return any(job_name_matches(name, full_name) for name in names)

        pending = self.pending
        if not any(job_name_matches(name, item.name) for item in pending for name in names):
            shown = ", ".join(item.describe() for item in pending[:10]) or "none"
            raise ValueError(f"JobRuntime.drain(only={only!r}): no pending job matches; pending: {shown}")
        return selected

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
                    self._settle(envelope, Verdict("failed", exc))
                    raise
            except BaseException as exc:
                # SystemExit, KeyboardInterrupt, GeneratorExit: no retry_on can name them. The attempt is
                # recorded as the failure it was, then the exception goes on to stop what it was meant to stop.
                record_failure(span, exc)
                self._settle(envelope, Verdict("failed", exc))
                raise
        return Verdict("succeeded")

    def _settle(self, envelope: Envelope, verdict: Verdict) -> JobRun | None:
        """Reschedule a retried job (same id, same carrier, behind the jobs already due) or record its outcome."""
        if verdict.kind == "retry":
            envelope.attempt += 1
            envelope.due, envelope.seq = self._clock.now + verdict.delay, next(self._seq)
            return None
        run = envelope.run(verdict.kind, verdict.exception)
        self._performed.append(run)
        return run

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
            run = self._settle(envelope, self._attempt(envelope))
            if run is not None:
                return run
            self._clock.advance_to(envelope.due)

    def _check_inline_bounds(self, envelope: Envelope) -> None:
        if self._inline_depth > INLINE_DEPTH_LIMIT:
            reason = f"inline jobs are nested {self._inline_depth} deep (limit {INLINE_DEPTH_LIMIT})"
            raise self._chain_error(envelope, self._inline_attempted, reason, _USE_QUEUE)
        if len(self._inline_attempted) >= self._max_jobs:
            reason = f"inline perform_later() performed max_jobs={self._max_jobs} attempts"
            raise self._chain_error(envelope, self._inline_attempted, reason, _RAISE_BOUND)

    def _chain_error(self, envelope: Envelope, attempted: list[str], reason: str, hint: str) -> JobChainError:
        ids: list[str] = []
        job_id: str | None = envelope.job_id
        while job_id is not None and job_id in self._lineage:
            ids.append(job_id)
            job_id = self._lineage[job_id][1]
        shown = [(self._lineage[i][0], i) for i in reversed(ids[:_CHAIN_SHOWN])]
        attempt = (envelope.attempt, envelope.job_class.attempts)
        self.chain_error = JobChainError(chain_message(shown, len(ids), attempted, reason, hint, attempt))
        return self.chain_error

    def _raise_failures(self, runs: list[JobRun], expect_failures: bool | None, where: str, remedy: str) -> None:
        __tracebackhide__ = True
        failed = [run for run in runs if run.outcome == "failed"]
        if not failed or (self._expect_failures if expect_failures is None else expect_failures):
            return
        raise JobFailedError(failures_message(failed, where, remedy), failed) from failed[0].exception


def _check_max_jobs(owner: str, max_jobs: int) -> int:
    if not isinstance(max_jobs, int) or isinstance(max_jobs, bool) or max_jobs < 1:
        raise ValueError(f"{owner}: max_jobs must be an int >= 1; got {max_jobs!r}")
    return max_jobs
