"""The job_spans capture, tested as users run it: through pytester, in-process and in a subprocess."""

from __future__ import annotations

import pytest
from helpers import assert_in_order, both_modes, run_pytest

# The global TracerProvider is per process: tests about who sets it first need a process of their own.
fresh_process = pytest.mark.parametrize("run", ["subprocess"])

OVERRIDE_WARNING = "Overriding of current TracerProvider is not allowed"


def assert_clean(result: pytest.RunResult) -> None:
    """No OpenTelemetry override warning and no jobtrace warning anywhere in the output."""
    output = result.stdout.str() + result.stderr.str()
    assert OVERRIDE_WARNING not in output
    assert "JobtraceWarning" not in output


@both_modes
def test_captures_spans_and_isolates_tests(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer("app")  # module level, before any provider exists

        def test_first(job_spans):
            with tracer.start_as_current_span("first"):
                pass
            assert [s.name for s in job_spans.spans] == ["first"]

        def test_second(job_spans):
            assert len(job_spans) == 0
            with tracer.start_as_current_span("second"):
                pass
            assert [s.name for s in job_spans] == ["second"]
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=2)
    assert_clean(result)


@fresh_process
def test_provider_set_by_application_before_plugin_starts(pytester: pytest.Pytester, run: str) -> None:
    pytester.makeconftest(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        APP_EXPORTER = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(APP_EXPORTER))
        trace.set_tracer_provider(provider)
        """
    )
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from conftest import APP_EXPORTER

        def test_app_provider_kept(job_spans):
            with trace.get_tracer("app").start_as_current_span("work"):
                pass
            assert [s.name for s in job_spans] == ["work"]
            assert [s.name for s in APP_EXPORTER.get_finished_spans()] == ["work"]
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=1)
    assert_clean(result)


@fresh_process
def test_provider_set_by_application_after_plugin_starts(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        tracer = trace.get_tracer("app")

        @pytest.fixture(scope="session", autouse=True)
        def app():
            trace.set_tracer_provider(TracerProvider())  # as an app factory would, once

        def test_one(job_spans):
            with tracer.start_as_current_span("one"):
                pass
            assert [s.name for s in job_spans] == ["one"]

        def test_two(job_spans):
            with tracer.start_as_current_span("two"):
                pass
            assert [s.name for s in job_spans] == ["two"]
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=2)
    assert_clean(result)


@fresh_process
def test_testbase_unittests_before_and_after_pytest_tests(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from opentelemetry.test.test_base import TestBase

        tracer = trace.get_tracer("app")  # a module-level ProxyTracer shared by every test

        class TestA(TestBase):
            def test_resets_globals(self):
                with trace.get_tracer("a").start_as_current_span("unittest-a"):
                    pass
                assert [s.name for s in self.get_finished_spans()] == ["unittest-a"]

        def test_pytest_style(job_spans):
            with tracer.start_as_current_span("module-level"):
                pass
            with trace.get_tracer("fresh").start_as_current_span("fresh"):
                pass
            assert [s.name for s in job_spans] == ["module-level", "fresh"]

        class TestB(TestBase):
            def test_again(self):
                with trace.get_tracer("b").start_as_current_span("unittest-b"):
                    pass
                assert [s.name for s in self.get_finished_spans()] == ["unittest-b"]

        def test_pytest_style_after(job_spans):
            with tracer.start_as_current_span("module-level-again"):
                pass
            with trace.get_tracer("fresh2").start_as_current_span("fresh-again"):
                pass
            assert [s.name for s in job_spans] == ["module-level-again", "fresh-again"]
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=4)
    assert_clean(result)


@both_modes
def test_span_ending_after_its_test_is_reported_not_captured(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import threading
        from opentelemetry import trace

        tracer = trace.get_tracer("app")
        started = threading.Event()
        release = threading.Event()
        done = threading.Event()

        def slow():
            with tracer.start_as_current_span("slow_work"):
                started.set()
                release.wait(5)
            done.set()

        def test_starts_thread(job_spans):
            threading.Thread(target=slow, daemon=True).start()
            started.wait(5)  # the span starts in this test, however slowly the thread gets going

        def test_next(job_spans):
            release.set()
            done.wait(5)
            assert [s.name for s in job_spans] == []
        """
    )
    result = run_pytest(pytester, run, "-W", "default")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*1 span(s) started in this test never ended: 'slow_work'*",
            "*span 'slow_work' started in test_span_ending_after_its_test_is_reported_not_captured.py::"
            "test_starts_thread but ended during *::test_next, after its test had finished*",
        ]
    )


@both_modes
def test_unfinished_span_policies(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_warns(job_spans):
            tracer.start_span("never_ended_1")

        @pytest.mark.jobtrace(unfinished="error")
        def test_errors():
            tracer.start_span("never_ended_2")

        @pytest.mark.jobtrace(unfinished="ignore")
        def test_ignored():
            tracer.start_span("never_ended_3")
        """
    )
    result = run_pytest(pytester, run, "-W", "default")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_errors*",
            "*1 span(s) started in this test never ended: 'never_ended_2'*",
            "*JobtraceWarning: 1 span(s) started in this test never ended: 'never_ended_1'*",
        ]
    )
    assert "never_ended_3" not in result.stdout.str()


@both_modes
def test_marker_gives_fixture_and_rejects_typos(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_jobtrace import assert_span_tree

        @pytest.mark.jobtrace
        def test_marked():
            with trace.get_tracer("app").start_as_current_span("marked"):
                pass
            assert_span_tree("marked")

        @pytest.mark.jobtrace(exactt=True)
        def test_typo():
            pass

        @pytest.mark.jobtrace(True)
        def test_positional():
            pass
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*TypeError: @pytest.mark.jobtrace: unknown option(s) exactt; valid options: exact, ordered, unfinished,*",
            "*TypeError: @pytest.mark.jobtrace takes keyword arguments only, got (True,)*",
        ]
    )


@both_modes
def test_marker_and_ini_defaults_for_exact(pytester: pytest.Pytester, run: str) -> None:
    pytester.makeini("[pytest]\njobtrace_exact = true\n")
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_jobtrace import assert_span_tree

        tracer = trace.get_tracer("app")

        def test_exact_from_ini(job_spans):
            with tracer.start_as_current_span("root"):
                with tracer.start_as_current_span("extra"):
                    pass
            assert_span_tree("root")

        @pytest.mark.jobtrace(exact=False)
        def test_marker_overrides_ini(job_spans):
            with tracer.start_as_current_span("root"):
                with tracer.start_as_current_span("extra"):
                    pass
            assert_span_tree("root")
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*span tree does not match (exact): unexpected child 'extra' under 'root'*"])


@both_modes
def test_failure_output_hides_plugin_frames(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from pytest_jobtrace import assert_span_tree, span

        def test_fails(job_spans):
            with trace.get_tracer("app").start_as_current_span("POST /orders") as s:
                s.set_attribute("http.status", 500)
            assert_span_tree(span("POST /orders", attributes={"http.status": 201}))
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(failed=1)
    assert_in_order(
        result,
        "E       pytest_jobtrace.SpanTreeMismatch: span tree does not match: at 'POST /orders': "
        "attributes['http.status']: expected 201, got 500",
        "E       expected:",
        "E         POST /orders {http.status=201}",
        "E       captured (1 span in 1 trace):",
        "E         POST /orders    <-- attributes['http.status']: expected 201, got 500",
    )
    assert "pytest_jobtrace/_" not in result.stdout.str()


@both_modes
def test_assert_without_capture_says_what_to_do(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree

        def test_no_fixture():
            assert_span_tree("anything")
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert_span_tree() without spans= needs the job_spans fixture*"])


@both_modes
def test_find_clear_render(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import re
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        def test_api(job_spans):
            with tracer.start_as_current_span("charge", attributes={"payment.status": "ok", "amount": 3}):
                pass
            with tracer.start_as_current_span("charge", attributes={"payment.status": "declined"}):
                pass
            assert len(job_spans.find("charge")) == 2
            assert [s.attributes["payment.status"] for s in job_spans.find(
                re.compile("ch.*"), attributes={"payment.status": "ok"})] == ["ok"]
            assert len(job_spans.find(amount=3)) == 1
            assert len(job_spans.find(attributes={"amount": None})) == 1
            assert job_spans.render() == "charge\\n\\ncharge"  # two traces, a blank line apart
            assert job_spans.render("mermaid").startswith("graph TD")
            job_spans.clear()
            assert job_spans.spans == []
            assert job_spans.render() == "(no spans captured)"

        def test_clear_then_capture_again(job_spans):
            with tracer.start_as_current_span("before_clear"):
                pass
            job_spans.assert_span_tree("before_clear")
            job_spans.clear()
            with tracer.start_as_current_span("after_clear"):  # as many spans as before: not a stale view
                pass
            job_spans.assert_span_tree("after_clear", exact=True)
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=2)


@both_modes
def test_under_xdist(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_jobtrace import assert_span_tree, span

        tracer = trace.get_tracer("app")

        @pytest.mark.parametrize("i", range(20))
        def test_many(job_spans, i):
            with tracer.start_as_current_span(f"root-{i}"):
                with tracer.start_as_current_span("child"):
                    pass
            assert len(job_spans) == 2
            assert_span_tree(span(f"root-{i}", children=["child"]), exact=True)
        """
    )
    result = run_pytest(pytester, run, "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=20)
    result.stdout.fnmatch_lines(["*2 workers*"])
    assert_clean(result)


@both_modes
def test_usage_errors_show_the_users_line_not_plugin_frames(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_jobtrace import assert_span_tree, job, span
        from pytest_jobtrace.builtin import Job

        class Ping(Job):
            def perform(self):
                Pong.perform_later()

        class Pong(Job):
            def perform(self):
                Ping.perform_later()

        def test_bad_key(job_spans):
            assert_span_tree({"name": "x", "attrs": {}})

        def test_bad_tree(job_spans):
            assert_span_tree("a\\n   b\\n  c")

        def test_bad_kind():
            span("x", kind="sever")

        def test_bad_outcome():
            job("X", outcome="success")

        def test_no_fixture():
            assert_span_tree("x")

        @pytest.mark.jobtrace(exactt=True)
        def test_marker_typo():
            pass

        @pytest.mark.filterwarnings("error::pytest_jobtrace.JobtraceWarning")
        def test_unfinished_as_error(job_spans):
            trace.get_tracer("t").start_span("open")

        @pytest.mark.jobtrace(mode="inline")
        def test_inline_chain(builtin_jobs):
            Ping.perform_later()
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(failed=6, passed=1, errors=2)
    output = result.stdout.str()
    assert "pytest_jobtrace/" not in output
    assert output.count("in perform") == 0  # the inline chain is not replayed frame by frame
    for message in (
        "ValueError: unknown key(s) 'attrs' in an expected span; valid keys: name, kind,",
        "pytest_jobtrace.TextTreeError: line 2: 'b' is indented 3 spaces, but the tree uses 2 spaces per level",
        "ValueError: kind='sever' is not a span kind",
        "ValueError: outcome='success': use one of succeeded, failed, discarded, pending",
        "RuntimeError: assert_span_tree() without spans= needs the job_spans fixture",
        "TypeError: @pytest.mark.jobtrace: unknown option(s) exactt",
        "pytest_jobtrace.JobtraceWarning: 1 span(s) started in this test never ended: 'open'",
        "pytest_jobtrace.JobChainError: inline jobs are nested 65 deep (limit 64)",
    ):
        assert message in output, message


@pytest.mark.parametrize("xdist", [[], ["-n", "2", "-p", "xdist"]], ids=["plain", "xdist"])
def test_span_ending_after_the_last_test_is_reported(pytester: pytest.Pytester, xdist: list[str]) -> None:
    pytester.makeconftest(
        """
        import threading
        from opentelemetry import trace

        started = threading.Event()
        release = threading.Event()
        workers = []

        def late():
            with trace.get_tracer("app").start_as_current_span("late_span"):
                started.set()
                release.wait(5)

        def pytest_sessionfinish(session):
            # An executor shut down at the end of the session, after every test's teardown.
            release.set()
            for worker in workers:
                worker.join(5)
        """
    )
    pytester.makepyfile(
        """
        import threading
        from conftest import late, started, workers

        def test_last(job_spans):
            workers.append(threading.Thread(target=late))
            workers[-1].start()
            started.wait(5)  # the span starts in this test
        """
    )
    result = pytester.runpytest_subprocess("-W", "ignore::pytest_jobtrace.JobtraceWarning", *xdist)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*jobtrace: spans that ended after their test*",
            "'late_span' started in test_span_ending_after_the_last_test_is_reported.py::test_last but ended after*",
        ]
    )


@fresh_process
def test_a_provider_a_conftest_builds_without_setting_it_global_is_captured(
    pytester: pytest.Pytester, run: str
) -> None:
    pytester.makeconftest(
        """
        from opentelemetry.sdk.trace import TracerProvider

        PRIVATE = TracerProvider()  # the app's own provider, never made global
        """
    )
    pytester.makepyfile(
        """
        from conftest import PRIVATE

        def test_private_provider(job_spans):
            with PRIVATE.get_tracer("app").start_as_current_span("private"):
                pass
            assert [s.name for s in job_spans] == ["private"]
        """
    )
    result = run_pytest(pytester, run)
    result.assert_outcomes(passed=1)


@both_modes
def test_a_span_from_a_test_without_capture_does_not_land_in_the_next_capture(
    pytester: pytest.Pytester, run: str
) -> None:
    pytester.makeconftest(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())  # the app's, so the first test's spans record
        """
    )
    pytester.makepyfile(
        """
        import threading
        from opentelemetry import trace

        release, done = threading.Event(), threading.Event()

        def slow():
            with trace.get_tracer("app").start_as_current_span("background_sync"):
                release.wait(5)
            done.set()

        def test_without_capture():
            threading.Thread(target=slow, daemon=True).start()

        def test_with_capture(job_spans):
            release.set()
            done.wait(5)
            with trace.get_tracer("app").start_as_current_span("own"):
                pass
            assert [s.name for s in job_spans] == ["own"]
        """
    )
    result = run_pytest(pytester, run, "-W", "default")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*span 'background_sync' started in *::test_without_capture but ended during *::test_with_capture*"]
    )


def test_find_filters_on_the_span_s_own_kind_and_status(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, StatusCode

        tracer = trace.get_tracer(__name__)

        def test_find(job_spans):
            with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER, attributes={"kind": "page"}):
                with tracer.start_as_current_span("query") as span:
                    span.set_status(StatusCode.ERROR)
            # kind= is the span kind, never an attribute named "kind": this once returned [] and passed wrongly
            assert [s.name for s in job_spans.find(kind="server")] == ["GET /"]
            assert [s.name for s in job_spans.find(kind=SpanKind.SERVER)] == ["GET /"]
            assert job_spans.find(kind="client") == []
            assert [s.name for s in job_spans.find(status="ERROR")] == ["query"]
            assert [s.name for s in job_spans.find(attributes={"kind": "page"})] == ["GET /"]
            with pytest.raises(ValueError, match="kind='sever' is not a span kind"):
                job_spans.find(kind="sever")
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
