"""``CeleryJobs``: Celery tasks published into memory and performed on the test's thread, on a virtual clock."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import Counter
from types import TracebackType
from typing import Any

from celery.utils.time import maybe_iso8601
from opentelemetry import context as otel_context

from pytest_jobtrace._core.clock import VirtualClock
from pytest_jobtrace._core.errors import JobChainError, JobFailedError, failures_message
from pytest_jobtrace._jobs.names import job_name_matches
from pytest_jobtrace.celery import _state
from pytest_jobtrace.celery._model import PendingTask, TaskRun
from pytest_jobtrace.celery._producer import Envelope, InMemoryProducer
from pytest_jobtrace.celery._worker import InlineWorker, Outcome

DEFAULT_MAX_JOBS = 1000
FIXTURE = "celery_jobs"


class CeleryJobs:
    """Celery's publish and worker paths for one app, with the broker and the worker thread taken out.

    ``apply_async``, ``delay``, ``send_task``, canvas primitives and ``self.retry`` publish through
    Celery's real path into an in-memory queue; :meth:`drain` performs the messages on this thread
    through ``celery.worker.request.Request``, in due order on a virtual clock (countdown, eta and retry
    waits cost no real time). Only exposed for type hints; use the ``celery_jobs`` fixture, or::

        with CeleryJobs(app) as jobs:
            add.delay(2, 3)
            jobs.drain()
    """

    def __init__(
        self,
        app: Any,
        *,
        clock: VirtualClock | None = None,
        provider: Any = None,
        expect_failures: bool = False,
        max_jobs: int = DEFAULT_MAX_JOBS,
        instrument: bool = True,
    ) -> None:
        self.app = app
        self.clock = clock if clock is not None else VirtualClock()  # the fixture passes the test's
        self.expect_failures = expect_failures
        self.max_jobs = max_jobs
        self.instrumented = False
        self._provider = provider
        self._instrument = instrument
        self._queue: list[tuple[float, int, Envelope]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._published_at = threading.local()  # per thread: a web app under test may publish from its own
        self._attempts: Counter[str] = Counter()
        self._runs: list[TaskRun] = []
        self._restorer: _state.Restorer | None = None
        self._worker = InlineWorker(app, self.clock, self._requeue)

    def __enter__(self) -> CeleryJobs:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        if self._restorer is not None:
            raise RuntimeError("this CeleryJobs is already open")
        restorer = self._restorer = _state.Restorer()
        try:
            if self._instrument:
                self.instrumented = _state.instrument(restorer, self._provider)
            _state.as_on_a_worker(restorer, self.app)  # issue 17: eager off, protocol 1 refused
            _state.refuse_other_apps(restorer, self.app)  # issue 17: no other app's publish leaves the test
            _state.keep_broadcasts_in(restorer, self._worker.hostname)  # issue 17: revoke applied in memory
            _state.keep_worker_state(restorer)
            _state.keep_tracers(restorer, self.app)
            _state.make_current(restorer, self.app)
            _state.intercept_producer(restorer, self.app, InMemoryProducer(self._receive))
            _state.watch_publish_time(restorer, self.app, self._published_at)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Restore the app, Celery's module state and the instrumentation as they were before ``open``."""
        restorer, self._restorer = self._restorer, None
        if restorer is not None:
            restorer.restore()

    @property
    def pending(self) -> list[PendingTask]:
        """Published messages not performed yet, in the order they will run."""
        with self._lock:
            queue = sorted(self._queue)
        return [_pending(due, envelope) for due, _, envelope in queue]

    @property
    def runs(self) -> list[TaskRun]:
        """Every task that reached its end, in the order they ended."""
        return list(self._runs)

    @property
    def failed(self) -> list[TaskRun]:
        """Tasks whose last attempt failed (not retried)."""
        return [run for run in self._runs if run.verdict == "failed"]

    def drain(
        self, max_jobs: int | None = None, *, only: object = None, expect_failures: bool | None = None
    ) -> list[TaskRun]:
        """Perform every due and future message, including those they publish and their retries.

        Raises ``JobFailedError`` naming the tasks that failed for good in this drain, unless failures
        are expected. ``only`` restricts the drain to tasks whose name matches (short or dotted).
        """
        __tracebackhide__ = True
        bound = self.max_jobs if max_jobs is None else max_jobs
        ended: list[TaskRun] = []
        performed = 0
        while (envelope := self._next(only)) is not None:
            if performed >= bound:
                self._push_back(envelope)
                raise JobChainError(self._chain_message(bound))
            performed += 1
            run = self._perform(envelope)
            if run.final:
                ended.append(run)
        self._raise_failures(ended, expect_failures)
        return ended

    def perform_one(self, *, expect_failures: bool | None = None) -> TaskRun | None:
        """Perform the next due message only (moving the clock to it); None when nothing is pending."""
        __tracebackhide__ = True
        envelope = self._next(None)
        if envelope is None:
            return None
        run = self._perform(envelope)
        self._raise_failures([run] if run.final else [], expect_failures)
        return run

    def _receive(self, envelope: Envelope) -> None:
        moment = getattr(self._published_at, "moment", None)
        envelope = self._worker.received(envelope, moment)  # issue 17: expires on the virtual clock
        due = self.clock.now + _delay(envelope, moment)
        self._published_at.moment = None
        with self._lock:
            heapq.heappush(self._queue, (due, next(self._seq), envelope))

    def _requeue(self, envelope: Envelope) -> None:
        with self._lock:
            heapq.heappush(self._queue, (self.clock.now, next(self._seq), envelope))

    def _next(self, only: object) -> Envelope | None:
        with self._lock:
            if only is None:
                if not self._queue:
                    return None
                due, _, envelope = heapq.heappop(self._queue)
            else:
                chosen = [item for item in sorted(self._queue) if job_name_matches(only, item[2].task_name)]
                if not chosen:
                    return None
                self._queue.remove(chosen[0])
                heapq.heapify(self._queue)
                due, _, envelope = chosen[0]
        self.clock.advance_to(due)
        return envelope

    def _push_back(self, envelope: Envelope) -> None:
        """Put back a message taken but not performed: first in line again (the clock is at its due time)."""
        with self._lock:
            heapq.heappush(self._queue, (self.clock.now, -next(self._seq), envelope))

    def _perform(self, envelope: Envelope) -> TaskRun:
        __tracebackhide__ = True
        if self._restorer is None:
            raise RuntimeError("CeleryJobs is not open: use it as a context manager, or call open() first")
        self._attempts[envelope.task_id] += 1
        token = otel_context.attach(otel_context.Context())  # a worker starts each message from nothing
        try:
            outcome = self._worker.perform(envelope)
        finally:
            otel_context.detach(token)
        run = _run(envelope, self._attempts[envelope.task_id], outcome)
        if run.final:
            self._runs.append(run)
        return run

    def _raise_failures(self, ended: list[TaskRun], expect_failures: bool | None) -> None:
        __tracebackhide__ = True
        expected = self.expect_failures if expect_failures is None else expect_failures
        failed = [run for run in ended if run.verdict == "failed"]
        if failed and not expected:
            remedy = f"call {FIXTURE}.drain(expect_failures=True)"
            error = JobFailedError(failures_message(failed, f"{FIXTURE}.drain()", remedy), failed)
            raise error from failed[0].exception

    def _chain_message(self, bound: int) -> str:
        counts = Counter(run.name for run in self._runs)
        waiting = ", ".join(p.describe() for p in self.pending[:5])
        return (
            f"{FIXTURE}.drain() performed {bound} messages and more are pending ({waiting}); a chain of tasks"
            f" that publish tasks does not end. Tasks performed so far: "
            + ", ".join(f"{name} x{n}" for name, n in counts.most_common())
            + f". If it does end, raise the bound: {FIXTURE}.drain(max_jobs=N)."
        )


def _delay(envelope: Envelope, published_at: float | None) -> float:
    """Seconds from the publish to the message's eta (0 without one); the virtual clock adds them to its now.

    Measured from the ``app.now()`` Celery added a countdown to (else from when ``send_task`` was
    called), so ``countdown=60`` is 60.0 whatever the publish path cost; rounded to 10 ms.
    """
    eta = envelope.headers.get("eta")
    if not eta:
        return 0.0
    start = published_at if published_at is not None else time.time()
    seconds: float = maybe_iso8601(eta).timestamp() - start  # a naive eta is local time
    return max(0.0, round(seconds, 2))


def _pending(due: float, envelope: Envelope) -> PendingTask:
    headers = envelope.headers
    return PendingTask(
        envelope.task_name,
        envelope.task_id,
        int(headers.get("retries") or 0) + 1,
        due,
        str(headers.get("argsrepr") or ""),
        str(headers.get("kwargsrepr") or ""),
    )


def _run(envelope: Envelope, attempts: int, outcome: Outcome) -> TaskRun:
    headers = envelope.headers
    return TaskRun(
        envelope.task_name,
        envelope.task_id,
        attempts,
        outcome.verdict,
        outcome.exception,
        str(headers.get("argsrepr") or ""),
        str(headers.get("kwargsrepr") or ""),
    )
