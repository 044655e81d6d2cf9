"""Scheduled jobs on the test's virtual clock.

RQ keeps scheduled jobs (``enqueue_in``/``enqueue_at``, retries with an interval) in a sorted set scored by
whole-second real timestamps, and its scheduler moves the due ones to their queue. ``rq_jobs`` notes each
job's delay when it is scheduled, as a virtual due time, and moves due jobs to their queue the way RQ's
scheduler does (``Queue._enqueue_job`` then removal from the registry), advancing the clock instead of
waiting.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol


class Clock(Protocol):
    @property
    def now(self) -> float: ...

    def advance_to(self, moment: float) -> float: ...


class Schedule:
    """Virtual due times of the jobs RQ scheduled while this schedule was installed.

    ``on_enqueue`` hears of every job RQ queues or schedules meanwhile (who enqueued whom, for messages)."""

    def __init__(self, clock: Clock, on_enqueue: Callable[[Any], None] = lambda job: None) -> None:
        self.clock = clock
        self.due: dict[str, tuple[float, int]] = {}
        self._order = itertools.count()
        self._on_enqueue = on_enqueue
        self._originals: dict[str, Callable[..., Any]] = {}

    def install(self) -> None:
        """Note every ``Queue.schedule_job`` call (the one path all of RQ's scheduling takes) and every
        ``Queue._enqueue_job`` (the one path into a queue)."""
        from rq.queue import Queue

        schedule_original, enqueue_original = Queue.schedule_job, Queue._enqueue_job
        schedule = self

        def schedule_job(queue: Any, job: Any, when: datetime, *args: Any, **kwargs: Any) -> Any:
            delay = _snap(when.timestamp() - time.time())
            result = schedule_original(queue, job, when, *args, **kwargs)
            schedule.note(job.id, delay)
            schedule._on_enqueue(job)
            return result

        def _enqueue_job(queue: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
            schedule._on_enqueue(job)
            return enqueue_original(queue, job, *args, **kwargs)

        self._originals = {"schedule_job": schedule_original, "_enqueue_job": enqueue_original}
        Queue.schedule_job = schedule_job  # type: ignore[method-assign, assignment]
        Queue._enqueue_job = _enqueue_job  # type: ignore[method-assign, assignment]

    def uninstall(self) -> None:
        if self._originals:
            from rq.queue import Queue

            for name, original in self._originals.items():
                setattr(Queue, name, original)
            self._originals = {}

    def note(self, job_id: str, delay: float) -> None:
        self.due[job_id] = (self.clock.now + max(0.0, delay), next(self._order))

    def adopt(self, registries: Iterable[Any]) -> None:
        """Take in jobs scheduled before activation (or by another process), from their real timestamps."""
        for registry in registries:
            for raw, score in registry.connection.zrange(registry.key, 0, -1, withscores=True):
                job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
                if job_id not in self.due:
                    self.note(job_id, float(score) - time.time())

    def next_due(self) -> float | None:
        return min((due for due, _ in self.due.values()), default=None)

    def take_due(self) -> list[str]:
        """The ids due at the clock's time, earliest first; they leave the schedule."""
        now = self.clock.now
        ready = sorted((entry, job_id) for job_id, entry in self.due.items() if entry[0] <= now)
        for _, job_id in ready:
            del self.due[job_id]
        return [job_id for _, job_id in ready]


def _snap(delay: float) -> float:
    """The delay RQ meant: it computed ``when`` from its clock a few milliseconds before this hook ran.

    Within 50 ms of a whole second the delay is that second (RQ stores whole seconds anyway); else it
    keeps millisecond precision.
    """
    nearest = round(delay)
    return float(nearest) if abs(delay - nearest) < _SNAP else round(delay, 3)


_SNAP = 0.05


def promote(connection: Any, job_ids: list[str], job_class: Any, serializer: Any, queue_class: Any) -> int:
    """Move due jobs from their scheduled registries to their queues, as ``RQScheduler.enqueue_scheduled_jobs``."""
    jobs = [job for job in job_class.fetch_many(job_ids, connection=connection, serializer=serializer) if job]
    moved = 0
    with connection.pipeline() as pipeline:
        for job in jobs:
            queue = queue_class(job.origin, connection=connection, job_class=job_class, serializer=serializer)
            registry = queue.scheduled_job_registry
            if connection.zscore(registry.key, job.id) is None:
                continue  # canceled or moved by someone else meanwhile
            queue._enqueue_job(job, pipeline=pipeline, at_front=job.should_enqueue_at_front())
            registry.remove(job.id, pipeline=pipeline)
            moved += 1
        pipeline.execute()
    return moved
