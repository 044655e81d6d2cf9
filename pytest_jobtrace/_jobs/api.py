"""The public functions of ``pytest_jobtrace``: asserting on and rendering any spans."""

from __future__ import annotations

from collections.abc import Iterable

from pytest_jobtrace._core import check as _assert
from pytest_jobtrace._core import render as _render
from pytest_jobtrace._jobs import jobspans as _jobspans


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


def render(
    spans: object, format: _jobspans.Format = "text", *, details: bool = False, volatile: Iterable[str] = ()
) -> str:
    """Render any spans (a capture, a list, an exporter) as a text tree, a Mermaid graph, or with jobs
    folded to one line each (``"jobs"``); ``details=True`` adds attributes, events and exceptions, with
    volatile values written ``*`` (see :meth:`JobSpans.render`)."""
    return _render.render_as(_assert.forest_from(spans), format, _render.details_for(details, volatile))
