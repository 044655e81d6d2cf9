"""Sampling under test: jobs obey the sampler of the provider a test hands the adapters.

``jobtrace_tracer_provider`` is the provider adapters send their own spans to. A test (or conftest) that
overrides it with the application's provider gets the application's sampling, as production would.
Trace ids are scripted so that TraceIdRatioBased(0.1) keeps some traces and drops others, without chance.
"""

from __future__ import annotations

import pytest
from helpers import both_modes, run_pytest

CONFTEST = """
    import itertools

    import pytest
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    KEEP, DROP = 1, 2**64 - 1  # the ratio sampler keeps a trace whose low 64 bits are below ratio * 2**64

    class ScriptedTraceIds(RandomIdGenerator):
        def __init__(self, lows):
            self.lows = iter(lows)
            self.count = itertools.count(1)

        def generate_trace_id(self):
            return (next(self.count) << 64) | next(self.lows)

    @pytest.fixture
    def trace_ids():
        return []

    @pytest.fixture(name="jobtrace_tracer_provider")
    def _provider(trace_ids):
        return TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.1)), id_generator=ScriptedTraceIds(trace_ids))
"""

TESTS = """
    import pytest
    from opentelemetry.trace import SpanKind

    from conftest import DROP, KEEP
    from pytest_jobtrace import assert_span_tree, job, span
    from pytest_jobtrace.builtin import Job

    class InvoiceJob(Job):
        def perform(self, order_id):
            with TRACER.start_as_current_span("render_pdf"):
                pass

    class ReindexJob(Job):
        propagation = "link"

        def perform(self):
            with TRACER.start_as_current_span("rebuild_index"):
                pass

    TRACER = None

    @pytest.fixture(autouse=True)
    def _tracer(jobtrace_tracer_provider):
        global TRACER
        TRACER = jobtrace_tracer_provider.get_tracer("app")

    def request(name, job):
        with TRACER.start_as_current_span(name, kind=SpanKind.SERVER):
            job.perform_later(*([7] if job is InvoiceJob else []))

    def test_sampled_in_request_keeps_every_job_span(job_spans, builtin_jobs, trace_ids):
        trace_ids.extend([KEEP])
        request("POST /orders", InvoiceJob)
        builtin_jobs.drain()
        assert_span_tree(span("POST /orders", children=[job("InvoiceJob", children=["render_pdf"])]), exact=True)

    def test_sampled_out_request_drops_every_job_span(job_spans, builtin_jobs, trace_ids):
        trace_ids.extend([DROP])
        request("POST /orders", InvoiceJob)
        (run,) = builtin_jobs.drain()
        assert run.outcome == "succeeded"  # the job ran; its spans were not recorded
        assert job_spans.spans == []

    def test_a_linked_job_is_sampled_afresh(job_spans, builtin_jobs, trace_ids):
        trace_ids.extend([DROP, KEEP])  # the request is dropped; the job's own trace is kept
        request("POST /catalog", ReindexJob)
        builtin_jobs.drain()
        assert job_spans.find("POST /catalog") == []
        assert job_spans.render() == "process default [consumer, link (not captured)]\\n└── rebuild_index"

    def test_the_same_linked_job_dropped_with_its_own_trace(job_spans, builtin_jobs, trace_ids):
        trace_ids.extend([KEEP, DROP])  # the request is kept; the job's new trace is dropped
        request("POST /catalog", ReindexJob)
        builtin_jobs.drain()
        assert job_spans.render() == "POST /catalog [server]\\n└── send default [producer]"
"""


@both_modes
def test_jobs_obey_the_test_provider_s_sampler(pytester: pytest.Pytester, run: str) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(TESTS)
    run_pytest(pytester, run, "-p", "no:randomly").assert_outcomes(passed=4)


def test_without_the_override_jobs_use_the_global_provider(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        def test_default(jobtrace_tracer_provider, builtin_jobs):
            assert jobtrace_tracer_provider is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
