"""pytest-jobtrace: assert on the OpenTelemetry traces that background jobs produce.

Request the ``job_spans`` fixture and call :func:`assert_span_tree` with the tree you expect.
"""

from __future__ import annotations

from pytest_jobtrace._core import check as _assert
from pytest_jobtrace._core import jobspans as _jobspans
from pytest_jobtrace._core import render as _render
from pytest_jobtrace._core.check import SpanTreeMismatch
from pytest_jobtrace._core.clock import VirtualClock
from pytest_jobtrace._core.errors import JobChainError, JobFailedError
from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.hygiene import JobtraceWarning
from pytest_jobtrace._core.jobspans import JobSpans
from pytest_jobtrace._core.options import JobtraceOptions
from pytest_jobtrace._core.parse import span
from pytest_jobtrace._core.texttree import TextTreeError
from pytest_jobtrace._jobs.match import job
from pytest_jobtrace._jobs.views import JobView

__all__ = [
    "JobChainError",
    "JobFailedError",
    "JobSpans",
    "JobView",
    "JobtraceOptions",
    "JobtraceWarning",
    "SpanForest",
    "SpanNode",
    "SpanTreeMismatch",
    "TextTreeError",
    "VirtualClock",
    "assert_span_tree",
    "job",
    "render",
    "span",
]


def assert_span_tree(
    expected: object, spans: object = None, *, exact: bool | None = None, ordered: bool | None = None
) -> None:
    """Assert that the captured spans contain the ``expected`` tree(s).

    ``expected`` is one expected root or a list of them, each a :func:`span`, a dict with span()'s
    keys, or a text tree. ``spans`` defaults to the current test's ``job_spans`` capture; it may also
    be a list of spans, an ``InMemorySpanExporter`` or a :class:`SpanForest`.
    """
    __tracebackhide__ = True
    if spans is None:
        _jobspans.current().assert_span_tree(expected, exact=exact, ordered=ordered)
        return
    _assert.check_span_tree(expected, _assert.forest_from(spans), exact=bool(exact), ordered=bool(ordered))


def render(spans: object, format: _render.Format = "text") -> str:
    """Render any spans (a capture, a list, an exporter) as a text tree, a Mermaid graph, or with jobs
    folded to one line each (``"jobs"``)."""
    return _render.render_as(_assert.forest_from(spans), format)
