"""The report hooks, registered as their own plugin only when a report option is on.

On an xdist worker (or a run without xdist) ``pytest_runtest_makereport`` adds to each test's reports
what the options ask for: a report section (``--jobtrace-show``) and, for the HTML report, on the teardown
report the test's spans as the page's JSON text (``jobtrace_trace``: text crosses from an xdist worker at
no cost) and on a failed report its failure (``jobtrace_failure``). Reports carry extra attributes across
xdist, so the controller gathers them from ``pytest_runtest_logreport`` and writes the file at the end.
OTLP files are written where the spans are (the worker), since they need the SDK's span objects.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_jobtrace._core.clock import VirtualClock
from pytest_jobtrace._jobs.jobspans import JobSpans
from pytest_jobtrace._jobs.registry import adapters

if TYPE_CHECKING:  # the report modules are imported only when their option is on
    from pytest_jobtrace._report.html import SessionLog

PLUGIN_NAME = "jobtrace-report"
TRACE_KEY = "jobtrace_trace"
FAILURE_KEY = "jobtrace_failure"
TIME_KEY = "jobtrace_job_time"


@dataclass(frozen=True)
class Settings:
    show: str | None = None
    html: Path | None = None
    export: Path | None = None

    @property
    def active(self) -> bool:
        return bool(self.show or self.html or self.export)


class ReportPlugin:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self.session_log: SessionLog | None = None
        self.trace_json: Callable[[JobSpans, bool], str] | None = None
        if settings.html is not None:
            from pytest_jobtrace._report.data import trace_json  # once, not at each test's end

            self.trace_json = trace_json
        if settings.html is not None and not self.is_worker:
            from pytest_jobtrace._report.html import SessionLog

            self.session_log = SessionLog()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and self.settings.html is not None:
            from pytest_jobtrace._report.failure import failure_data

            setattr(report, FAILURE_KEY, failure_data(report, call))
        if report.when == "teardown" and self.settings.html is not None:
            self._add_job_time(item, report)
        capture = _capture_of(item)
        if capture is not None:
            self._add_show_section(item, report, capture)
            if report.when == "teardown":
                self._finish_test(item, report, capture)
        return report

    def _add_show_section(self, item: pytest.Item, report: pytest.TestReport, capture: JobSpans) -> None:
        show = self.settings.show
        if show is None or not (report.failed or (show == "all" and report.when == "call")):
            return
        from pytest_jobtrace._report.show import section_title, show_text

        text = show_text(capture.spans, capture._sink.unfinished_names())
        job_time = _job_time_of(item)
        if job_time:
            text += "\n\n" + job_time
        report.sections.append((section_title(report.when), text))

    def _add_job_time(self, item: pytest.Item, report: pytest.TestReport) -> None:
        clock = clock_of(item)
        if clock is not None:
            from pytest_jobtrace._report.timeline import job_time_data

            data = job_time_data(clock, pending_of(item))
            if data is not None:
                setattr(report, TIME_KEY, data)

    def _finish_test(self, item: pytest.Item, report: pytest.TestReport, capture: JobSpans) -> None:
        if self.trace_json is not None:
            setattr(report, TRACE_KEY, self.trace_json(capture, _uses_job_fixture(item)))
        if self.settings.export is not None:
            from pytest_jobtrace._report.otlp import export_test

            export_test(self.settings.export, item.nodeid, capture.spans)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.session_log is not None:  # on the controller (a worker's reports still have to travel)
            # Taken off the report, which pytest keeps until the session ends: the log keeps it as text.
            extra = report.__dict__
            self.session_log.add(
                report, extra.pop(TRACE_KEY, None), extra.pop(FAILURE_KEY, None), extra.pop(TIME_KEY, None)
            )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.session_log is not None and self.settings.html is not None:
            self.session_log.write(self.settings.html, session.config)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.settings.show == "all" and not terminalreporter.hasopt("P"):
            from pytest_jobtrace._report.show import print_passed_sections

            print_passed_sections(terminalreporter)
        if self.session_log is not None and self.settings.html is not None:
            terminalreporter.write_line(f"jobtrace: HTML report written to {self.settings.html}")
        if self.settings.export is not None and not self.is_worker:
            terminalreporter.write_line(f"jobtrace: OTLP JSON written to {self.settings.export}")


def _job_time_of(item: pytest.Item) -> str:
    """The test's job timeline on its clock, with what its job runners still hold (``--jobtrace-show``)."""
    from pytest_jobtrace._report.jobtime import job_time_text

    clock = clock_of(item)
    return job_time_text(clock, pending_of(item)) if clock is not None else ""


def clock_of(item: pytest.Item) -> VirtualClock | None:
    """The test's ``job_clock`` (its ``timeline`` is the job time), if the test had one."""
    funcargs = getattr(item, "funcargs", None) or {}
    clock = funcargs.get("job_clock")
    return clock if isinstance(clock, VirtualClock) else None


def pending_of(item: pytest.Item) -> list[Any]:
    """The jobs the test's job runners still hold (``PendingItem``s: ``describe()``, ``due`` where known)."""
    funcargs = getattr(item, "funcargs", None) or {}
    pending: list[Any] = []
    for adapter in adapters().values():
        runner = funcargs.get(adapter.fixture_name)
        try:
            pending += list(runner.pending) if runner is not None else []
        except Exception:  # a runner whose broker went away: its timeline still says what happened
            continue
    return pending


def _uses_job_fixture(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return any(adapter.fixture_name in names for adapter in adapters().values())


def _capture_of(item: pytest.Item) -> JobSpans | None:
    """The test's capture, if it asked for ``job_spans`` (tests without it capture nothing)."""
    funcargs = getattr(item, "funcargs", None)
    capture = funcargs.get("job_spans") if funcargs else None
    return capture if isinstance(capture, JobSpans) else None
