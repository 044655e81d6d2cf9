"""``assert_span_tree``: match, and when that fails, say exactly where and how."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pytest_jobtrace._core.diagnose import Diagnoser
from pytest_jobtrace._core.expect import Expected
from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.match import Difference, Matcher
from pytest_jobtrace._core.parse import expected_list
from pytest_jobtrace._core.render import render_expected, render_forest
from pytest_jobtrace._jobs.views import job_index

_MAX_LINES = 200


class SpanTreeMismatch(AssertionError):
    """Raised by assert_span_tree; carries the difference for tools that want more than text."""

    def __init__(self, message: str, difference: Difference) -> None:
        super().__init__(message)
        self.difference = difference


SpanTreeMismatch.__module__ = "pytest_jobtrace"


def forest_from(spans: Any) -> SpanForest:
    """A forest from a capture, a forest, an InMemorySpanExporter or any iterable of spans."""
    if isinstance(spans, SpanForest):
        return spans
    forest = getattr(spans, "forest", None)
    if callable(forest):
        return forest()  # type: ignore[no-any-return]
    if hasattr(spans, "get_finished_spans"):
        return SpanForest(spans.get_finished_spans())
    return SpanForest(list(spans))


def check_span_tree(
    expected: object,
    forest: SpanForest,
    *,
    exact: bool,
    ordered: bool,
    still_open: Callable[[], Sequence[str]] = list,
) -> None:
    """Raise SpanTreeMismatch unless ``expected`` matches; ``still_open()`` names spans not ended yet."""
    __tracebackhide__ = True
    roots = expected_list(expected)
    if not roots:
        raise ValueError("assert_span_tree() got an empty expectation: give at least one expected span")
    matcher = Matcher(forest, exact=exact, ordered=ordered)
    pools = [_root_pool(matcher, roots)]
    if exact:  # the test may also have listed a job's linked attempts as roots of their own
        pools.append(matcher.root_pool())
    if any(matcher.assign(roots, pool) is not None for pool in pools):
        return
    difference = Diagnoser(matcher).explain_group(roots, pools[0], None)
    message = failure_message(roots, forest, difference, exact=exact, ordered=ordered)
    notes = _notes(forest, still_open())
    if notes:
        headline, rest = message.split("\n", 1)
        message = "\n".join([headline, *notes, rest])
    raise SpanTreeMismatch(message, difference)


def _root_pool(matcher: Matcher, roots: Sequence[Expected]) -> Sequence[SpanNode]:
    """With exact=True, the captured roots less those an expected job accounts for (its linked attempts)."""
    if not matcher.exact:
        return matcher.root_pool()
    covered = set().union(*(node.covered_roots(matcher.forest) for node in _walk(roots)))
    return [root for root in matcher.root_pool() if root.index not in covered]


def _walk(nodes: Sequence[Expected]) -> Iterator[Expected]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


def _notes(forest: SpanForest, still_open: Sequence[str]) -> list[str]:
    """Likely causes worth naming next to the difference: work that has not happened yet."""
    notes = []
    if still_open:
        names = ", ".join(repr(name) for name in still_open[:5])
        notes.append(f"note: not ended yet, so not captured yet: {names}; assert after the `with` block ends")
    pending: dict[str, list[str]] = {}
    for job in job_index(forest).jobs:
        if not job.attempt_nodes:
            fixture = job.adapter.fixture_name if job.adapter is not None else "its job system"
            pending.setdefault(fixture, []).append(repr(job.short_name))
    for fixture, jobs in pending.items():
        names = ", ".join(jobs[:5]) + (f" and {len(jobs) - 5} more" if len(jobs) > 5 else "")
        notes.append(f"note: enqueued but never processed: {names}; drain the queue first ({fixture}.drain())")
    return notes


def failure_message(
    roots: Sequence[Expected], forest: SpanForest, difference: Difference, *, exact: bool, ordered: bool
) -> str:
    modes = [name for name, on in (("exact", exact), ("ordered", ordered)) if on]
    heading = "span tree does not match" + (f" ({', '.join(modes)})" if modes else "")
    marked = [difference.node, *difference.others] if difference.node is not None else []
    marks = {node.index: difference.detail for node in marked}
    traces = len(forest.traces)
    captured = f"{len(forest)} span{'s' * (len(forest) != 1)} in {traces} trace{'s' * (traces != 1)}"
    return "\n".join(
        [
            f"{heading}: {difference.message}",
            "",
            "expected:",
            _indent(render_expected(roots)),
            "",
            f"captured ({captured}):",
            _indent(_clip(render_forest(forest, marks), difference)),
        ]
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _clip(text: str, difference: Difference) -> str:
    lines = text.splitlines()
    if len(lines) <= _MAX_LINES:
        return text
    focus = next((i for i, line in enumerate(lines) if "    <-- " in line), 0)
    start = max(0, min(focus - _MAX_LINES // 2, len(lines) - _MAX_LINES))
    shown = lines[start : start + _MAX_LINES]
    if start:
        shown.insert(0, f"... {start} lines above ...")
    if start + _MAX_LINES < len(lines):
        shown.append(f"... {len(lines) - start - _MAX_LINES} lines below ...")
    return "\n".join(shown)
