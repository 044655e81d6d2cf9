"""``RQRuntime``: RQ jobs run for a test through RQ's own worker code, in the test's thread.

One ``SimpleWorker`` is made per runtime and reused: each step dequeues the next job with
``Queue.dequeue_any`` and hands it to ``SimpleWorker.execute_job``, the very calls ``work(burst=True)`` makes,
without registering a worker, installing signal handlers or polling per job. Failure handling, retries
(``Retry(max, interval)``, jobs returning ``Retry``), callbacks and dependents are RQ's own; scheduled
jobs become due on the virtual clock (``_schedule``).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pytest_jobtrace.adapters import JobRunner, Selected, StepInfo, VirtualClock, instrument_for_test
from pytest_jobtrace.rq._connection import Lease, open_connection
from pytest_jobtrace.rq._names import META_ATTEMPT
from pytest_jobtrace.rq._records import PendingRQJob, RQRun
from pytest_jobtrace.rq._schedule import Schedule, promote

_OUTCOMES = {"finished": "succeeded"}  # RQ's statuses after an execution, as the job timeline words them
_Step = tuple[Any, Any]
"""A job taken off its queue, and that queue."""


class RQRuntime(JobRunner[_Step, RQRun, RQRun]):
    """RQ queues on their own Redis, drained on the calling thread through RQ's worker code path.

    ``with RQRuntime() as rt:`` then ``q = rt.queue()``, ``q.enqueue(...)``, ``rt.drain()``. ``redis_url``
    picks a real Redis (an empty database of its own, cleaned at ``close()``), else an embedded fakeredis.
    ``instrument`` turns on :class:`~pytest_jobtrace.rq.instrumentation.RQInstrumentor` for the runtime's life
    unless RQ is instrumented already. ``max_jobs`` bounds one drain; ``expect_failures`` is drain()'s default.
    """

    returns_every_attempt = True  # drain() and performed give one RQRun per execution

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        clock: VirtualClock | None = None,
        expect_failures: bool = False,
        max_jobs: int = 1000,
        instrument: bool = True,
        tracer_provider: Any = None,
    ) -> None:
        super().__init__(clock=clock, max_jobs=max_jobs, expect_failures=expect_failures)
        self._redis_url = redis_url
        self._instrument, self._tracer_provider = instrument, tracer_provider
        self._lease: Lease | None = None
        self._schedule = Schedule(self.clock, self._heard_of)
        self._queues: dict[str, Any] = {}
        self._workers: dict[tuple[Any, Any], Any] = {}  # (job class, serializer) -> the worker for such queues
        self._worker_class: Any = None
        self._worker_options: dict[str, Any] = {}
        self._origins: dict[str, str] = {}  # job id -> its queue's name, for jobs on the schedule
        self._deadlines: dict[str, float] = {}  # job id -> virtual time its ttl runs out while it waits
        self._instrumentor: Any = None
        self._exceptions: dict[str, BaseException] = {}
        self._left: list[PendingRQJob] | None = None
        self._registries_read: set[str] = set()
        self._promoting = False

    # -- life cycle -------------------------------------------------------------------------------

    def _open(self) -> None:
        from pytest_jobtrace.rq.instrumentation import RQInstrumentor, third_party_active

        self._left = None
        self._lease = open_connection(self._redis_url)
        if self._instrument and not RQInstrumentor().is_instrumented_by_opentelemetry and not third_party_active():
            self._instrumentor = RQInstrumentor()
            instrument_for_test(self._instrumentor, tracer_provider=self._tracer_provider)
        self._schedule.install()

    def _close(self) -> None:
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

    def use_worker(self, worker_class: Any = None, **options: Any) -> None:
        """Drain with ``worker_class`` (default ``rq.SimpleWorker``) made with ``options``, as production makes
        its worker: ``exception_handlers=[...]``, ``disable_default_exception_handler=True``...

        Jobs run in the test's process whatever the class: a forking class (``rq.Worker`` or a subclass) runs
        them through ``SimpleWorker.execute_job``, its other methods as written. Serializer and job class come
        from each queue (``rq_jobs.queue(name, serializer=..., job_class=...)``), as a worker started for that
        queue with ``--serializer``/``--job-class`` would have them.
        """
        from rq import SimpleWorker
        from rq.worker import BaseWorker

        if worker_class is not None and not (isinstance(worker_class, type) and issubclass(worker_class, BaseWorker)):
            raise TypeError(f"{self.label}.use_worker(): worker_class must be an RQ worker class; got {worker_class!r}")
        for reserved in ("queues", "connection", "serializer", "job_class"):
            if reserved in options:
                raise TypeError(
                    f"{self.label}.use_worker(): {reserved}= is the runtime's to set (queues and the connection are"
                    " the runtime's; serializer and job_class come from each queue)"
                )
        chosen = worker_class or SimpleWorker
        if not issubclass(chosen, SimpleWorker):  # in-process, like SimpleWorker; the class's other methods kept
            chosen = type(chosen.__name__, (SimpleWorker, chosen), {})
        self._worker_class, self._worker_options, self._workers = chosen, dict(options), {}

    @property
    def pending(self) -> list[PendingRQJob]:
        """Queued jobs in run order, then scheduled ones by due time (deferred dependents are not listed).

        After ``close()``, the jobs that were pending then."""
        from rq.job import Job

        if self._left is not None:
            return list(self._left)

        self._expire()
        self._adopt()
        found: list[PendingRQJob] = []
        for queue in self._listened():
            for job in _queued(queue):
                found.append(PendingRQJob(str(job.func_name), job.id, queue.name, _description(job)))
        ordered = sorted(self._schedule.due.items(), key=lambda item: item[1])
        ids = [job_id for job_id, _ in ordered]
        for job, (job_id, (due, _)) in zip(Job.fetch_many(ids, connection=self.connection), ordered):
            if job is not None:
                found.append(PendingRQJob(str(job.func_name), job_id, job.origin, _description(job), due))
        return found

    # -- the runner's steps -------------------------------------------------------------------------

    def _take(self, selected: Selected | None) -> _Step | None:
        """The next job to run and its queue, taken off the queue; promotes scheduled jobs as they fall due."""
        while True:
            self._expire()
            self._promote_due()
            step = self._dequeue() if selected is None else self._dequeue_selected(selected)
            if step is not None:
                return step
            if self._adopt():
                continue  # a job enqueued on a queue this runtime had not seen yet
            due = self._schedule.next_due()
            if due is None or (selected is not None and not self._scheduled_selected(selected)):
                return None
            self.clock.advance_to(due)

    def _put_back(self, step: _Step) -> None:
        """Put back a job taken off its queue but not run (a drain stopping at its bound)."""
        job, queue = step
        queue.push_job_id(job.id, at_front=True)

    def _expire(self) -> None:
        """Jobs whose ``ttl`` ran out on the virtual clock while they waited go, as Redis expires their key
        in real time: RQ's own code then skips them (a queued id without a job) or finds nothing to promote."""
        if not self._deadlines:
            return
        from rq.job import Job

        now = self.clock.now
        gone = [job_id for job_id, deadline in self._deadlines.items() if deadline <= now]
        for job_id in gone:
            del self._deadlines[job_id]
            job = Job(job_id, connection=self.connection)
            self.connection.delete(job.key, job.dependents_key, job.dependencies_key)

    def _about(self, step: _Step) -> StepInfo:
        job = step[0]
        return StepInfo(str(job.func_name), job.id, _attempt(job))

    def _perform(self, step: _Step) -> RQRun:
        job, queue = step
        self._deadlines.pop(job.id, None)  # taken in time: its ttl no longer runs (RQ's result ttl takes over)
        worker = self._worker_for(queue)
        attempt = _attempt(job)
        self._exceptions.pop(job.id, None)
        with _alarm_kept():
            worker.execute_job(job, queue)
        status = job.get_status(refresh=False)
        return RQRun(
            job=job,
            job_id=job.id,
            name=str(job.func_name),
            description=_description(job),
            queue=queue.name,
            attempt=attempt,
            status=str(getattr(status, "value", status)),
            exception=self._exceptions.pop(job.id, None),
            at=self.clock.now,
        )

    def _settles(self, record: RQRun) -> bool:
        return not record.retried

    def _failed_for_good(self, record: RQRun) -> bool:
        return record.failed_for_good

    def _outcome(self, record: RQRun) -> str:
        return "retried" if record.retried else _OUTCOMES.get(record.status, record.status)

    # -- queues, the schedule and the worker --------------------------------------------------------

    def _dequeue(self) -> _Step | None:
        """The first job of the first non-empty queue, in the order a worker listens to them, read with that
        queue's job class and serializer."""
        for queue in self._listened():
            worker = self._worker_for(queue)
            step = worker.queue_class.dequeue_any(
                [queue],
                None,
                connection=self.connection,
                job_class=worker.job_class,
                serializer=worker.serializer,
                death_penalty_class=worker.death_penalty_class,
            )
            if step is not None:
                return step  # type: ignore[no-any-return]
        return None

    def _dequeue_selected(self, selected: Selected) -> _Step | None:
        for queue in self._listened():
            for job in _queued(queue):
                if selected(str(job.func_name), job.id):
                    queue.remove(job.id)
                    return job, queue
        return None

    def _scheduled_selected(self, selected: Selected) -> bool:
        from rq.job import Job

        jobs = Job.fetch_many(list(self._schedule.due), connection=self.connection)
        return any(job is not None and selected(str(job.func_name), job.id) for job in jobs)

    def _promote_due(self) -> None:
        by_queue: dict[str, list[str]] = {}
        for job_id in self._schedule.take_due():
            by_queue.setdefault(self._origins.get(job_id, "default"), []).append(job_id)
        self._promoting = True  # a due job moved to its queue: enqueued and due before, not again
        try:
            for name, ids in by_queue.items():
                worker = self._worker_for(self._queues.get(name) or self.queue(name))
                promote(self.connection, ids, worker.job_class, worker.serializer, worker.queue_class)
        finally:
            self._promoting = False

    def _heard_of(self, job: Any) -> None:
        """RQ queued or scheduled ``job``: note its queue, who enqueued it, and when its ``ttl`` runs out (RQ
        sets the key's expiry anew each time it queues or schedules the job).

        A queue first heard of here is drained with this job's serializer and class: a queue the test built
        itself (``Queue("q", connection=rq_jobs.connection, serializer=JSONSerializer)``) stores jobs so, and
        a worker started for it would be given them."""
        if job.origin not in self._queues:
            self.queue(job.origin, serializer=job.serializer, job_class=type(job))
        self._origins[job.id] = job.origin
        scheduled = self._schedule.due.get(job.id)
        due = None if self._promoting else scheduled[0] if scheduled is not None else self.clock.now
        self._enqueued(job.id, str(job.func_name), due=due)
        if job.ttl is not None and job.ttl > 0:
            self._deadlines[job.id] = self.clock.now + job.ttl
        else:
            self._deadlines.pop(job.id, None)

    def _worker_for(self, queue: Any) -> Any:
        """The worker for ``queue``: one per job class and serializer, as a deployment runs one per setting."""
        from rq import SimpleWorker
        from rq.timeouts import TimerDeathPenalty, UnixSignalDeathPenalty

        key = (queue.job_class, queue.serializer)
        worker = self._workers.get(key)
        if worker is None:
            worker_class = self._worker_class or SimpleWorker
            worker = worker_class(
                [queue],
                connection=self.connection,
                job_class=queue.job_class,
                serializer=queue.serializer,
                **self._worker_options,
            )
            worker.handle_exception = self._noting(worker.handle_exception)  # type: ignore[method-assign]
            self._workers[key] = worker
        # SIGALRM, RQ's default job timeout, works on the main thread only.
        on_main = threading.current_thread() is threading.main_thread()
        worker.death_penalty_class = UnixSignalDeathPenalty if on_main else TimerDeathPenalty
        return worker

    def _noting(self, handle_exception: Callable[..., Any]) -> Callable[..., Any]:
        """The worker's ``handle_exception``, noting the job's exception first (before the user's handlers,
        any of which may end the chain)."""

        def noted(job: Any, *exc_info: Any) -> Any:
            if len(exc_info) > 1 and isinstance(exc_info[1], BaseException):
                self._exceptions[job.id] = exc_info[1]
            return handle_exception(job, *exc_info)

        return noted

    def _all_queues(self) -> list[Any]:
        return list(self._queues.values())

    def _listened(self) -> list[Any]:
        """The queues drained and listed, in order: with none known yet, ``default``, as ``rq worker`` without
        queue names listens to it (a job pushed there without RQ registering the queue is found too)."""
        return self._all_queues() or [self.queue()]

    def _adopt(self) -> bool:
        """Listen to queues created on this connection by other code too (a job enqueuing on another queue).

        Returns whether a queue was new."""
        from rq import Queue

        known = len(self._queues)
        for queue in sorted(Queue.all(connection=self.connection), key=lambda q: q.name):
            self._queues.setdefault(queue.name, queue)
        # Jobs scheduled while this runtime is open are noted as RQ schedules them; a queue's registry is read
        # once, for what was scheduled before (or by another process).
        fresh = [queue for name, queue in self._queues.items() if name not in self._registries_read]
        self._registries_read.update(queue.name for queue in fresh)
        for queue in fresh:  # scheduled before activation: promoted with their own queue's serializer
            for job_id in queue.scheduled_job_registry.get_job_ids():
                self._origins.setdefault(job_id, queue.name)
        self._schedule.adopt(queue.scheduled_job_registry for queue in fresh)
        return len(self._queues) > known


@contextmanager
def _alarm_kept() -> Iterator[None]:
    """Give back SIGALRM's handler and timer after a job: RQ's job timeout (SIGALRM, on the main thread) ends
    with ``alarm(0)`` and the default handler, which would cancel pytest-timeout's timer and more."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGALRM)
    delay, interval = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    try:
        yield
    finally:
        if handler is not None:  # None: set outside Python, cannot be put back
            signal.signal(signal.SIGALRM, handler)
        if delay > 0:  # a timer that should have fired meanwhile fires at once
            signal.setitimer(signal.ITIMER_REAL, max(delay - (time.monotonic() - started), 0.001), interval)


def _queued(queue: Any) -> list[Any]:
    """The jobs on ``queue`` in order, as ``dequeue_any`` takes them: every id whose job exists, whatever the
    job's ``origin`` (``Queue.get_jobs`` leaves out a job whose origin names another queue; the worker runs it)."""
    from rq.exceptions import NoSuchJobError

    jobs = []
    for job_id in queue.get_job_ids():
        try:
            jobs.append(queue.job_class.fetch(job_id, connection=queue.connection, serializer=queue.serializer))
        except NoSuchJobError:
            continue  # expired or deleted: the worker skips it too
    return jobs


def _attempt(job: Any) -> int:
    attempt = (job.meta or {}).get(META_ATTEMPT, 1)
    return attempt if isinstance(attempt, int) else 1


def _description(job: Any) -> str:
    try:
        return str(job.description)
    except Exception:  # a job whose function cannot be loaded
        return str(job.id)
