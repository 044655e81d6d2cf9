"""What activating ``celery_jobs`` changes outside its own objects, and how each change is undone.

Celery keeps worker bookkeeping in module globals (``celery.worker.state``), the current app in a
thread-local, and each task's compiled tracer on the task; the instrumentation is a process-wide
singleton. A test must leave all of them as it found them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from celery import _state as celery_state
from celery.worker import state as worker_state

_MAPPINGS = ("requests", "total_count", "revoked_stamps")
_SETS = ("reserved_requests", "active_requests", "scheduled_requests", "successful_requests", "revoked")


class Restorer:
    """Applies changes and remembers how to undo them, last change first."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def add(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


def intercept_producer(restorer: Restorer, app: Any, producer: object) -> None:
    """Every publish through ``app`` without an explicit producer goes to ``producer``."""
    had_own = "producer_or_acquire" in vars(app)
    previous = vars(app).get("producer_or_acquire")

    def producer_or_acquire(given: object = None) -> nullcontext[object]:
        return nullcontext(given if given is not None else producer)

    app.producer_or_acquire = producer_or_acquire

    def undo() -> None:
        if had_own:
            app.producer_or_acquire = previous
        else:
            del app.producer_or_acquire

    restorer.add(undo)


def watch_publish_time(restorer: Restorer, app: Any, seen: threading.local) -> None:
    """Keep in ``seen.moment`` (a POSIX timestamp) when the current thread's publish started, by Celery's clock.

    ``send_task`` sets it on entry; each ``app.now()`` during the publish moves it to that reading, the
    one Celery adds a countdown to when it computes the message's eta.
    """
    send_task, now = app.send_task, app.now

    def watched_send_task(*args: Any, **kwargs: Any) -> Any:
        seen.moment = time.time()
        return send_task(*args, **kwargs)

    def watched_now() -> datetime:
        reading: datetime = now()
        seen.moment = reading.timestamp()
        return reading

    app.send_task, app.now = watched_send_task, watched_now

    def undo() -> None:
        vars(app).pop("send_task", None)
        vars(app).pop("now", None)

    restorer.add(undo)


def make_current(restorer: Restorer, app: Any) -> None:
    """``trace_task`` and the instrumentation look tasks up on ``current_app``, as on a worker."""
    previous = celery_state._tls.current_app
    celery_state._set_current_app(app)
    restorer.add(lambda: celery_state._set_current_app(previous))


def keep_worker_state(restorer: Restorer) -> None:
    """Snapshot ``celery.worker.state``; restored in place (other modules bound these very objects)."""
    mappings = {name: dict(getattr(worker_state, name)) for name in _MAPPINGS}
    sets = {name: list(getattr(worker_state, name)) for name in _SETS}
    total = list(worker_state.all_total_count)

    def undo() -> None:
        for name, items in mappings.items():
            target = getattr(worker_state, name)
            target.clear()
            target.update(items)
        for name, members in sets.items():
            target = getattr(worker_state, name)
            target.clear()
            target.update(members)
        worker_state.all_total_count[:] = total

    restorer.add(undo)


def keep_tracers(restorer: Restorer, app: Any) -> None:
    """Executing a task compiles its tracer onto it (``task.__trace__``); forget the ones compiled here."""
    fresh = [task for task in app.tasks.values() if task.__trace__ is None]

    def undo() -> None:
        for task in fresh:
            task.__trace__ = None

    restorer.add(undo)


def instrument(restorer: Restorer, provider: object | None) -> bool:
    """Instrument Celery unless something already did (its options, e.g. ``use_span_links``, then hold)."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return False
    instrumentor.instrument(tracer_provider=provider)
    restorer.add(instrumentor.uninstrument)
    return True
