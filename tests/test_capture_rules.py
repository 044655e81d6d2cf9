"""Which test a span belongs to: one rule, whatever the fixture order, scopes and id generators."""

from __future__ import annotations

import itertools

import pytest
from helpers import both_modes, run_pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from test_capture import assert_clean, fresh_process

from pytest_jobtrace import SpanForest, assert_span_tree, render


@both_modes
def test_a_span_from_a_function_fixture_is_captured_whatever_the_fixture_order(
    pytester: pytest.Pytester, run: str
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        @pytest.fixture
        def request_span():
            span = tracer.start_span("request")
            yield span
            if span.is_recording():
                span.end()

        @pytest.fixture
        def teardown_span():
            yield
            with tracer.start_as_current_span("cleanup"):
                pass

        def test_fixture_first(request_span, job_spans):
            request_span.end()
            assert [s.name for s in job_spans] == ["request"]

        def test_fixture_last(job_spans, request_span):
            request_span.end()
            assert [s.name for s in job_spans] == ["request"]

        def test_started_in_setup_ended_in_teardown(request_span, teardown_span, job_spans):
            assert len(job_spans) == 0

        def test_ended_in_teardown_is_captured(request, job_spans):
            # What fixture teardowns end is captured too: job_spans is the last to close.
            request.addfinalizer(lambda: seen.extend(s.name for s in job_spans))
            request.getfixturevalue("request_span")
            request.getfixturevalue("teardown_span")

        seen = []

        def test_seen_after():
            assert seen == ["cleanup", "request"]  # torn down in reverse order
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=5)
    assert_clean(result)


@both_modes
def test_a_span_a_wider_fixture_starts_belongs_to_the_test_during_which_it_ends(
    pytester: pytest.Pytester, run: str
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        @pytest.fixture(scope="session")
        def connection():
            return tracer.start_span("connection")

        @pytest.fixture(scope="module")
        def warm_cache():
            with tracer.start_as_current_span("warm_cache"):
                pass

        def test_sets_it_up(job_spans, connection, warm_cache):
            # Ended while this test was being set up: this test's, like any span that ends during it.
            assert [s.name for s in job_spans] == ["warm_cache"]

        def test_ends_it(job_spans, connection):
            connection.end()
            assert [s.name for s in job_spans] == ["connection"]
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=2)
    assert_clean(result)


# --- colliding ids: providers with their own counter id generators ----------------------------------------------


class CounterIds(IdGenerator):
    """Ids 1, 2, 3... per provider, as snapshot tests use for stable output."""

    def __init__(self) -> None:
        self._span_ids = itertools.count(1)
        self._trace_ids = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._span_ids)

    def generate_trace_id(self) -> int:
        return next(self._trace_ids)


def counter_provider(exporter: InMemorySpanExporter, resource: Resource | None = None) -> TracerProvider:
    provider = TracerProvider(id_generator=CounterIds(), resource=resource or Resource.create({}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_colliding_ids_from_two_providers_keep_each_tree_apart() -> None:
    exporter = InMemorySpanExporter()
    first = counter_provider(exporter).get_tracer("first")
    second = counter_provider(exporter).get_tracer("second")
    with first.start_as_current_span("checkout"), first.start_as_current_span("charge"):
        pass
    with second.start_as_current_span("sync"), second.start_as_current_span("upload"):
        pass

    assert render(exporter.get_finished_spans()) == "checkout\n└── charge\nsync\n└── upload"
    assert_span_tree("checkout\n  charge\nsync\n  upload", exporter.get_finished_spans(), exact=True)


def test_colliding_ids_that_loop_still_show_every_span() -> None:
    exporter = InMemorySpanExporter()
    shared = Resource.create({})  # the same resource object: nothing tells the providers apart
    first = counter_provider(exporter, shared).get_tracer("first")
    second = counter_provider(exporter, shared).get_tracer("second")
    with first.start_as_current_span("root"), first.start_as_current_span("send") as send:
        carrier = trace.set_span_in_context(send)
    # second's span 1 continues first's trace under span 2, which itself points at span 1: a loop of ids.
    with second.start_as_current_span("process", context=carrier):
        pass

    names = sorted(node.name for node in SpanForest(exporter.get_finished_spans()))
    assert names == ["process", "root", "send"]


@both_modes
def test_a_leaked_span_does_not_land_in_the_next_test_when_ids_repeat(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import itertools
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.id_generator import IdGenerator

        class CounterIds(IdGenerator):
            def __init__(self):
                self._ids = itertools.count(1)

            def generate_span_id(self):
                return next(self._ids)

            def generate_trace_id(self):
                return next(self._ids)

        leaked = []

        def test_leaks(job_spans):
            tracer = TracerProvider(id_generator=CounterIds()).get_tracer("app")
            leaked.append(tracer.start_span("leaked"))

        def test_next(job_spans):
            tracer = TracerProvider(id_generator=CounterIds()).get_tracer("app")
            tracer.start_span("own").end()  # the same ids as the leaked span
            leaked[0].end()
            assert [s.name for s in job_spans] == ["own"]
        """
    )
    result = run_pytest(pytester, run, "-W", "ignore::pytest_jobtrace.JobtraceWarning")
    result.assert_outcomes(passed=2)


# --- whose provider: the application's wins, and providers built before the plugin are captured ------------------


@fresh_process
def test_the_application_s_provider_wins_even_after_the_first_capture(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        tracer = trace.get_tracer("app")  # module level: caches whatever it meets first

        def test_before_the_app_sets_one(job_spans):
            with tracer.start_as_current_span("before"):
                pass
            assert [s.name for s in job_spans] == ["before"]

        @pytest.fixture
        def app():
            provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
            trace.set_tracer_provider(provider)  # as an app factory would, in a later fixture
            return provider

        def test_after_the_app_sets_one(job_spans, app):
            assert trace.get_tracer_provider() is app
            with tracer.start_as_current_span("module_level"):
                pass
            with trace.get_tracer("fresh").start_as_current_span("fresh"):
                pass
            services = [(s.name, s.resource.attributes.get("service.name")) for s in job_spans]
            assert services == [("module_level", "shop"), ("fresh", "shop")]
        """
    )
    result = run_pytest(pytester, run, "-p", "no:logging")  # OpenTelemetry's refusal would reach stderr
    result.assert_outcomes(passed=2)
    assert_clean(result)


@fresh_process
def test_a_provider_built_before_the_plugin_starts_is_captured(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        early_plugin="""
        from opentelemetry.sdk.trace import TracerProvider

        EARLY = TracerProvider()  # built while pytest loads -p plugins, before pytest-jobtrace starts
        """
    )
    pytester.makepyfile(
        """
        from early_plugin import EARLY

        def test_early_provider(job_spans):
            with EARLY.get_tracer("app").start_as_current_span("early"):
                pass
            assert [s.name for s in job_spans] == ["early"]
        """
    )
    result = run_pytest(pytester, run, "-p", "early_plugin")
    result.assert_outcomes(passed=1)


@fresh_process
def test_the_stand_in_global_provider_still_offers_the_sdk_api(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        def test_add_a_processor_to_the_global(job_spans):
            exporter = InMemorySpanExporter()
            trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
            with trace.get_tracer("app").start_as_current_span("exported"):
                pass
            assert trace.get_tracer_provider().force_flush()
            assert [s.name for s in exporter.get_finished_spans()] == ["exported"]
            assert [s.name for s in job_spans] == ["exported"]
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=1)
