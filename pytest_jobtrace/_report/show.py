"""``--jobtrace-show``: a test's spans, jobs folded, as a section of its pytest report."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._core.forest import SpanForest
from pytest_jobtrace._core.render import render_as
from pytest_jobtrace._report.safe import neutral_span


def section_title(when: str) -> str:
    # Like pytest's own "Captured stdout call": the phase says how far the test had got.
    return f"jobtrace spans {when}"


def show_text(spans: Sequence[ReadableSpan], still_open: Sequence[str] = ()) -> str:
    """The rendered forest (the ``"jobs"`` format of ``render()``), free of control characters."""
    text = render_as(SpanForest([neutral_span(span) for span in spans]), "jobs")
    if still_open:
        text += f"\n\n(still open, not shown: {len(still_open)} span{'s' * (len(still_open) != 1)})"
    return text


def print_passed_sections(terminalreporter: pytest.TerminalReporter) -> None:
    """With ``--jobtrace-show=all``, passed tests' spans (pytest prints their sections only with ``-rP``)."""
    shown = [
        (report, content)
        for report in terminalreporter.getreports("passed")
        for title, content in report.sections
        if title.startswith("jobtrace spans ")
    ]
    if not shown:
        return
    terminalreporter.write_sep("=", "jobtrace: spans of passed tests")
    for report, content in shown:
        terminalreporter.write_sep("_", report.head_line or report.nodeid, green=True, bold=True)
        terminalreporter.write_line(content)
