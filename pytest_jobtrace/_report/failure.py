"""A failed test's failure as the HTML report shows it: the message, and for ``assert_span_tree`` the trees.

Built on the worker, only for a failed report, from the exception itself: the message as the terminal
shows it (control characters escaped, at most ``MAX_LINES`` lines of ``MAX_WIDTH`` characters), and for a
:class:`SpanTreeMismatch` the expected tree line by line with the expected node that differs marked, and
the ids of the captured spans that differ with their marks (the page marks them in the waterfall).
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_jobtrace._core.check import SpanTreeMismatch
from pytest_jobtrace._core.expect import Expected
from pytest_jobtrace._core.notation import escape_unprintable
from pytest_jobtrace._core.render import tree_lines
from pytest_jobtrace._core.values import clip

MAX_LINES = 400  # lines of a message
MAX_WIDTH = 1000  # characters of one line
MAX_TREE_LINES = 200  # lines of the expected tree (as assert_span_tree's message)


def failure_data(report: pytest.TestReport, call: pytest.CallInfo[None]) -> dict[str, Any]:
    """``{"w": phase, "m": message}``, with ``"e"`` (expected tree) and ``"a"`` (captured marks) for a mismatch."""
    error = call.excinfo.value if call.excinfo is not None else None
    data: dict[str, Any] = {"w": report.when, "m": bounded(_message(report, call))}
    if isinstance(error, SpanTreeMismatch):
        data["e"] = expected_lines(error)
        data["a"] = captured_marks(error)
    return data


def _message(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    if call.excinfo is not None:
        return call.excinfo.exconly()  # as the terminal's "E" lines: pytest's explanation of an assert included
    return report.longreprtext


def bounded(text: str) -> str:
    """``text`` with control characters escaped (line breaks kept), each line and the line count bounded."""
    lines = escape_unprintable(text, keep="\n").split("\n")
    shown = [clip(line, MAX_WIDTH) for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        shown.append(f"... {len(lines) - MAX_LINES} more lines")
    return "\n".join(shown)


def expected_lines(error: SpanTreeMismatch) -> list[list[str]]:
    """The expected tree as ``[line, mark]`` pairs (mark empty where nothing differs), around the first mark."""
    marks: dict[int, str] = {}
    for difference in (error.difference, *error.others):
        if difference.expected is not None:
            key = id(difference.expected)
            marks[key] = f"{marks[key]}; {difference.detail}" if key in marks else difference.detail
    lines = [
        [clip(escape_unprintable(text), MAX_WIDTH), clip(escape_unprintable(marks.get(id(node), "")), MAX_WIDTH)]
        for node, text in tree_lines(error.expected, _children, _line)
    ]
    focus = next((i for i, (_, mark) in enumerate(lines) if mark), 0)
    start = max(0, min(focus - MAX_TREE_LINES // 2, len(lines) - MAX_TREE_LINES))
    shown = lines[start : start + MAX_TREE_LINES]
    if start:
        shown.insert(0, [f"... {start} lines above ...", ""])
    if start + MAX_TREE_LINES < len(lines):
        shown.append([f"... {len(lines) - start - MAX_TREE_LINES} lines below ...", ""])
    return shown


def _children(node: Expected) -> list[Expected]:
    return list(node.children)


def _line(node: Expected) -> str:
    return node.render_line()


def captured_marks(error: SpanTreeMismatch) -> list[list[str]]:
    """``[span id, mark]`` of each captured span a difference is about (the page finds them by id)."""
    marks: dict[str, str] = {}
    for difference in (error.difference, *error.others):
        nodes = [difference.node, *difference.others] if difference.node is not None else []
        for node in nodes:
            context = node.span.context
            span_id = f"{context.span_id:016x}" if context else ""
            detail = difference.detail
            marks[span_id] = f"{marks[span_id]}; {detail}" if span_id in marks else detail
    return [[span_id, clip(escape_unprintable(mark), MAX_WIDTH)] for span_id, mark in marks.items()]
