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

from pytest_jobtrace.celery._producer import PROTOCOL_1

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
        if given is not None and given is not producer:
            raise RuntimeError(EXPLICIT_PRODUCER)
        return nullcontext(producer)

    app.producer_or_acquire = producer_or_acquire

    def undo() -> None:
        if had_own:
            app.producer_or_acquire = previous
        else:
            del app.producer_or_acquire

    restorer.add(undo)


EXPLICIT_PRODUCER = (
    "a task was published with its own producer= or connection=: the message would go to the broker behind"
    " it, not to celery_jobs. Publish without producer= and connection= in the test."
)


def watch_publish_time(restorer: Restorer, app: Any, seen: threading.local) -> None:
    """Keep in ``seen.moment`` (a POSIX timestamp) when the current thread's publish started, by Celery's clock.

    ``send_task`` sets it on entry; each ``app.now()`` during the publish moves it to that reading, the
    one Celery adds a countdown to when it computes the message's eta.
    """
    send_task, now = app.send_task, app.now
    # what the instance itself held (a wrapper of the caller's, a mock): put back at teardown, not dropped
    before = {name: vars(app)[name] for name in ("send_task", "now") if name in vars(app)}

    def watched_send_task(*args: Any, **kwargs: Any) -> Any:
        if int(app.conf.task_protocol) == 1:  # set during the test: refused before the publish span starts
            raise ValueError(PROTOCOL_1)
        seen.moment = time.time()
        return send_task(*args, **kwargs)

    def watched_now() -> datetime:
        reading: datetime = now()
        seen.moment = reading.timestamp()
        return reading

    app.send_task, app.now = watched_send_task, watched_now
    ours = {"send_task": watched_send_task, "now": watched_now}

    def undo() -> None:
        # Only where ours is still in place: a wrapper that was there before and that its owner took back
        # during the test (a fixture torn down before celery_jobs) must not come back for every later test.
        for name, watcher in ours.items():
            if vars(app).get(name) is not watcher:
                continue
            if name in before:
                vars(app)[name] = before[name]
            else:
                del vars(app)[name]

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

    from pytest_jobtrace.adapters import instrument_for_test

    instrumentor = CeleryInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return False
    instrument_for_test(instrumentor, tracer_provider=provider)
    restorer.add(instrumentor.uninstrument)
    return True


def as_on_a_worker(restorer: Restorer, app: Any) -> None:
    """Settings a worker does not apply to the messages it consumes: eager mode off, protocol 1 refused.

    A worker never runs a message eagerly, whatever ``task_always_eager`` says; under eager mode nothing
    would be published, so drain() would perform nothing and failures would never reach it.
    """
    conf = app.conf
    if int(conf.task_protocol) == 1:
        raise ValueError(PROTOCOL_1)  # checked again at publish, should the test set it later
    if conf.task_always_eager:
        conf.task_always_eager = False
        restorer.add(lambda: setattr(conf, "task_always_eager", True))


def refuse_other_apps(restorer: Restorer, app: Any) -> None:
    """A publish through any other Celery app during the test is an error, not a message to its broker."""
    from celery import Celery

    original = vars(Celery)["producer_or_acquire"]

    def producer_or_acquire(self: Any, producer: object = None) -> Any:
        if self is not app:  # the test's app has its own in-memory producer_or_acquire, which wins
            raise RuntimeError(_other_app_message(self, app))
        return original(self, producer)

    Celery.producer_or_acquire = producer_or_acquire
    restorer.add(lambda: setattr(Celery, "producer_or_acquire", original))


def _other_app_message(other: Any, app: Any) -> str:
    runs = f"celery_jobs runs the app {_app_name(app)}"
    if _app_name(other) == _app_name(app):  # two apps of one name: made twice (a factory, a module imported twice)
        runs = (
            f"celery_jobs runs another app of that name (two Celery({_app_name(app)}) objects: the app was made "
            "twice, by a factory called again or a module imported under two names)"
        )
    return (
        f"a task was published through the Celery app {_app_name(other)} (broker {other.conf.broker_url!r}),"
        f" but {runs}: the message would leave the test for that broker."
        " Give celery_jobs the app your code publishes through: a `celery_app` fixture that returns it,"
        " or the ini key jobtrace_celery_app = package.module:app."
    )


def _app_name(app: Any) -> str:
    return repr(app.main or "default")


def keep_broadcasts_in(restorer: Restorer, hostname: str) -> None:
    """``app.control`` broadcasts reach no broker: revokes are applied as the worker applies them, others refused.

    Any app's broadcast counts: a revoke sent to a real broker would reach real workers, not the test.
    """
    from celery.app.control import Control

    original = vars(Control)["broadcast"]

    def broadcast(
        self: Any, command: str, arguments: dict[str, Any] | None = None, *_: Any, reply: bool = False, **extra: Any
    ) -> Any:
        arguments = dict(arguments or {}, **{key: value for key, value in extra.items() if key not in _TRANSPORT})
        answer = _apply_control(self.app, command, arguments)
        return [{hostname: answer}] if reply else None

    Control.broadcast = broadcast
    restorer.add(lambda: setattr(Control, "broadcast", original))


_TRANSPORT = frozenset({"destination", "connection", "timeout", "limit", "callback", "channel", "pattern", "matcher"})


class _ControlState:
    """What the worker's remote-control commands read of the worker (the app; no consumer runs here)."""

    consumer = None

    def __init__(self, app: Any) -> None:
        self.app = app


def _apply_control(app: Any, command: str, arguments: dict[str, Any]) -> Any:
    from celery.worker import control

    if command not in ("revoke", "revoke_by_stamped_headers"):
        raise RuntimeError(
            f"app.control broadcast {command!r}: celery_jobs runs no worker that could answer it, and the"
            " broadcast would go to the app's broker. Only revoke() is applied in the test;"
            f" leave {command!r} out of the test or replace it with a stub."
        )
    if arguments.get("terminate"):
        _refuse_terminating_a_running_task(arguments)
    arguments.pop("terminate", None)
    handler = control.revoke if command == "revoke" else control.revoke_by_stamped_headers
    return handler(_ControlState(app), **arguments)


def _refuse_terminating_a_running_task(arguments: dict[str, Any]) -> None:
    """The only running task is the caller's own, on the test's thread: no process to terminate."""
    from kombu.utils.functional import maybe_list

    targets = set(maybe_list(arguments.get("task_id")) or ())
    if any(request.id in targets for request in worker_state.active_requests):
        raise RuntimeError(
            "revoke(terminate=True) of a task that is running: celery_jobs runs it on the test's thread and"
            " cannot terminate it as a worker would. Revoke it before it runs, or without terminate=True."
        )
