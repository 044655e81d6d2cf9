"""Span and job hygiene: what a test left behind is reported as a warning that points at the test."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pytest

from pytest_jobtrace._core.capture import CaptureSink, LeakedSpan


class JobtraceWarning(pytest.PytestWarning):
    """A span left unfinished or ended after its test, or a job enqueued and never performed."""


JobtraceWarning.__module__ = "pytest_jobtrace"


def warn_at(item: pytest.Item, message: str) -> None:
    """A JobtraceWarning pointing at the test it concerns, not at this plugin."""
    __tracebackhide__ = True
    _, line, _ = item.location
    warnings.warn_explicit(JobtraceWarning(message), JobtraceWarning, str(item.path), (line or 0) + 1)


def report_unfinished(item: pytest.Item, sink: CaptureSink, policy: str) -> None:
    __tracebackhide__ = True
    open_spans = list(sink.unfinished.values())
    if not open_spans or policy == "ignore":
        return
    shown = ", ".join(repr(s.name) for s in open_spans[:10])
    message = (
        f"{len(open_spans)} span(s) started in this test never ended: {shown}. "
        "End every span (use `with tracer.start_as_current_span(...)`), and join threads or shut down "
        "executors that run traced work before the test returns. "
        "(Silence with @pytest.mark.jobtrace(unfinished='ignore') or --jobtrace-unfinished=ignore.)"
    )
    if policy == "error":
        pytest.fail(message, pytrace=False)
    warn_at(item, message)


def report_leaks(item: pytest.Item, leaks: Sequence[LeakedSpan]) -> None:
    for leak in leaks:
        if leak.received:
            warn_at(item, received_leak_message(leak))
            continue
        during = f"during {leak.ended_in}" if leak.ended_in else "between tests"
        warn_at(
            item,
            f"span {leak.name!r} started in {leak.started_in} but ended {during}, after its test had "
            "finished; it is in no test's capture. Wait in the test for the thread or task that runs "
            "it (join it, or shut the executor down).",
        )


def received_leak_message(leak: LeakedSpan) -> str:
    """A span that came over OTLP too late for its test, or for no test at all."""
    when = f"during {leak.ended_in}" if leak.ended_in else "between tests"
    if not leak.started_in:
        return (
            f"span {leak.name!r} was received over OTLP but belongs to no test: its trace was neither started "
            "in a test nor linked from one of its spans; it is in no test's capture."
        )
    return (
        f"span {leak.name!r} of {leak.started_in} was received over OTLP {when}, after that test had finished; "
        "it is in no test's capture. Call job_spans.wait() in the test so that it waits for its jobs' spans."
    )
