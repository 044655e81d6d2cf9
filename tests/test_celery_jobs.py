"""The ``celery_jobs`` fixture and job assertions on Celery spans, run as users run them (pytester)."""

from __future__ import annotations

import textwrap

import celery.contrib.pytest  # noqa: F401
import opentelemetry.instrumentation.celery  # noqa: F401
import pytest
from helpers import assert_in_order, both_modes, run_pytest

import pytest_jobtrace.celery._runtime  # noqa: F401

# The imports above are for in-process pytester runs: pytester forgets the modules a run imported, so a
# second run would import a second Celery next to objects still holding the first one's.

SHOP = """
import functools

from celery import Celery
from celery.exceptions import Ignore
from opentelemetry import trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer("shop")
app = Celery("shop", broker="memory://", backend="cache+memory://", set_as_current=False)
# Not shared: in-process pytester runs import this module afresh each time, and a shared task would
# land on every later app (as the first one registered under its name).
task = functools.partial(app.task, shared=False)


class PaymentError(Exception):
    pass


@task
def send_confirmation(order_id):
    with tracer.start_as_current_span("render_email"):
        pass


@task(bind=True)
def process_order(self, order_id):
    with tracer.start_as_current_span("charge"):
        if self.request.retries < 2:
            raise self.retry(countdown=60, exc=ConnectionError("gateway timeout"))
    send_confirmation.delay(order_id)
    return order_id


@task
def charge(order_id):
    raise PaymentError(f"card declined for order {order_id}")


@task
def skip(order_id):
    raise Ignore()


def checkout(order_id):
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        return process_order.delay(order_id)
"""

INI = """
[pytest]
jobtrace_celery_app = shop:app
"""


@pytest.fixture(name="shop")
def _shop(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(shop=SHOP)
    pytester.makeini(INI)
    pytester.syspathinsert()
    return pytester


@both_modes
def test_a_retried_task_is_one_job_with_its_attempts(shop: pytest.Pytester, run: str) -> None:
    shop.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job, span
        from shop import checkout

        def test_short_name(celery_jobs, job_spans):
            result = checkout(42)
            celery_jobs.drain()
            assert result.get(timeout=1) == 42
            assert celery_jobs.clock.now >= 120  # two countdowns of 60 s, on the virtual clock
            assert_span_tree(
                [span("POST /orders", children=[job("process_order", attempts=3, outcome="succeeded",
                                       children=["charge", job("send_confirmation", attempts=1)])])],
                job_spans,
            )

        def test_dotted_name_and_retry_reasons(celery_jobs, job_spans):
            checkout(42)
            celery_jobs.drain()
            assert_span_tree([job("shop.process_order", attempts=3)], job_spans)
            order = job_spans.job("shop.process_order")
            assert (order.system, order.outcome, len(order.attempts)) == ("celery", "succeeded", 3)
            assert order.retry_reasons == ["Retry in 60s: ConnectionError('gateway timeout')"] * 2
            assert [j.short_name for j in job_spans.jobs()] == ["process_order", "send_confirmation"]
        """
    )
    run_pytest(shop, run).assert_outcomes(passed=2)


def test_a_wrong_attempt_count_fails_naming_the_attempts(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job, span
        from shop import checkout

        def test_wrong(celery_jobs, job_spans):
            checkout(42)
            celery_jobs.drain()
            assert_span_tree([span("POST /orders", children=[job("process_order", attempts=2)])], job_spans)
        """
    )
    result = shop.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*job 'process_order': expected 2 attempts, found 3"
            " (attempt 1 retried, attempt 2 retried, attempt 3 succeeded)"
        ]
    )


def test_an_undrained_task_is_named_in_the_failure_and_at_teardown(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job, span
        from shop import checkout

        def test_undrained(celery_jobs, job_spans):
            checkout(42)
            assert_span_tree([job("process_order", attempts=3)], job_spans)
        """
    )
    result = shop.runpytest("-W", "default")
    result.assert_outcomes(failed=1)
    assert_in_order(
        result,
        "job 'process_order' was enqueued under 'POST /orders' but never processed",
        "drain the queue first (celery_jobs.drain())",
        "1 job(s) were enqueued but never performed: shop.process_order(42). Call celery_jobs.drain() before asserting",
    )


def test_a_failed_task_fails_the_drain_unless_failures_are_expected(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import pytest
        from pytest_jobtrace import assert_span_tree, job, span
        from shop import charge

        def test_unexpected(celery_jobs):
            charge.delay(7)
            celery_jobs.drain()

        @pytest.mark.jobtrace(expect_failures=True)
        def test_expected(celery_jobs, job_spans):
            charge.delay(7)
            celery_jobs.drain()
            assert_span_tree([job("charge", outcome="failed", attempts=1)], job_spans)
            assert [run.name for run in celery_jobs.failed] == ["shop.charge"]
        """
    )
    result = shop.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*JobFailedError: celery_jobs.drain(): 1 job failed:",
            "*shop.charge(7) id=* failed after 1 attempt: PaymentError: card declined for order 7",
        ]
    )


def test_span_links_are_matched_by_linked_true(shop: pytest.Pytester) -> None:
    shop.makeconftest(
        """
        import pytest
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        @pytest.fixture(autouse=True)
        def linked_traces():
            CeleryInstrumentor().instrument(use_span_links=True)
            yield
            CeleryInstrumentor().uninstrument()
        """
    )
    shop.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job, span
        from shop import checkout

        def test_linked(celery_jobs, job_spans):
            checkout(42)
            celery_jobs.drain()
            assert not celery_jobs.instrumented  # the conftest's instrumentation and its options are kept
            assert_span_tree([job("process_order", attempts=3, linked=True)], job_spans)

        def test_not_linked(celery_jobs, job_spans):
            checkout(42)
            celery_jobs.drain()
            assert_span_tree([job("process_order", linked=False)], job_spans)
        """
    )
    result = shop.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*job 'process_order': expected attempt 1 to continue the enqueuing trace (linked=False),"
            " but it is in a new trace linked to the enqueue"
        ]
    )


def test_the_app_comes_from_a_celery_app_fixture_then_current_app(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("orders")
    pytester.makepyfile(
        test_elsewhere="""
        def test_current_app(celery_jobs):
            from celery import current_app
            assert celery_jobs.app is current_app._get_current_object()
        """
    )
    pytester.path.joinpath("orders", "conftest.py").write_text(
        textwrap.dedent(
            """
        import pytest
        from celery import Celery

        @pytest.fixture
        def celery_app():
            app = Celery("fixture_app", set_as_current=False)

            @app.task(name="fixture_app.ping", shared=False)
            def ping():
                return "pong"

            return app
            """
        )
    )
    pytester.path.joinpath("orders", "test_orders.py").write_text(
        """
def test_fixture(celery_app, celery_jobs):
    assert celery_jobs.app is celery_app
    result = celery_app.send_task("fixture_app.ping")
    (run,) = celery_jobs.drain()
    assert (run.name, run.verdict) == ("fixture_app.ping", "succeeded")

def test_fixture_not_requested(celery_jobs, request):
    # the conftest's celery_app counts though the test asks only for celery_jobs
    app = request.getfixturevalue("celery_app")
    assert celery_jobs.app is app
    app.send_task("fixture_app.ping")
    assert [p.name for p in celery_jobs.pending] == ["fixture_app.ping"]
    (run,) = celery_jobs.drain()
    assert run.verdict == "succeeded"
"""
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_a_bad_celery_app_option_is_an_error_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\njobtrace_celery_app = nowhere.module:app\n")
    pytester.makepyfile("def test_x(celery_jobs):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*jobtrace celery_app = 'nowhere.module:app': cannot import it*"])


def test_the_marker_chooses_the_app(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        other="from celery import Celery\napp = Celery('other', set_as_current=False)\n",
        test_marker="""
        import pytest

        @pytest.mark.jobtrace(celery_app="other:app")
        def test_marker(celery_jobs):
            assert celery_jobs.app.main == "other"

        def test_ini(celery_jobs):
            assert celery_jobs.app.main == "shop"
        """,
    )
    shop.runpytest().assert_outcomes(passed=2)


def test_an_ignored_task_is_discarded(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job
        from shop import skip

        def test_discarded(celery_jobs, job_spans):
            skip.delay(1)
            celery_jobs.drain()
            assert_span_tree([job("skip", outcome="discarded")], job_spans)

        def test_wrong(celery_jobs, job_spans):
            skip.delay(1)
            celery_jobs.drain()
            assert_span_tree([job("skip", outcome="succeeded")], job_spans)
        """
    )
    result = shop.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*job 'skip': expected outcome 'succeeded', got 'discarded' (attempt 1 discarded)"])


def test_celery_contrib_pytest_app_fixture_is_used(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job

        def test_with_contrib_app(celery_app, celery_jobs):
            @celery_app.task(bind=True)
            def process_order(self, order_id):
                if self.request.retries < 1:
                    raise self.retry(countdown=5)
                return order_id

            result = process_order.delay(42)
            celery_jobs.drain()
            assert result.get(timeout=1) == 42  # celery.contrib.pytest's app has a memory result backend
            assert celery_jobs.clock.now == 5
            assert_span_tree([job("process_order", attempts=2)])
        """
    )
    pytester.runpytest("-p", "celery.contrib.pytest").assert_outcomes(passed=1)


def test_under_xdist(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        import pytest
        from pytest_jobtrace import assert_span_tree, job
        from shop import checkout

        @pytest.mark.parametrize("order_id", range(4))
        def test_order(celery_jobs, order_id):
            checkout(order_id)
            celery_jobs.drain()
            assert_span_tree([job("process_order", attempts=3, children=["charge", job("send_confirmation")])])
        """
    )
    shop.runpytest_subprocess("-n", "2").assert_outcomes(passed=4)


def test_without_celery_installed_the_fixture_names_the_extra(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys

        sys.modules["celery"] = None  # as if Celery were not installed
        """
    )
    pytester.makepyfile("def test_x(celery_jobs):\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*AdapterUnavailable: the celery_jobs fixture needs celery, which is not installed:"
            ' pip install "pytest-jobtrace[[]celery]"'  # [[] is a literal [ in fnmatch
        ]
    )


def test_the_instrumentation_uses_the_jobtrace_tracer_provider(shop: pytest.Pytester) -> None:
    shop.makeconftest(
        """
        import pytest
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        @pytest.fixture
        def jobtrace_tracer_provider():
            return TracerProvider(sampler=ALWAYS_OFF)  # production's sampler, at its most extreme
        """
    )
    shop.makepyfile(
        """
        from shop import process_order

        def test_sampled_out(celery_jobs, job_spans):
            process_order.delay(42)
            celery_jobs.drain()
            assert celery_jobs.instrumented
            assert [s.name for s in job_spans.spans if "/" in s.name] == []
        """
    )
    shop.runpytest().assert_outcomes(passed=1)


def test_countdowns_are_due_on_the_tests_shared_clock(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        """
        from shop import send_confirmation

        def test_clock(celery_jobs, job_clock, builtin_jobs):
            assert celery_jobs.clock is job_clock is builtin_jobs.clock
            job_clock.advance(100)
            send_confirmation.apply_async((1,), countdown=30)
            send_confirmation.apply_async((2,), countdown=10)
            assert [(p.describe(), p.due) for p in celery_jobs.pending] == [
                ("shop.send_confirmation(2)", 110.0),
                ("shop.send_confirmation(1)", 130.0),
            ]
            celery_jobs.drain()
            assert job_clock.now == 130.0
        """
    )
    shop.runpytest().assert_outcomes(passed=1)
