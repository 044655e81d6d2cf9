"""Sampling under test: the application's ParentBased(TraceIdRatioBased(0.1)) sampler, on each job system.

The test overrides ``jobtrace_tracer_provider`` with the provider the application would build; the job
adapters send their spans to it and the Flask app gets it too (``conftest.make_client``), as
``FlaskInstrumentor().instrument_app(app, tracer_provider=...)`` does in production. The jobs' own custom
spans come from a module-level tracer (the global provider), whose default sampler is parent-based too, so
they follow the job's decision. A ratio sampler decides on the trace id: scripted ids make both decisions
certain instead of nine in ten.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from celery import Celery
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from conftest import SYSTEMS, Post, System, activate, make_client
from pytest_jobtrace import JobSpans, assert_span_tree, span
from pytest_jobtrace.rq.instrumentation import RQInstrumentor

# TraceIdRatioBased(0.1) keeps a trace when the low 64 bits of its id are below 0.1 * 2**64.
KEEP, DROP = 1, 2**64 - 1


class ScriptedTraceIds(RandomIdGenerator):
    """Trace ids whose low 64 bits the test scripts, one per new trace, in order: KEEP or DROP."""

    def __init__(self, lows: list[int]) -> None:
        self.lows, self.count = lows, itertools.count(1)

    def generate_trace_id(self) -> int:
        return (next(self.count) << 64) | self.lows.pop(0)  # an IndexError: a trace the test did not expect


@pytest.fixture(name="trace_ids")
def _trace_ids() -> list[int]:
    return []


@pytest.fixture(name="jobtrace_tracer_provider")
def _app_provider(trace_ids: list[int]) -> TracerProvider:
    sampler = ParentBased(TraceIdRatioBased(0.1))
    return TracerProvider(sampler=sampler, id_generator=ScriptedTraceIds(trace_ids), shutdown_on_exit=False)


def test_a_sampled_in_request_keeps_every_job_span(
    system: System, post: Post, trace_ids: list[int], job_spans: JobSpans
) -> None:
    trace_ids.append(KEEP)
    post("/signup", json={"user_id": 42})
    system.drain()

    onboarding_jobs = [system.job(name, outcome="succeeded", attempts=1) for name in ONBOARDING]
    assert_span_tree(
        span(
            "POST /signup",
            children=[system.job("user_onboarding", children=[span("onboard_user", children=onboarding_jobs)])],
        )
    )
    assert len(job_spans.spans) == 13  # the request, 4 jobs x (send + process), onboard_user, 3 job spans


@pytest.mark.in_process_only("a job whose trace was sampled out leaves no span that live workers could send")
def test_a_sampled_out_request_drops_every_job_span(
    system: System, post: Post, trace_ids: list[int], job_spans: JobSpans
) -> None:
    trace_ids.append(DROP)
    post("/signup", json={"user_id": 42})
    runs = system.drain()

    assert len(runs) == 4  # the four jobs ran...
    assert job_spans.spans == []  # ...and not one span of theirs, or of the request, was recorded
    assert trace_ids == []  # the jobs made no trace of their own: they followed the request's decision


ONBOARDING = ("send_welcome_email", "create_sample_data", "schedule_follow_up")


# -- Linked jobs ----------------------------------------------------------------------------------------------
# A job that starts a new trace linked to its enqueue (instead of continuing the request's trace) is sampled
# on its own trace id: the request's decision does not reach it. Each system links in its own way.


@pytest.fixture(name="linked_system", params=SYSTEMS)
def _linked_system(
    request: pytest.FixtureRequest,
    celery_app: Celery,
    jobtrace_tracer_provider: TracerProvider,
    job_spans: JobSpans,  # asked for statically, as in conftest's system fixture
) -> Iterator[System]:
    """The system, its process spans starting new traces linked to their send spans."""
    instrumentor: CeleryInstrumentor | RQInstrumentor | None = None
    if request.param == "celery":
        instrumentor = CeleryInstrumentor()  # celery_jobs keeps an instrumentation it finds, with its options
    if request.param == "rq":
        instrumentor = RQInstrumentor()  # so does rq_jobs
    if instrumentor is not None:
        instrumentor.instrument(tracer_provider=jobtrace_tracer_provider, use_span_links=True)
    try:
        # The built-in adapter links through its propagation option, set by the marker on the tests below.
        yield activate(request, request.param)
    finally:
        if instrumentor is not None:
            instrumentor.uninstrument()


@pytest.mark.jobtrace(propagation="link")  # the built-in adapter's option; Celery and RQ ignore it
def test_a_linked_job_outlives_its_dropped_request(
    linked_system: System, jobtrace_tracer_provider: TracerProvider, trace_ids: list[int], job_spans: JobSpans
) -> None:
    trace_ids.extend([DROP, KEEP])  # the request is dropped; the job's own trace is kept
    response = make_client(linked_system, jobtrace_tracer_provider).post("/batches", json={"item_ids": [1, 2, 3]})
    assert response.status_code == 202
    linked_system.drain()

    # One trace is left: the job's, a root whose link points at a send span that was never recorded.
    (process, chunk) = job_spans.spans[-1], job_spans.spans[0]
    assert (process.kind, process.parent, chunk.name) == (SpanKind.CONSUMER, None, "process_chunk_0")
    assert job_spans.render() == f"{process.name} [consumer, link (not captured)]\n└── process_chunk_0"
    assert_span_tree(span(process.name, kind="consumer", children=["process_chunk_0"]), exact=True)


@pytest.mark.jobtrace(propagation="link")
def test_a_kept_request_can_lose_its_linked_job(
    linked_system: System, jobtrace_tracer_provider: TracerProvider, trace_ids: list[int], job_spans: JobSpans
) -> None:
    trace_ids.extend([KEEP, DROP])  # the request is kept; the job's own trace is dropped
    response = make_client(linked_system, jobtrace_tracer_provider).post("/batches", json={"item_ids": [1, 2, 3]})
    assert response.status_code == 202
    assert len(linked_system.drain()) == 1  # the job ran...

    # ...but no span shows it: the request and its send span remain, and job() sees a job never performed
    # ("pending"), which is all a trace backend would show too.
    never_seen = linked_system.job("batch_process", attempts=0, outcome="pending")
    assert_span_tree(span("POST /batches", children=[never_seen]), exact=True)
    assert job_spans.find("process_chunk_0") == []
