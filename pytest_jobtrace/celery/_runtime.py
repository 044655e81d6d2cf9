"""``CeleryJobs``: Celery tasks published into memory and performed on the test's thread, on a virtual clock."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any

from celery.exceptions import Retry
from celery.utils.time import maybe_iso8601
from opentelemetry import context as otel_context

from pytest_jobtrace.adapters import JobRunner, Selected, StepInfo, VirtualClock
from pytest_jobtrace.celery import _state
from pytest_jobtrace.celery._model import PendingTask, TaskRun
from pytest_jobtrace.celery._producer import Envelope, InMemoryProducer
from pytest_jobtrace.celery._worker import InlineWorker, Outcome

DEFAULT_MAX_JOBS = 1000


_Entry = tuple[float, int, Envelope]
"""A queued message: its due time on the virtual clock, its place in line, the message."""


class CeleryJobs(JobRunner[_Entry, TaskRun, TaskRun]):
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
        super().__init__(clock=clock, max_jobs=max_jobs, expect_failures=expect_failures)
        self.app = app
        self.instrumented = False
        self._provider = provider
        self._instrument = instrument
        self._queue: list[_Entry] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._published_at = threading.local()  # per thread: a web app under test may publish from its own
        self._attempts: dict[str, int] = {}
        self._restorer: _state.Restorer | None = None
        self._worker = InlineWorker(app, self.clock, self._requeue)

    def _open(self) -> None:
        restorer = self._restorer = _state.Restorer()
        if self._instrument:
            self.instrumented = _state.instrument(restorer, self._provider)
        _state.as_on_a_worker(restorer, self.app)  # eager mode off, protocol 1 refused
        _state.refuse_other_apps(restorer, self.app)  # no other app's publish leaves the test's process
        _state.keep_broadcasts_in(restorer, self._worker.hostname)  # revoke() applied in memory
        _state.keep_worker_state(restorer)
        _state.keep_tracers(restorer, self.app)
        _state.make_current(restorer, self.app)
        _state.intercept_producer(restorer, self.app, InMemoryProducer(self._receive))
        _state.watch_publish_time(restorer, self.app, self._published_at)

    def _close(self) -> None:
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
        """Every task that reached its end, in the order they ended (the same as ``performed``)."""
        return self.performed

    # -- the runner's steps -------------------------------------------------------------------------

    def _take(self, selected: Selected | None) -> _Entry | None:
        with self._lock:
            if selected is None:
                return heapq.heappop(self._queue) if self._queue else None
            entry = min((item for item in self._queue if selected(item[2].task_name, item[2].task_id)), default=None)
            if entry is not None:
                self._queue.remove(entry)
                heapq.heapify(self._queue)
            return entry

    def _put_back(self, entry: _Entry) -> None:
        """First in line again, at the due time it had."""
        with self._lock:
            heapq.heappush(self._queue, (entry[0], -next(self._seq), entry[2]))

    def _about(self, entry: _Entry) -> StepInfo:
        envelope = entry[2]
        attempt = int(envelope.headers.get("retries") or 0) + 1
        return StepInfo(envelope.task_name, envelope.task_id, attempt, due=entry[0])

    def _perform(self, entry: _Entry) -> TaskRun:
        __tracebackhide__ = True
        due, _, envelope = entry
        self.clock.advance_to(due)
        attempts = self._attempts[envelope.task_id] = self._attempts.get(envelope.task_id, 0) + 1
        token = otel_context.attach(otel_context.Context())  # a worker starts each message from nothing
        try:
            outcome = self._worker.perform(envelope)
        finally:
            otel_context.detach(token)
        return _run(envelope, attempts, outcome)

    def _settles(self, record: TaskRun) -> bool:
        return record.final

    def _failed_for_good(self, record: TaskRun) -> bool:
        return record.verdict == "failed"

    def _outcome(self, record: TaskRun) -> str:
        return record.verdict

    def _exception(self, record: TaskRun) -> BaseException | None:
        """A retried attempt's own exception rather than Celery's ``Retry`` carrying it."""
        exc = record.exception
        return exc.exc if isinstance(exc, Retry) and isinstance(exc.exc, BaseException) else exc

    # -- messages in --------------------------------------------------------------------------------

    def _receive(self, envelope: Envelope) -> None:
        moment = getattr(self._published_at, "moment", None)
        envelope = self._worker.received(envelope, moment)  # its expiry moved onto the virtual clock
        due = self.clock.now + _delay(envelope, moment)
        self._published_at.moment = None
        self._enqueued(envelope.task_id, envelope.task_name, due=due)
        with self._lock:
            heapq.heappush(self._queue, (due, next(self._seq), envelope))

    def _requeue(self, envelope: Envelope) -> None:
        with self._lock:
            heapq.heappush(self._queue, (self.clock.now, next(self._seq), envelope))


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
