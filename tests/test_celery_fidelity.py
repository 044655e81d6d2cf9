"""Fidelity: for every scenario, ``celery_jobs`` gives the span tree a real Celery worker gives.

The reference is ``celery.contrib.testing.worker.start_worker`` (solo pool) on a fresh app with the same
tasks and a Redis broker, under a key prefix of its own that is deleted afterwards (the memory transport
delivers a requeued message without ``redelivered``; Redis and RabbitMQ flag it). Both are instrumented by
the same CeleryInstrumentor. Trees are compared whole: names, kinds, parent-child relations, links,
statuses, exception events and every attribute but the volatile ones (ids, host names, timestamps).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis
from celery import Celery
from celery import _state as celery_state
from celery.contrib.testing.worker import start_worker
from celery_scenarios import DISCARDED, SCENARIOS, OpenSpans, Scenario, make_app, tree_lines, wait_for
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pytest_jobtrace.celery import CeleryJobs


@dataclass
class Telemetry:
    provider: TracerProvider
    exporter: InMemorySpanExporter
    opens: OpenSpans

    def finished(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def take(self) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans


@pytest.fixture(name="telemetry")
def _telemetry(request: pytest.FixtureRequest) -> Iterator[Telemetry]:
    scenario: Scenario = request.node.callspec.params["scenario"]
    exporter = InMemorySpanExporter()
    opens = OpenSpans()
    provider = TracerProvider()
    provider.add_span_processor(opens)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    CeleryInstrumentor().instrument(tracer_provider=provider, use_span_links=scenario.span_links)
    try:
        yield Telemetry(provider, exporter, opens)
    finally:
        CeleryInstrumentor().uninstrument()
        provider.shutdown()


REDIS = "redis://127.0.0.1:6379/0"


@contextmanager
def on_redis(app: Celery) -> Iterator[None]:
    """The app's broker is this machine's Redis, every key under a prefix of its own, deleted afterwards."""
    prefix = f"jobtrace-fidelity-{uuid.uuid4().hex}:"
    app.conf.broker_url = REDIS
    app.conf.broker_transport_options = {"global_keyprefix": prefix, "polling_interval": 0.01}
    try:
        yield
    finally:
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def on_real_worker(scenario: Scenario, telemetry: Telemetry) -> list[ReadableSpan]:
    tracer = telemetry.provider.get_tracer("shop")
    app = make_app(tracer)
    default, current = celery_state.default_app, celery_state._tls.current_app
    # start_worker sets up Celery's logging: the root logger's level and handlers, for the whole process.
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        with on_redis(app), start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            scenario.trigger(app, telemetry.provider)
            wait_for(
                lambda: len(telemetry.exporter.get_finished_spans()) >= scenario.spans and not telemetry.opens.open
            )
            time.sleep(scenario.settle)  # long enough for a span beyond the expected ones to show up
    finally:
        celery_state.set_default_app(default)
        celery_state._set_current_app(current)
        root.setLevel(level)
        root.handlers[:] = handlers
    return telemetry.take()


def with_celery_jobs(scenario: Scenario, telemetry: Telemetry) -> list[ReadableSpan]:
    tracer = telemetry.provider.get_tracer("shop")
    app = make_app(tracer)
    with CeleryJobs(app, expect_failures=scenario.failures) as jobs:
        scenario.trigger(app, telemetry.provider)
        jobs.drain()
        assert not jobs.pending
    assert not jobs.instrumented  # the instrumentation in place (and its use_span_links) was kept
    return telemetry.take()


@pytest.mark.parametrize(
    "scenario", [*SCENARIOS, *DISCARDED], ids=[s.name.replace(" ", "_") for s in [*SCENARIOS, *DISCARDED]]
)
def test_celery_jobs_tree_equals_a_real_workers(scenario: Scenario, telemetry: Telemetry) -> None:
    # On a loaded machine the reference's publish has once left its span attached to the test's context (the
    # instrumentation's after_task_publish found no activation to end): later tests' root spans then joined
    # that trace. Each side runs in a context of its own, given back whatever it leaves attached.
    token = otel_context.attach(otel_context.Context())
    try:
        _compare(scenario, telemetry)
    finally:
        otel_context.detach(token)


def _compare(scenario: Scenario, telemetry: Telemetry) -> None:
    reference = on_real_worker(scenario, telemetry)
    if len(reference) != scenario.spans:
        # The reference is a real worker thread on the memory transport: on a loaded machine it has once
        # run a message twice. One more run tells such a hiccup of the oracle from a changed tree.
        reference = on_real_worker(scenario, telemetry)
    ours = with_celery_jobs(scenario, telemetry)
    shown = "\n".join(tree_lines(reference))
    assert len(reference) == scenario.spans, f"the worker made {len(reference)} spans, not {scenario.spans}:\n{shown}"
    assert tree_lines(ours) == tree_lines(reference)
