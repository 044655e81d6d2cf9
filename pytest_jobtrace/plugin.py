"""pytest entry point: options, the jobtrace marker, the job_spans fixture and span hygiene checks."""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterator, Sequence

import pytest

from pytest_jobtrace import _capture
from pytest_jobtrace._builtin_adapter import ADAPTER as BUILTIN
from pytest_jobtrace._builtin_model import PendingJob
from pytest_jobtrace._builtin_runtime import JobRuntime
from pytest_jobtrace._capture import ROUTER, CaptureSink
from pytest_jobtrace._jobspans import JobSpans, _current
from pytest_jobtrace._options import MARKER_HELP, JobtraceOptions, add_options, options_for


class JobtraceWarning(pytest.PytestWarning):
    """A span was left unfinished, or ended after the test that started it."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    _capture.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    _capture.uninstall()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixturenames = getattr(item, "fixturenames", None)
        if fixturenames is not None and item.get_closest_marker("jobtrace") and "job_spans" not in fixturenames:
            fixturenames.insert(0, "job_spans")


@pytest.fixture(name="jobtrace_options")
def _jobtrace_options(request: pytest.FixtureRequest) -> JobtraceOptions:
    """The pytest-jobtrace options in force for this test (ini, command line, then the marker)."""
    return options_for(request.node)


# The test being run. job_spans reads it here rather than asking for `request`, and its options
# directly rather than through the jobtrace_options fixture: each of those costs pytest 20-30
# microseconds a test, more than the capture itself (see benchmarks/run.py).
_running: list[pytest.Item] = []


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    _running.append(item)
    ROUTER.test_label = item.nodeid
    try:
        return (yield)
    finally:
        _running.pop()


@pytest.fixture(name="job_spans")
def _job_spans() -> Iterator[JobSpans]:
    """Capture every span that ends during this test; assert on them with ``assert_span_tree``."""
    item = _running[-1]
    options = options_for(item)
    _capture.ensure_global_provider()
    sink = CaptureSink(item.nodeid)
    capture = JobSpans(sink, exact=options.exact, ordered=options.ordered)
    ROUTER.push(sink)
    _current.append(capture)
    try:
        yield capture
    finally:
        _current.remove(capture)
        ROUTER.pop(sink)
        sink.closed = True
    _report_unfinished(item, sink, options.unfinished)


@pytest.fixture(name="builtin_jobs")
def _builtin_jobs(
    request: pytest.FixtureRequest, job_spans: JobSpans, jobtrace_options: JobtraceOptions
) -> Iterator[JobRuntime]:
    """Run built-in ``Job`` subclasses in-process for this test: ``perform_later`` enqueues, ``drain()`` runs."""
    runtime = BUILTIN.activate(jobtrace_options)
    try:
        yield runtime
    finally:
        runtime.close()
    _report_undrained(request.node, runtime.pending)


def _warn(item: pytest.Item, message: str) -> None:
    """A JobtraceWarning pointing at the test it concerns, not at this plugin."""
    _, line, _ = item.location
    warnings.warn_explicit(JobtraceWarning(message), JobtraceWarning, str(item.path), (line or 0) + 1)


def _report_undrained(item: pytest.Item, pending: Sequence[PendingJob]) -> None:
    if pending:
        shown = ", ".join(p.describe() for p in pending[:10])
        _warn(
            item,
            f"{len(pending)} job(s) were enqueued but never performed: {shown}. "
            "Call builtin_jobs.drain() before asserting, or use @pytest.mark.jobtrace(mode='inline').",
        )


def _report_unfinished(item: pytest.Item, sink: CaptureSink, policy: str) -> None:
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
    _warn(item, message)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    for leak in ROUTER.take_leaks():
        during = f"during {leak.ended_in}" if leak.ended_in else "between tests"
        _warn(
            item,
            f"span {leak.name!r} started in {leak.started_in} but ended {during}, after its test had "
            "finished; it is in no test's capture. Wait in the test for the thread or task that runs "
            "it (join it, or shut the executor down).",
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    leaks = ROUTER.take_leaks()
    if leaks:
        terminalreporter.section("jobtrace: spans that ended after their test")
        for leak in leaks:
            terminalreporter.line(f"{leak.name!r} started in {leak.started_in}")
