"""Celery scenarios run three ways (real worker, ``celery_jobs``, eager mode) and span trees to compare them.

Imported by name (pytest puts tests/ on sys.path). Each scenario builds a fresh app with the same tasks,
so that a worker's app and ``celery_jobs``' app never share state.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from celery import Celery, chain, chord, group
from celery.exceptions import Ignore, Reject
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer


class PaymentError(Exception):
    """A task's own failure: its qualified name shows in exception events."""


def make_app(tracer: Tracer) -> Celery:
    """The shop app: a memory broker and a memory result backend; the same tasks each time."""
    app = Celery("shop", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.worker_hijack_root_logger = False  # a worker must not take pytest's log capture away
    app.conf.broker_transport_options = {"polling_interval": 0.01}  # the memory transport polls each second
    _register(app, tracer)
    return app


def _register(app: Celery, tracer: Tracer) -> None:
    task = functools.partial(app.task, shared=False)  # shared tasks would land on every later app

    @task(name="shop.add")
    def add(x: int, y: int) -> int:
        return x + y

    @task(name="shop.tsum")
    def tsum(numbers: list[int]) -> int:
        return sum(numbers)

    @task(name="shop.child")
    def child(index: int) -> int:
        return index

    @task(name="shop.fan_out")
    def fan_out() -> None:
        with tracer.start_as_current_span("fan_out.batch"):
            for index in range(3):
                child.delay(index)

    @task(name="shop.charge")
    def charge(order_id: int) -> None:
        raise PaymentError(f"card declined for order {order_id}")

    @task(bind=True, name="shop.process_order")
    def process_order(self: Any, order_id: int) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=0.1, exc=ConnectionError("gateway timeout"))
        return order_id

    @task(
        name="shop.sync_stock",
        autoretry_for=(ConnectionError,),
        retry_backoff=True,
        retry_backoff_max=1,
        retry_jitter=False,
        max_retries=2,
    )
    def sync_stock() -> None:
        raise ConnectionError("warehouse unreachable")

    deliveries: dict[str, int] = {}

    @task(bind=True, name="shop.import_file", acks_late=True)
    def import_file(self: Any) -> str:
        deliveries[self.request.id] = deliveries.get(self.request.id, 0) + 1
        if deliveries[self.request.id] == 1:
            raise Reject("storage not ready", requeue=True)
        return "imported"

    @task(name="shop.skip")
    def skip() -> None:
        raise Ignore()

    @task(name="shop.report_failure")
    def report_failure(request: Any, exc: BaseException, traceback: object) -> str:
        return f"{request.id} failed: {exc}"

    @task(name="shop.mark_failed")
    def mark_failed(task_id: str) -> str:
        return task_id


@dataclass(frozen=True)
class Scenario:
    name: str
    trigger: Callable[[Celery, TracerProvider], object]
    spans: int
    """How many spans a real worker makes (asserted on every run)."""
    span_links: bool = False
    failures: bool = False
    settle: float = 0.2
    """Seconds the reference waits past the expected spans for one more to show up."""


def _task(app: Celery, name: str) -> Any:
    return app.tasks[name]


def _single(app: Celery, provider: TracerProvider) -> object:
    return _task(app, "shop.add").delay(2, 3)


def _fan_out(app: Celery, provider: TracerProvider) -> object:
    return _task(app, "shop.fan_out").delay()


def _failure(app: Celery, provider: TracerProvider) -> object:
    return _task(app, "shop.charge").delay(7)


def _retry(app: Celery, provider: TracerProvider) -> object:
    return _task(app, "shop.process_order").delay(42)


def _autoretry(app: Celery, provider: TracerProvider) -> object:
    return _task(app, "shop.sync_stock").delay()


def _chain(app: Celery, provider: TracerProvider) -> object:
    add = _task(app, "shop.add")
    return chain(add.s(1, 2), add.s(3), add.s(4)).apply_async()


def _group(app: Celery, provider: TracerProvider) -> object:
    add = _task(app, "shop.add")
    return group(add.s(i, i) for i in range(3)).apply_async()


def _chord(app: Celery, provider: TracerProvider) -> object:
    add = _task(app, "shop.add")
    return chord((add.s(i, i) for i in range(3)), _task(app, "shop.tsum").s()).apply_async()


def _link(app: Celery, provider: TracerProvider) -> object:
    add = _task(app, "shop.add")
    return add.apply_async((1, 2), link=add.s(10))


def _link_error(app: Celery, provider: TracerProvider) -> object:
    errbacks = [_task(app, "shop.report_failure").s(), _task(app, "shop.mark_failed").s()]
    return _task(app, "shop.charge").apply_async((8,), link_error=errbacks)


def _countdown_eta(app: Celery, provider: TracerProvider) -> object:
    add = _task(app, "shop.add")
    add.apply_async((1, 1), countdown=0.3)
    return add.apply_async((2, 2), eta=datetime.now(timezone.utc) + timedelta(seconds=0.1))


def _send_task(app: Celery, provider: TracerProvider) -> object:
    with provider.get_tracer("shop").start_as_current_span("checkout"):
        return app.send_task("shop.add", args=(1, 2))


def _requeue(app: Celery, provider: TracerProvider) -> object:
    return _task(app, "shop.import_file").delay()


def _ignore(app: Celery, provider: TracerProvider) -> object:
    return _task(app, "shop.skip").delay()


def _flask_view(app: Celery, provider: TracerProvider) -> object:
    """A Flask view enqueues a task; the request runs under opentelemetry-instrumentation-flask's test client."""
    from flask import Flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    web = Flask("shop_web")

    @web.post("/orders/<int:order_id>")
    def place_order(order_id: int) -> dict[str, str]:
        result = _task(app, "shop.process_order").delay(order_id)
        return {"task": result.id}

    FlaskInstrumentor().instrument_app(web, tracer_provider=provider)
    try:
        return web.test_client().post("/orders/42").get_json()
    finally:
        FlaskInstrumentor().uninstrument_app(web)


def _expired(app: Celery, provider: TracerProvider) -> object:
    return _task(app, "shop.add").apply_async((1, 2), countdown=0.3, expires=0.1)


def _revoked(app: Celery, provider: TracerProvider) -> object:
    result = _task(app, "shop.add").apply_async((1, 2), countdown=0.3)
    result.revoke()
    return result


SCENARIOS: Sequence[Scenario] = (
    Scenario("single task", _single, 2),
    Scenario("three children in a custom span", _fan_out, 9),
    Scenario("failure", _failure, 2, failures=True),
    Scenario("retry twice then success", _retry, 6),
    Scenario("autoretry_for until max_retries", _autoretry, 6, failures=True),
    Scenario("chain", _chain, 6),
    Scenario("group", _group, 6),
    Scenario("chord", _chord, 8),
    Scenario("link", _link, 4),
    Scenario("link_error", _link_error, 4, failures=True),
    Scenario("countdown and eta", _countdown_eta, 4),
    Scenario("send_task by name", _send_task, 3),
    Scenario("use_span_links", _retry, 6, span_links=True),
    Scenario("chain with use_span_links", _chain, 6, span_links=True),
    Scenario("task from a Flask view", _flask_view, 7),
    Scenario("Reject(requeue=True) then success", _requeue, 3),
    Scenario("Ignore", _ignore, 2),
)


class OpenSpans(SpanProcessor):
    """Counts spans started and not ended yet (a real worker ends its run span after result.get() returns)."""

    def __init__(self) -> None:
        self.open = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.open += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.open -= 1


def wait_for(done: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)


# Attributes that differ between two runs of the same code: ids, host names, timestamps.
VOLATILE = frozenset(
    {
        "messaging.message.id",
        "messaging.conversation_id",
        "celery.reply_to",
        "celery.hostname",
        "celery.eta",
        "celery.expires",
    }
)


def tree_lines(spans: Sequence[ReadableSpan]) -> list[str]:
    """The spans as an indented outline, siblings in a canonical order, volatile attributes left out."""
    by_id = {span.context.span_id: span for span in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in by_id else None
        children.setdefault(parent, []).append(span)

    def block(span: ReadableSpan, depth: int) -> list[str]:
        lines = [("  " * depth) + _describe(span, by_id)]
        kids = sorted((block(kid, depth + 1) for kid in children.get(span.context.span_id, [])), key=str)
        return lines + [line for kid in kids for line in kid]

    roots = sorted((block(span, 0) for span in children.get(None, [])), key=str)
    return [line for root in roots for line in root]


def _describe(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> str:
    attributes = {k: v for k, v in sorted((span.attributes or {}).items()) if k not in VOLATILE}
    status = span.status.status_code.name
    if span.status.description:
        status += f" {span.status.description!r}"
    events = [(event.name, _event_attributes(event.attributes)) for event in span.events]
    links = [by_id[link.context.span_id].name if link.context.span_id in by_id else "?" for link in span.links]
    parts = [span.name, span.kind.name, status, repr(attributes)]
    if events:
        parts.append(f"events={events!r}")
    if links:
        parts.append(f"links={sorted(links)!r}")
    return " | ".join(parts)


def _event_attributes(attributes: Any) -> dict[str, Any]:
    return {k: v for k, v in sorted((attributes or {}).items()) if k != "exception.stacktrace"}


# Tasks a worker discards before they run: compared with a real worker, not part of the eager table.
DISCARDED: Sequence[Scenario] = (
    Scenario("expires before its countdown", _expired, 1, settle=0.8),
    Scenario("revoked before its countdown", _revoked, 1, settle=0.8),
)
