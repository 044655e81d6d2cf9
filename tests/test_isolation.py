"""Nothing the capture keeps outlives its test (checked in-process, where the router can be inspected)."""

from __future__ import annotations

import pytest

from pytest_jobtrace._core.capture import ROUTER, OwnerLabel


def test_nothing_accumulates_across_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        @pytest.mark.parametrize("i", range(300))
        def test_many(job_spans, i):
            for _ in range(5):
                with tracer.start_as_current_span("s"):
                    pass
        """
    )
    open_before = len(ROUTER._open)
    result = pytester.runpytest()
    result.assert_outcomes(passed=300)
    assert len(ROUTER._open) == open_before
    assert len(ROUTER._stack) <= 1  # only this test's own capture, if any


def test_a_span_never_ended_keeps_only_its_tests_label(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        @pytest.mark.jobtrace(unfinished="ignore")
        def test_leaves_a_span_open(job_spans):
            for _ in range(100):
                with trace.get_tracer("app").start_as_current_span("captured"):
                    pass
            trace.get_tracer("app").start_span("never_ended")
        """
    )
    before = dict(ROUTER._open)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    [(_, entry)] = [value for key, value in ROUTER._open.items() if key not in before]
    assert isinstance(entry, OwnerLabel)  # not the capture with its 100 spans
    assert entry.label == "test_a_span_never_ended_keeps_only_its_tests_label.py::test_leaves_a_span_open"
