"""``RQRuntime``: RQ jobs run for a test through RQ's own worker code, in the test's thread.

One ``SimpleWorker`` is made per runtime and reused: each step dequeues the next job with
``Queue.dequeue_any`` and hands it to ``SimpleWorker.execute_job``, the very calls ``work(burst=True)`` makes,
without registering a worker, installing signal handlers or polling per job. Failure handling, retries
(``Retry(max, interval)``, jobs returning ``Retry``), callbacks and dependents are RQ's own; scheduled
jobs become due on the virtual clock (``_schedule``).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from pytest_jobtrace.rq._connection import Lease, open_connection
from pytest_jobtrace.rq._errors import JobChainError, JobFailedError, chain_message, failures_message, job_name_matches
from pytest_jobtrace.rq._names import META_ATTEMPT
from pytest_jobtrace.rq._records import PendingRQJob, RQRun
from pytest_jobtrace.rq._schedule import Clock, Schedule, promote

_WHERE = "rq_jobs.drain()"
_CHAIN_SHOWN = 10


class _OwnClock:
    """The clock of a runtime used outside pytest-jobtrace's fixtures."""

    def __init__(self) -> None:
        self._now = 0.0

    @property
    def now(self) -> float:
        return self._now

    def advance_to(self, moment: float) -> float:
        self._now = max(self._now, moment)
        return self._now


class RQRuntime:
    """RQ queues on their own Redis, drained on the calling thread through RQ's worker code path.

    ``with RQRuntime() as rt:`` then ``q = rt.queue()``, ``q.enqueue(...)``, ``rt.drain()``. ``redis_url``
    picks a real Redis (an empty database of its own, cleaned at ``close()``), else an embedded fakeredis.
    ``instrument`` turns on :class:`~pytest_jobtrace.rq.instrumentation.RQInstrumentor` for the runtime's life
    unless RQ is instrumented already. ``max_jobs`` bounds one drain; ``expect_failures`` is drain()'s default.
    """

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        clock: Clock | None = None,
        expect_failures: bool = False,
        max_jobs: int = 1000,
        instrument: bool = True,
        tracer_provider: Any = None,
    ) -> None:
        self.clock: Clock = clock if clock is not None else _OwnClock()
        self._redis_url, self._expect_failures, self._max_jobs = redis_url, expect_failures, max_jobs
        self._instrument, self._tracer_provider = instrument, tracer_provider
        self._lease: Lease | None = None
        self._schedule = Schedule(self.clock)
        self._queues: dict[str, Any] = {}
        self._worker: Any = None
        self._instrumentor: Any = None
        self._exceptions: dict[str, BaseException] = {}
        self._performed: list[RQRun] = []
        self._left: list[PendingRQJob] | None = None
        self._registries_read: set[str] = set()
        self.chain_error: JobChainError | None = None
        """The JobChainError a drain raised, if any (its jobs are left pending on purpose)."""

    # -- life cycle -------------------------------------------------------------------------------

    def __enter__(self) -> RQRuntime:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        from pytest_jobtrace.rq.instrumentation import RQInstrumentor, third_party_active

        self._lease = open_connection(self._redis_url)
        if self._instrument and not RQInstrumentor().is_instrumented_by_opentelemetry and not third_party_active():
            self._instrumentor = RQInstrumentor()
            self._instrumentor.instrument(tracer_provider=self._tracer_provider)
        self._schedule.install()

    def close(self) -> None:
        """Restore RQ (the schedule hook, then the instrumentation it wraps) and give the Redis database back."""
        if self._lease is not None and self._left is None:
            self._left = self.pending  # what teardown reports; the Redis behind it goes away below
        self._schedule.uninstall()
        if self._instrumentor is not None:
            self._instrumentor.uninstrument()
            self._instrumentor = None
        if self._lease is not None:
            lease, self._lease = self._lease, None
            lease.close()

    @property
    def connection(self) -> Any:
        """The Redis connection every queue of this runtime uses."""
        if self._lease is None:
            raise RuntimeError("RQRuntime is not open: use `with RQRuntime() as rt:` (or the rq_jobs fixture)")
        return self._lease.connection

    def queue(self, name: str = "default", **kwargs: Any) -> Any:
        """A real ``rq.Queue`` on this runtime's connection; ``kwargs`` go to ``Queue()``."""
        from rq import Queue

        queue = Queue(name, connection=self.connection, **kwargs)
        self._queues.setdefault(name, queue)
        return queue

    # -- running jobs -----------------------------------------------------------------------------

    def drain(
        self, max_jobs: int | None = None, *, only: object = None, expect_failures: bool | None = None
    ) -> list[RQRun]:
        """Run every queued and scheduled job, the jobs they enqueue, their retries and dependents.

        Returns one record per execution. Raises ``JobFailedError`` afterwards if a job failed for good
        (unless ``expect_failures``), ``JobChainError`` past ``max_jobs`` executions.
        """
        __tracebackhide__ = True
        bound = self._max_jobs if max_jobs is None else max_jobs
        selection = _Selection.check(self, only) if only is not None else None
        runs: list[RQRun] = []
        while True:
            step = self._next(selection)
            if step is None:
                break
            if len(runs) >= bound:
                self._return(*step)
                self.chain_error = JobChainError(self._chain_message(runs, step[0], bound))
                raise self.chain_error
            before = selection.snapshot(self) if selection is not None else set()
            runs.append(self._execute(*step))
            if selection is not None:
                selection.learn(self, runs[-1], before)
        self._raise_failures(runs, expect_failures, _WHERE)
        return runs

    def perform_one(self, *, expect_failures: bool | None = None) -> RQRun:
        """Run the next due job only (moving the clock to it if it is scheduled)."""
        __tracebackhide__ = True
        step = self._next(None)
        if step is None:
            raise LookupError("rq_jobs.perform_one(): no RQ job is queued or scheduled")
        run = self._execute(*step)
        self._raise_failures([run], expect_failures, "rq_jobs.perform_one()")
        return run

    @property
    def performed(self) -> list[RQRun]:
        """Every execution so far, in order."""
        return list(self._performed)

    @property
    def failed(self) -> list[RQRun]:
        """The executions after which a job had failed for good (``failed``, or ``stopped``)."""
        return [run for run in self._performed if run.failed_for_good]

    @property
    def pending(self) -> list[PendingRQJob]:
        """Queued jobs in run order, then scheduled ones by due time (deferred dependents are not listed).

        After ``close()``, the jobs that were pending then."""
        from rq.job import Job

        if self._left is not None:
            return list(self._left)

        self._adopt()
        found: list[PendingRQJob] = []
        for queue in self._all_queues():
            for job in queue.get_jobs():
                found.append(PendingRQJob(str(job.func_name), job.id, queue.name, _description(job)))
        ordered = sorted(self._schedule.due.items(), key=lambda item: item[1])
        ids = [job_id for job_id, _ in ordered]
        for job, (job_id, (due, _)) in zip(Job.fetch_many(ids, connection=self.connection), ordered):
            if job is not None:
                found.append(PendingRQJob(str(job.func_name), job_id, job.origin, _description(job), due))
        return found

    # -- one step ---------------------------------------------------------------------------------

    def _next(self, selection: _Selection | None) -> tuple[Any, Any] | None:
        """The next job to run and its queue, taken off the queue; promotes scheduled jobs as they fall due."""
        while True:
            self._promote_due()
            step = selection.take(self) if selection is not None else self._dequeue()
            if step is not None:
                return step
            if self._adopt():
                continue  # a job enqueued on a queue this runtime had not seen yet
            due = self._schedule.next_due()
            if due is None or (selection is not None and not selection.wants_scheduled(self)):
                return None
            self.clock.advance_to(due)

    def _dequeue(self) -> tuple[Any, Any] | None:
        worker = self._worker_for_step()
        return worker.queue_class.dequeue_any(  # type: ignore[no-any-return]
            worker.queues,
            None,
            connection=self.connection,
            job_class=worker.job_class,
            serializer=worker.serializer,
            death_penalty_class=worker.death_penalty_class,
        )

    def _promote_due(self) -> None:
        ids = self._schedule.take_due()
        if ids:
            worker = self._worker_for_step()
            promote(self.connection, ids, worker.job_class, worker.serializer, worker.queue_class)

    def _execute(self, job: Any, queue: Any) -> RQRun:
        worker = self._worker_for_step()
        attempt = (job.meta or {}).get(META_ATTEMPT, 1)
        self._exceptions.pop(job.id, None)
        worker.execute_job(job, queue)
        status = job.get_status(refresh=False)
        run = RQRun(
            job=job,
            job_id=job.id,
            name=str(job.func_name),
            description=_description(job),
            queue=queue.name,
            attempt=attempt if isinstance(attempt, int) else 1,
            status=str(getattr(status, "value", status)),
            exception=self._exceptions.pop(job.id, None),
            at=self.clock.now,
        )
        self._performed.append(run)
        return run

    def _return(self, job: Any, queue: Any) -> None:
        """Put back a job taken off its queue but not run (a drain stopping at its bound)."""
        queue.push_job_id(job.id, at_front=True)

    # -- the worker and the queues it listens to ---------------------------------------------------

    def _worker_for_step(self) -> Any:
        from rq import SimpleWorker
        from rq.timeouts import TimerDeathPenalty, UnixSignalDeathPenalty

        if self._worker is None:
            self._worker = SimpleWorker(self._all_queues() or [self.queue()], connection=self.connection)
            self._worker.push_exc_handler(self._note_exception)
        # SIGALRM, RQ's default job timeout, works on the main thread only.
        on_main = threading.current_thread() is threading.main_thread()
        self._worker.death_penalty_class = UnixSignalDeathPenalty if on_main else TimerDeathPenalty
        return self._worker

    def _note_exception(self, job: Any, exc_type: Any, exc_value: Any, tb: Any) -> bool:
        if isinstance(exc_value, BaseException):
            self._exceptions[job.id] = exc_value
        return True

    def _all_queues(self) -> list[Any]:
        return list(self._queues.values())

    def _adopt(self) -> bool:
        """Listen to queues created on this connection by other code too (a job enqueuing on another queue).

        Returns whether a queue was new."""
        from rq import Queue

        known = len(self._queues)
        for queue in sorted(Queue.all(connection=self.connection), key=lambda q: q.name):
            self._queues.setdefault(queue.name, queue)
        if self._worker is not None and len(self._worker.queues) != len(self._queues):
            self._worker.queues = self._all_queues()
            self._worker._ordered_queues = list(self._worker.queues)
        # Jobs scheduled while this runtime is open are noted as RQ schedules them; a queue's registry is read
        # once, for what was scheduled before (or by another process).
        fresh = [queue for name, queue in self._queues.items() if name not in self._registries_read]
        self._registries_read.update(queue.name for queue in fresh)
        self._schedule.adopt(queue.scheduled_job_registry for queue in fresh)
        return len(self._queues) > known

    # -- failures -----------------------------------------------------------------------------------

    def _raise_failures(self, runs: list[RQRun], expect_failures: bool | None, where: str) -> None:
        __tracebackhide__ = True
        failed = [run for run in runs if run.failed_for_good]
        expect = self._expect_failures if expect_failures is None else expect_failures
        if failed and not expect:
            message = failures_message(failed, where, f"pass {where[:-1]}expect_failures=True)")
            raise JobFailedError(message, failed) from failed[0].exception

    def _chain_message(self, runs: list[RQRun], next_job: Any, bound: int) -> str:
        shown = [(run.name, run.job_id) for run in runs[-_CHAIN_SHOWN + 1 :]]
        shown.append((str(next_job.func_name), next_job.id))
        return chain_message(
            shown,
            len(runs) + 1,
            (run.name for run in runs),
            f"{_WHERE} ran {bound} jobs and more are queued",
            "If the chain does end, raise the bound: rq_jobs.drain(max_jobs=N).",
        )


class _Selection:
    """``drain(only=...)``: the named jobs, then the jobs they enqueue (and their retries)."""

    def __init__(self, only: object) -> None:
        self.names = list(only) if isinstance(only, (list, tuple, set, frozenset)) else [only]
        self.ids: set[str] = set()

    @classmethod
    def check(cls, runtime: RQRuntime, only: object) -> _Selection:
        """The selection; naming no pending job is an error that lists the pending ones."""
        __tracebackhide__ = True
        selection = cls(only)
        pending = runtime.pending
        if not any(selection.named(item.name) for item in pending):
            shown = ", ".join(item.describe() for item in pending[:10]) or "none"
            raise ValueError(f"rq_jobs.drain(only={only!r}): no pending job matches; pending: {shown}")
        return selection

    def named(self, name: str) -> bool:
        return any(job_name_matches(expected, name) for expected in self.names)

    def matches(self, job: Any) -> bool:
        return job.id in self.ids or self.named(str(job.func_name))

    def take(self, runtime: RQRuntime) -> tuple[Any, Any] | None:
        for queue in runtime._all_queues():
            for job in queue.get_jobs():
                if self.matches(job):
                    queue.remove(job.id)
                    return job, queue
        return None

    def wants_scheduled(self, runtime: RQRuntime) -> bool:
        from rq.job import Job

        ids = list(runtime._schedule.due)
        return any(job is not None and self.matches(job) for job in Job.fetch_many(ids, connection=runtime.connection))

    def snapshot(self, runtime: RQRuntime) -> set[str]:
        return {p.job_id for p in runtime.pending}

    def learn(self, runtime: RQRuntime, run: RQRun, before: set[str]) -> None:
        """Jobs that appeared while the selected job ran are its children: they run too."""
        self.ids.add(run.job_id)
        self.ids |= self.snapshot(runtime) - before


def _description(job: Any) -> str:
    try:
        return str(job.description)
    except Exception:  # a job whose function cannot be loaded
        return str(job.id)
