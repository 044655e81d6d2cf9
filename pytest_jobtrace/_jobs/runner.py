"""One job runner for every adapter: the runner contract written once.

An adapter's runner subclasses :class:`JobRunner` and writes only its job system's steps: what is due next
(:meth:`JobRunner._take`), how to put a job back (:meth:`JobRunner._put_back`), how to name it
(:meth:`JobRunner._about`), how to run one attempt (:meth:`JobRunner._perform`) and what its records mean
(:meth:`JobRunner._settles`, :meth:`JobRunner._failed_for_good`). Draining, ``only=``, the ``max_jobs``
bound, argument checks, failures, ``expect_failures``, the lifecycle and every message those produce live
here, so the same call behaves and reads the same on every job system (OpenTelemetry's ``BaseInstrumentor``
owns an instrumentation's lifecycle the same way).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from pytest_jobtrace._core.clock import TimelineEvent, VirtualClock
from pytest_jobtrace._core.errors import (
    JobChainError,
    JobFailedError,
    attempts_performed,
    chain_message,
    failures_message,
)
from pytest_jobtrace._core.exceptions import exception_text
from pytest_jobtrace._core.values import clip
from pytest_jobtrace._jobs.names import job_name_matches, short_name

Step = TypeVar("Step")
"""An adapter's handle on one due attempt, taken off its queue."""
Record = TypeVar("Record")
"""An adapter's record of one attempt (``TaskRun``, ``RQRun``; the built-in's ``JobRun | PendingJob``)."""
Reported = TypeVar("Reported")
"""What ``drain()``, ``performed`` and ``failed`` list: the records that ``_settles`` accepts (the built-in's
``JobRun``; every record elsewhere)."""

DEFAULT_MAX_JOBS = 1000
_SHOWN = 10  # pending jobs and chain links a message lists
_MAX_DETAIL = 300  # characters of an attempt's exception the job timeline keeps


@dataclass(frozen=True)
class StepInfo:
    """What the runner needs to know of a due attempt for its messages and its bookkeeping."""

    name: str
    """The job's full name, as ``job()`` and ``drain(only=...)`` match it."""
    job_id: str
    attempt: int = 1
    """The attempt this step performs, 1 for the first."""
    attempts_allowed: int | None = None
    """How many attempts the job may make, where the job system says (None: unknown)."""
    shown: str | None = None
    """How messages name the job (default: the last component of ``name``)."""
    due: float | None = None
    """When the attempt is due on the virtual clock, where the adapter knows it before performing it (the
    job timeline's moment of the attempt; without it, the clock's time after the attempt)."""

    @property
    def label(self) -> str:
        return self.shown if self.shown is not None else short_name(self.name)


@dataclass(frozen=True)
class _Running:
    runner: JobRunner[Any, Any, Any]
    info: StepInfo


# The attempt a runner is performing in this context: who enqueues what, and drains from inside a job.
_RUNNING: ContextVar[_Running | None] = ContextVar("pytest_jobtrace_running_job", default=None)
_INFER: Any = object()


def performing_an_attempt() -> bool:
    """Whether a job runner is performing an attempt in this context (a worker is at work)."""
    return _RUNNING.get() is not None


Selected = Callable[[str, str], bool]
"""``drain(only=...)``'s choice: whether the job of this name and id is to be performed."""


class JobRunner(Generic[Step, Record, Reported]):
    """The runner contract, written once: ``drain``, ``perform_one``, ``pending``, ``performed``, ``failed``,
    the clock, the bound, ``chain_error`` and the context-manager lifecycle.

    ``label`` names the runner in messages: the adapter's fixture name under pytest (``"celery_jobs"``), the
    class name by default. ``max_jobs`` bounds the attempts one drain performs; ``expect_failures`` is the
    default of ``drain()``'s and ``perform_one()``'s.
    """

    returns_every_attempt = False
    """Whether ``drain()`` and ``performed`` list every attempt (RQ's executions) or only the attempts that
    settled their job (the default)."""
    drains_when_closed = False
    """Whether jobs left pending can still be performed after ``close()`` (the built-in runtime keeps its
    queue in memory; a closed Celery or RQ runner has given its app or its Redis back)."""

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        max_jobs: int = DEFAULT_MAX_JOBS,
        expect_failures: bool = False,
        label: str | None = None,
    ) -> None:
        self.label = label if label is not None else type(self).__name__
        self._max_jobs = check_max_jobs(f"{self.label}()", max_jobs, allow_none=False)
        self._expect_failures = check_expect_failures(f"{self.label}()", expect_failures, allow_none=False)
        self._clock = clock if clock is not None else VirtualClock()
        self._records: list[Record] = []
        self._enqueuer: dict[str, str | None] = {}  # job id -> id of the job that enqueued it
        self._names: dict[str, str] = {}  # job id -> how messages name it
        self._arrivals: dict[str, int] = {}  # job id -> how many jobs were noted before it
        self._open_now = False
        self.chain_error: JobChainError | None = None
        """The JobChainError this runner raised, if any (its jobs were left pending on purpose)."""

    # -- lifecycle ----------------------------------------------------------------------------------

    def __enter__(self: _R) -> _R:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Start intercepting the job system's enqueues (``with runner:`` calls it)."""
        if self._open_now:
            raise RuntimeError(f"{self.label} is already open")
        self._open_now = True
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Restore everything ``open()`` changed; pending jobs stay pending. Closing twice does nothing."""
        if self._open_now:
            self._open_now = False
            self._close()

    # -- the contract -------------------------------------------------------------------------------

    @property
    def clock(self) -> VirtualClock:
        """The virtual clock this runner orders its jobs on (in a test: the ``job_clock`` fixture)."""
        return self._clock

    @property
    def pending(self) -> Sequence[Any]:
        """Jobs enqueued and not performed yet, in the order they would run."""
        raise NotImplementedError

    @property
    def performed(self) -> list[Reported]:
        """The attempts performed so far, in order: those that settled their job (every attempt, on RQ)."""
        return self._reported(self._records)

    @property
    def failed(self) -> list[Reported]:
        """The jobs that failed for good so far (``drain()`` reports them unless failures are expected)."""
        return self._reported(record for record in self._records if self._failed_for_good(record))

    def drain(
        self, max_jobs: int | None = None, *, only: object = None, expect_failures: bool | None = None
    ) -> list[Reported]:
        """Perform every pending job, the jobs they enqueue and their retries, in due order on the virtual clock.

        ``only`` (a job name as ``job()`` takes it, the job's function or class, a pattern, or a list of them)
        performs only the pending jobs it names and their retries, leaving the others pending; naming no
        pending job is a ``ValueError`` that lists them. Raises ``JobChainError`` before performing more than
        ``max_jobs`` attempts (default: the runner's), and afterwards ``JobFailedError`` if a job failed for
        good, unless ``expect_failures`` (default: the runner's) is true.
        """
        __tracebackhide__ = True
        where = f"{self.label}.drain()"
        self._refuse_inside(where)
        limit = self._max_jobs if max_jobs is None else check_max_jobs(where, max_jobs)
        expect = check_expect_failures(where, expect_failures)
        selected = self._selector(only)
        records: list[Record] = []
        attempted: list[str] = []
        while (step := self._take(selected)) is not None:
            info = self._about(step)
            if len(attempted) >= limit:
                self._put_back(step)
                self.chain_error = JobChainError(self._bound_message(info, attempted, limit))
                raise self.chain_error
            attempted.append(info.label)
            records.append(self._run(step, info))
        self._raise_failures(records, expect, where, "pass drain(expect_failures=True)")
        return self._reported(records)

    def perform_one(self, *, expect_failures: bool | None = None) -> Record:
        """Perform the next due attempt only, moving the virtual clock to it, to look between attempts.

        Returns that attempt's record. Raises ``LookupError`` when nothing is pending, and ``JobFailedError``
        when the job failed for good, unless ``expect_failures`` (default: the runner's) is true.
        """
        __tracebackhide__ = True
        where = f"{self.label}.perform_one()"
        self._refuse_inside(where)
        expect = check_expect_failures(where, expect_failures)
        step = self._take(None)
        if step is None:
            raise LookupError(f"{where}: no job is pending")
        record = self._run(step, self._about(step))
        self._raise_failures([record], expect, where, "pass perform_one(expect_failures=True)")
        return record

    # -- what an adapter writes ---------------------------------------------------------------------

    def _open(self) -> None:
        """Activate: from now on the job system's enqueues land in this runner."""

    def _close(self) -> None:
        """Deactivate: restore what ``_open`` changed."""

    def _take(self, selected: Selected | None) -> Step | None:
        """Take the next due attempt off the queue (the first that ``selected(name, job_id)`` accepts, when
        given); None when nothing (selected) is pending. ``_perform`` moves the clock to its due time."""
        raise NotImplementedError

    def _put_back(self, step: Step) -> None:
        """Return a step taken but not performed, first in line again."""
        raise NotImplementedError

    def _about(self, step: Step) -> StepInfo:
        raise NotImplementedError

    def _perform(self, step: Step) -> Record:
        """Move the clock to the step's due time, perform the attempt and return its record; a retry is the job
        system's business (it enqueues the next attempt)."""
        raise NotImplementedError

    def _settles(self, record: Record) -> bool:
        """Whether the attempt ended its job (succeeded, failed for good, discarded)."""
        raise NotImplementedError

    def _failed_for_good(self, record: Record) -> bool:
        raise NotImplementedError

    # -- what an adapter calls ----------------------------------------------------------------------

    def _enqueued(
        self, job_id: str, name: str, by: str | None = _INFER, *, due: float | None = None, attempt: int | None = None
    ) -> None:
        """Note a job entering the queue and, unless ``by`` says, the job performing here that enqueued it.

        ``due`` is when it may run on the virtual clock (now, unless a countdown, an eta or a retry wait
        says later): given, the job timeline (``clock.timeline``) notes the enqueue, and for a job id seen
        before (a retry) the retry of ``attempt`` (default: the attempt after the one performing it now).
        A job id seen before keeps its first enqueuer; seen again without ``due`` (a job moved from a
        schedule to its queue, a redelivery) it is not noted again."""
        running = _RUNNING.get()
        if job_id in self._enqueuer:
            if due is not None:
                if attempt is None and running is not None and running.info.job_id == job_id:
                    attempt = running.info.attempt + 1
                self._note("retry", self._names[job_id], job_id, attempt, due)
            return
        if by is _INFER:
            by = running.info.job_id if running is not None and running.runner is self else None
        self._enqueuer[job_id] = by if by != job_id else None
        label = self._names[job_id] = short_name(name)
        self._arrivals[job_id] = len(self._arrivals)
        self._note("enqueued", label, job_id, attempt or 1, due)

    def _note(self, kind: str, label: str, job_id: str, attempt: int | None, due: float | None) -> None:
        self._clock.timeline.append(
            TimelineEvent(self._clock.now, kind, label, job_id, attempt, due, "", "", self.label)
        )

    def _exception(self, record: Record) -> BaseException | None:
        """The exception the attempt raised, for the job timeline (default: the record's ``exception``)."""
        exc = getattr(record, "exception", None)
        return exc if isinstance(exc, BaseException) else None

    def _outcome(self, record: Record) -> str:
        """How the job timeline words an attempt's end: ``succeeded``, ``failed`` or ``retried`` by default
        (an adapter whose records say more, ``revoked`` or ``discarded``, gives its own word)."""
        if self._failed_for_good(record):
            return "failed"
        return "succeeded" if self._settles(record) else "retried"

    def _record(self, record: Record) -> None:
        """Keep the record of an attempt performed outside ``drain()``/``perform_one()`` (inline jobs)."""
        self._records.append(record)

    def _chain_message(self, info: StepInfo, attempted: Sequence[str], reason: str, hint: str) -> str:
        """The text of a JobChainError whose next job is ``info``, its chain told from who enqueued whom."""
        ids = self._lineage(info.job_id)
        shown = [(self._names.get(i, info.label) if i != info.job_id else info.label, i) for i in ids[-_SHOWN:]]
        attempt = (info.attempt, info.attempts_allowed or 0)
        return chain_message(shown, len(ids), attempted, reason, hint, attempt)

    @contextmanager
    def _performing(self, info: StepInfo) -> Iterator[None]:
        token = _RUNNING.set(_Running(self, info))
        try:
            yield
        finally:
            _RUNNING.reset(token)

    # -- the machinery ------------------------------------------------------------------------------

    def _run(self, step: Step, info: StepInfo) -> Record:
        __tracebackhide__ = True
        if not (self._open_now or self.drains_when_closed):
            raise RuntimeError(f"{self.label} is not open: use it as a context manager, or call open() first")
        before, noted = self._clock.now, len(self._clock.timeline)
        with self._performing(info):
            record = self._perform(step)
        self._records.append(record)
        self._attempted(info, record, before, noted)
        return record

    def _attempted(self, info: StepInfo, record: Record, before: float, noted: int) -> None:
        """Note the attempt on the job timeline, before what it noted itself (a retry it scheduled)."""
        moment = self._clock.now if info.due is None else max(before, info.due)
        detail = _exception_text(self._exception(record))
        label = self._names.get(info.job_id, info.label)  # as its enqueue named it
        outcome = self._outcome(record)
        event = TimelineEvent(moment, "attempt", label, info.job_id, info.attempt, None, outcome, detail, self.label)
        self._clock.timeline.insert(noted, event)

    def _reported(self, records: Iterable[Record]) -> list[Reported]:
        kept = [record for record in records if self.returns_every_attempt or self._settles(record)]
        return cast("list[Reported]", kept)  # _settles keeps exactly the records of the Reported type

    def _refuse_inside(self, where: str) -> None:
        __tracebackhide__ = True
        running = _RUNNING.get()
        if running is not None and running.runner is self:
            raise RuntimeError(
                f"{where} was called from inside a job it is performing ({running.info.name}); a worker runs"
                " one job at a time: enqueue from the job and drain from the test"
            )

    def _selector(self, only: object) -> Selected | None:
        """What ``drain(only=...)`` performs: the jobs pending now that it names, and their retries (jobs
        enqueued during the drain are not selected, whatever their name). Naming no pending job is an error
        that lists the pending ones."""
        __tracebackhide__ = True
        if only is None:
            return None
        names = list(only) if isinstance(only, (list, tuple, set, frozenset)) else [only]
        for name in names:
            if not _nameable(name):
                raise TypeError(
                    f"{self.label}.drain(): only must be a job name, a job function or class, a pattern, or a"
                    f" list of them; got {_shown(name)}"
                )
        if not names:
            raise ValueError(f"{self.label}.drain(only={only!r}): names no job")

        def named(job_name: str) -> bool:
            return any(job_name_matches(name, job_name) for name in names)

        def selected(job_name: str, job_id: str) -> bool:
            return self._arrivals.get(job_id, -1) < arrived and named(job_name)

        arrived = len(self._arrivals)
        pending = list(self.pending)
        if not any(named(item.name) for item in pending):
            listed = ", ".join(pending_line(item, self._clock) for item in pending[:_SHOWN]) or "none"
            more = f" and {len(pending) - _SHOWN} more" if len(pending) > _SHOWN else ""
            raise ValueError(f"{self.label}.drain(only={only!r}): no pending job matches; pending: {listed}{more}")
        return selected

    def _bound_message(self, info: StepInfo, attempted: Sequence[str], limit: int) -> str:
        """Past ``max_jobs``: a chain where each job enqueued the next, a job retried again and again, or
        simply more jobs than the bound."""
        where = f"{self.label}.drain()"
        if len(self._lineage(info.job_id)) > 1 or info.attempt > 1:
            reason = f"{where} performed max_jobs={limit} attempts"
            hint = f"If it does end, raise the bound: {where[:-1]}max_jobs=N)."
            return self._chain_message(info, attempted, reason, hint)
        pending = list(self.pending)
        count = f"{len(pending)} job{'s' * (len(pending) != 1)}"
        listed = ", ".join(pending_line(item, self._clock) for item in pending[:_SHOWN])
        more = f" and {len(pending) - _SHOWN} more" if len(pending) > _SHOWN else ""
        return "\n".join(
            [
                f"{where}: max_jobs={limit} reached with {count} still pending; call perform_one() to run one"
                " job at a time",
                f"  pending: {listed}{more}",
                attempts_performed(attempted),
                f"If more jobs are meant to run, raise the bound: {where[:-1]}max_jobs=N).",
            ]
        )

    def _lineage(self, job_id: str) -> list[str]:
        """``job_id`` and the jobs that enqueued it, oldest first (a cycle of ids ends the walk)."""
        ids: list[str] = []
        current: str | None = job_id
        while current is not None and current not in ids:
            ids.append(current)
            current = self._enqueuer.get(current)
        return ids[::-1]

    def _raise_failures(self, records: Sequence[Record], expect: bool | None, where: str, remedy: str) -> None:
        __tracebackhide__ = True
        failed: list[Any] = [record for record in records if self._failed_for_good(record)]
        if not failed or (self._expect_failures if expect is None else expect):
            return
        message = failures_message(failed, where, remedy, self._attempt_times(failed))
        raise JobFailedError(message, failed) from failed[0].exception

    def _attempt_times(self, failed: Sequence[Any]) -> dict[str, list[str]]:
        """When each failed job's attempts ran on the clock, as they read (``+1h``), by job id."""
        times: dict[str, list[str]] = {getattr(run, "job_id", ""): [] for run in failed}
        for event in self._clock.timeline:
            if event.kind == "attempt" and event.job_id in times:
                times[event.job_id].append(self._clock.show(event.moment))
        return times


_R = TypeVar("_R", bound=JobRunner[Any, Any, Any])


def _exception_text(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    return clip(f"{type(exc).__qualname__}: {exception_text(exc)}", _MAX_DETAIL)


def due_of(item: object) -> float | None:
    """A pending item's due time on the virtual clock, where it says (``due``); None otherwise."""
    due = getattr(item, "due", None)
    return float(due) if isinstance(due, (int, float)) and not isinstance(due, bool) else None


def pending_line(item: Any, clock: VirtualClock) -> str:
    """How messages list a pending job: ``send_invoice(7)``, and ``(due +1h)`` when it is due later than now."""
    due = due_of(item)
    text: str = item.describe()
    return text if due is None or due <= clock.now else f"{text} (due {clock.show(due)})"


def check_max_jobs(where: str, max_jobs: object, *, allow_none: bool = True) -> int:
    """``max_jobs`` as a positive int, or an error naming the argument and the call."""
    __tracebackhide__ = True
    allowed = "a positive int or None" if allow_none else "a positive int"
    if isinstance(max_jobs, bool) or not isinstance(max_jobs, int):
        raise TypeError(f"{where}: max_jobs must be {allowed}; got {_shown(max_jobs)}")
    if max_jobs < 1:
        raise ValueError(f"{where}: max_jobs must be {allowed}; got {max_jobs!r}")
    return max_jobs


def check_expect_failures(where: str, value: object, *, allow_none: bool = True) -> bool | None:
    __tracebackhide__ = True
    if isinstance(value, bool) or (value is None and allow_none):
        return value
    allowed = "True, False or None" if allow_none else "True or False"
    raise TypeError(f"{where}: expect_failures must be {allowed}; got {_shown(value)}")


def _nameable(name: object) -> bool:
    """Whether ``name`` can name a job as ``job()`` takes it: a string, a pattern, a class, a function or task,
    or a matcher such as dirty-equals' (anything but plain data)."""
    if isinstance(name, (str, re.Pattern)):
        return True
    return name is not None and not isinstance(name, (bool, int, float, complex, bytes, Mapping, list, tuple))


def _shown(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"
