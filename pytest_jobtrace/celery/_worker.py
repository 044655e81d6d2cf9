"""The consuming end: one message performed on this thread through Celery's own worker code.

A worker turns a message into a ``celery.worker.request.Request`` and hands it to its pool; the request
runs ``trace_task`` (prerun, the task, success / failure / retry, postrun, result storage, ``link`` and
``link_error`` callbacks) and reports back through its callbacks. The same happens here, with a pool
that runs the request at once. The solo pool itself is not constructed: its constructor sends
``worker_process_init``, where applications set up tracing, and a test must not re-run that.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from celery import signals
from celery.app import trace as celery_trace
from celery.concurrency.base import apply_target
from celery.exceptions import Ignore, Reject, Retry, TaskRevokedError
from celery.result import denied_join_result
from celery.utils.imports import symbol_by_name
from celery.utils.nodenames import default_nodename
from celery.utils.time import maybe_iso8601
from celery.worker import state as worker_state
from celery.worker import strategy
from celery.worker.request import create_request_cls
from kombu.message import Message
from kombu.serialization import prepare_accept_content

from pytest_jobtrace.adapters import VirtualClock
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

    def __init__(self, trace: Callable[..., Any]) -> None:
        self.returned: tuple[int, Any, float] | None = None
        self._trace = trace

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

        if target in (celery_trace.trace_task_ret, celery_trace.fast_trace_task):
            target = self._trace  # the worker's fast path, with this worker's node name and tasks
        apply_target(target, args, kwargs, keep, accept_callback, pid=os.getpid())


class _Consumer:
    """Stands for the worker's consumer as the sender of ``task_received`` (receivers get ``request``)."""

    hostname: str

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname


class InlineWorker:
    """Performs task messages for one app, one at a time, on the calling thread."""

    def __init__(self, app: Any, clock: VirtualClock, requeue: Callable[[Envelope], None]) -> None:
        self.app = app
        self.clock = clock
        self.hostname = default_nodename(None)  # celery@host: a worker started without a node name
        self._requeue = requeue
        self._pool = _InlinePool(self._fast_trace)
        self._consumer = _Consumer(self.hostname)
        self._request_classes: dict[str, Any] = {}
        self._utc = app.uses_utc_timezone()
        # The real moments _expiring wrote into messages, to the virtual moments they stand for: a retry
        # carries its attempt's expires, which maps back exactly, whatever real time the attempt took.
        self._expiries: dict[float, float] = {}

    def received(self, envelope: Envelope, published_at: float | None) -> Envelope:
        """The message with its ``expires`` placed on the virtual clock, as its eta is.

        A retry carries the ``expires`` its attempt was given (see ``_expiring``): it maps back to the
        same virtual moment exactly (the real time the attempt took is no time on the virtual clock).
        Others are placed as far ahead of the virtual clock as they are of the publish, to 10 ms.
        """
        expires = envelope.headers.get("expires")
        if not expires:
            return envelope
        moment = maybe_iso8601(expires).timestamp()
        if moment in self._expiries:
            return replace(envelope, expires_at=self._expiries[moment])
        start = published_at if published_at is not None else time.time()
        return replace(envelope, expires_at=self.clock.now + round(moment - start, 2))

    def perform(self, envelope: Envelope) -> Outcome:
        task = self._task(envelope.task_name)
        envelope = self._expiring(envelope)
        requeued: list[Envelope] = []

        def on_reject(logger: object, errors: object, requeue: bool = False) -> None:
            if requeue:  # the broker delivers it again, flagged as kombu's Redis transport and RabbitMQ flag it
                requeued.append(_redelivered(envelope))

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
        _log_received(request)
        if (request.expires or request.id in worker_state.revoked) and request.revoked():
            return Outcome("revoked")
        signals.task_received.send(sender=self._consumer, request=request)
        worker_state.task_reserved(request)
        self._pool.returned = None
        if task.__trace__ is None:  # as a worker compiles it when it starts: with its node name and log level
            task.__trace__ = celery_trace.build_tracer(task.name, task, self.app.loader, self.hostname, app=self.app)
        try:
            with denied_join_result():  # a worker sets this flag: result.get() in a task raises at once
                request.execute_using_pool(self._pool)
        except TaskRevokedError:
            return Outcome("revoked")
        outcome = _judge(self._pool.returned)
        for again in requeued:
            self._requeue(again)
            outcome = Outcome("requeued", outcome.exception)
        return outcome

    def _fast_trace(self, *args: Any, **kwargs: Any) -> Any:
        accept = prepare_accept_content(self.app.conf.accept_content)
        return celery_trace.fast_trace_task(*args, _loc=[self.app.tasks, accept, self.hostname], **kwargs)

    def _expiring(self, envelope: Envelope) -> Envelope:
        """``expires`` as a real moment as far ahead of now as it is ahead of the virtual clock (or behind).

        Celery's own request then judges it, as on a worker: discarded, revoked, "Discarding revoked task".
        """
        if envelope.expires_at is None:
            return envelope
        left = timedelta(seconds=envelope.expires_at - self.clock.now)
        expires = (datetime.now(timezone.utc) + left).isoformat()
        self._expiries[maybe_iso8601(expires).timestamp()] = envelope.expires_at
        return replace(envelope, headers={**envelope.headers, "expires": expires})

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


def _redelivered(envelope: Envelope) -> Envelope:
    return replace(envelope, delivery_info={**envelope.delivery_info, "redelivered": True})


def _log_received(request: Any) -> None:
    """The line a worker's strategy logs for each message it takes ("Task shop.add[id] received")."""
    if strategy.logger.isEnabledFor(logging.INFO):
        context = {
            "id": request.id,
            "name": request.name,
            "args": request.argsrepr,
            "kwargs": request.kwargsrepr,
            "eta": request.eta,
        }
        strategy.logger.info(celery_trace.LOG_RECEIVED, context, extra={"data": context})


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
