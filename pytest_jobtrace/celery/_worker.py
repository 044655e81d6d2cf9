"""The consuming end: one message performed on this thread through Celery's own worker code.

A worker turns a message into a ``celery.worker.request.Request`` and hands it to its pool; the request
runs ``trace_task`` (prerun, the task, success / failure / retry, postrun, result storage, ``link`` and
``link_error`` callbacks) and reports back through its callbacks. The same happens here, with a pool
that runs the request at once. The solo pool itself is not constructed: its constructor sends
``worker_process_init``, where applications set up tracing, and a test must not re-run that.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from celery import signals
from celery.concurrency.base import apply_target
from celery.exceptions import Ignore, Reject, Retry, TaskRevokedError
from celery.utils.imports import symbol_by_name
from celery.worker import state as worker_state
from celery.worker.request import create_request_cls
from kombu.message import Message

from pytest_jobtrace.celery._producer import Envelope

Verdict = Literal["succeeded", "retried", "requeued", "failed", "ignored", "rejected", "revoked"]


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, as the worker saw it."""

    verdict: Verdict
    exception: BaseException | None = None


class UnregisteredTaskError(LookupError):
    """A message names a task the app does not have (a worker would reject it: "Received unregistered task")."""


class _InlinePool:
    """The part of a worker pool a Request uses: runs the trace at once and keeps what it returned."""

    def __init__(self) -> None:
        self.returned: tuple[int, Any, float] | None = None

    def apply_async(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        callback: Callable[[Any], None] | None = None,
        accept_callback: Callable[..., None] | None = None,
        **_: Any,
    ) -> None:
        def keep(returned: tuple[int, Any, float]) -> None:
            self.returned = returned
            if callback is not None:
                callback(returned)

        apply_target(target, args, kwargs, keep, accept_callback, pid=os.getpid())


class _Consumer:
    """Stands for the worker's consumer as the sender of ``task_received`` (receivers get ``request``)."""

    hostname: str

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname


class InlineWorker:
    """Performs task messages for one app, one at a time, on the calling thread."""

    def __init__(self, app: Any, hostname: str, requeue: Callable[[Envelope], None]) -> None:
        self.app = app
        self.hostname = hostname
        self._requeue = requeue
        self._pool = _InlinePool()
        self._consumer = _Consumer(hostname)
        self._request_classes: dict[str, Any] = {}
        self._utc = app.uses_utc_timezone()

    def perform(self, envelope: Envelope) -> Outcome:
        task = self._task(envelope.task_name)
        requeued: list[Envelope] = []

        def on_reject(logger: object, errors: object, requeue: bool = False) -> None:
            if requeue:  # the broker delivers it again (as Redis and the memory transport do: not flagged)
                requeued.append(envelope)

        request = self._request_class(task)(
            _message(envelope),
            on_ack=_ignore,
            on_reject=on_reject,
            app=self.app,
            hostname=self.hostname,
            eventer=None,
            task=task,
            connection_errors=(),
            body=envelope.body,
            headers=envelope.headers,
            decoded=False,
            utc=self._utc,
        )
        if (request.expires or request.id in worker_state.revoked) and request.revoked():
            return Outcome("revoked")
        signals.task_received.send(sender=self._consumer, request=request)
        worker_state.task_reserved(request)
        self._pool.returned = None
        try:
            request.execute_using_pool(self._pool)
        except TaskRevokedError:
            return Outcome("revoked")
        outcome = _judge(self._pool.returned)
        for again in requeued:
            self._requeue(again)
            outcome = Outcome("requeued", outcome.exception)
        return outcome

    def _task(self, name: str) -> Any:
        try:
            return self.app.tasks[name]
        except KeyError:
            known = sorted(n for n in self.app.tasks if not n.startswith("celery."))
            raise UnregisteredTaskError(
                f"task {name!r} is not registered on the Celery app {self.app.main!r} (a worker would reject the"
                f" message: 'Received unregistered task'). Registered tasks: {', '.join(known) or 'none'}."
                " Import the module that defines it, or check the name given to send_task()."
            ) from None

    def _request_class(self, task: Any) -> Any:
        cls = self._request_classes.get(task.name)
        if cls is None:
            base = symbol_by_name(task.Request)
            cls = create_request_cls(base, task, self._pool, self.hostname, None, app=self.app)
            self._request_classes[task.name] = cls
        return cls


def _message(envelope: Envelope) -> Message:
    return Message(
        body=envelope.body,
        content_type=envelope.content_type,
        content_encoding=envelope.content_encoding,
        delivery_info=dict(envelope.delivery_info),
        properties=dict(envelope.properties),
        headers=envelope.headers,
    )


def _ignore(*_: object) -> None:
    """Acknowledging: the message was never on a broker."""


def _judge(returned: tuple[int, Any, float] | None) -> Outcome:
    if returned is None:  # the pool never reported: the trace itself broke
        return Outcome("failed")
    failed, retval, _ = returned
    if not failed:
        return Outcome("succeeded")
    exception = getattr(retval, "exception", None)
    exception = getattr(exception, "exc", exception)  # ExceptionWithTraceback wraps the real one
    if isinstance(exception, Retry):
        return Outcome("retried", exception)
    if isinstance(exception, Ignore):
        return Outcome("ignored", exception)
    if isinstance(exception, Reject):
        return Outcome("rejected", exception)
    return Outcome("failed", exception)
