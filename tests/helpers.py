"""Helpers shared by the test modules (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import pytest

from pytest_jobtrace import SpanTreeMismatch, assert_span_tree

both_modes = pytest.mark.parametrize("run", ["inprocess", "subprocess"])


def run_pytest(pytester: pytest.Pytester, run: str, *args: str) -> pytest.RunResult:
    """Run the pytester project in this process or in a fresh one, as ``run`` says."""
    if run == "subprocess":
        return pytester.runpytest_subprocess(*args)
    return pytester.runpytest(*args)


def assert_in_order(result: pytest.RunResult, *fragments: str) -> None:
    """Each fragment appears in the output, in this order (plain text: no glob brackets to escape)."""
    output = result.stdout.str()
    position = 0
    for fragment in fragments:
        found = output.find(fragment, position)
        assert found >= 0, f"{fragment!r} not found in order in:\n{output}"
        position = found + len(fragment)


def mismatch(expected: object, spans: object, **options: bool) -> str:
    """The message of the SpanTreeMismatch that assert_span_tree must raise."""
    with pytest.raises(SpanTreeMismatch) as excinfo:
        assert_span_tree(expected, spans, **options)
    return str(excinfo.value)


def headline(message: str) -> str:
    return message.splitlines()[0]
