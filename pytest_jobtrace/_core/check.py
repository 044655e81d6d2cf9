"""``assert_span_tree``: match, and when that fails, say exactly where and how."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pytest_jobtrace._core import extensions
from pytest_jobtrace._core.diagnose import Diagnoser
from pytest_jobtrace._core.differences import MAX_FOUND, other_differences
from pytest_jobtrace._core.expect import Expected
from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.match import Difference, Matcher
from pytest_jobtrace._core.notation import escape_unprintable
from pytest_jobtrace._core.parse import expected_list
from pytest_jobtrace._core.render import render_expected, render_forest

_MAX_LINES = 200  # lines of each tree shown
_MAX_WIDTH = 300  # characters of one tree line
_MAX_HEADLINE = 1000  # characters of the headline and of each other difference
_MAX_OTHERS = 5  # other differences listed by name


class SpanTreeMismatch(AssertionError):
    """Raised by assert_span_tree; carries the difference for tools that want more than text.

    ``expected`` holds the expected roots and ``others`` the other differences found, so that a report can
    draw the expected tree and mark what differs on both sides (the HTML report does).
    """

    def __init__(
        self,
        message: str,
        difference: Difference,
        expected: Sequence[Expected] = (),
        others: Sequence[Difference] = (),
    ) -> None:
        super().__init__(message)
        self.difference = difference
        self.expected = tuple(expected)
        self.others = tuple(others)


SpanTreeMismatch.__module__ = "pytest_jobtrace"

NOTES: list[Callable[[SpanForest], list[str]]] = []
"""Filled by the layers above (see extensions.py): likely causes a failure message names, e.g. jobs
enqueued and never processed."""


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
    diagnoser = Diagnoser(matcher)
    difference = diagnoser.explain_group(roots, pools[0], None)
    others = other_differences(diagnoser, roots, pools[0], difference)
    message = failure_message(roots, forest, difference, exact=exact, ordered=ordered, others=others)
    notes = _notes(forest, still_open())
    if notes:
        headline, rest = message.split("\n", 1)
        message = "\n".join([headline, *notes, rest])
    raise SpanTreeMismatch(message, difference, roots, others)


def _root_pool(matcher: Matcher, roots: Sequence[Expected]) -> Sequence[SpanNode]:
    """With exact=True, the captured roots less those an expected job accounts for (its linked attempts)."""
    if not matcher.exact:
        return matcher.root_pool()
    covered = set().union(*(node.covered_roots(matcher.forest) for node in _walk(roots)))
    return [root for root in matcher.root_pool() if root.index not in covered]


def _walk(nodes: Sequence[Expected]) -> Iterator[Expected]:
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def _notes(forest: SpanForest, still_open: Sequence[str]) -> list[str]:
    """Likely causes worth naming next to the difference: work that has not happened yet."""
    notes = []
    if still_open:
        names = ", ".join(repr(name) for name in still_open[:5])
        notes.append(f"note: not ended yet, so not captured yet: {names}; assert after the `with` block ends")
    extensions.load()
    for note in NOTES:
        notes.extend(note(forest))
    return notes


def failure_message(
    roots: Sequence[Expected],
    forest: SpanForest,
    difference: Difference,
    *,
    exact: bool,
    ordered: bool,
    others: Sequence[Difference] = (),
) -> str:
    """Headline, other differences, the expected tree and the captured forest, each part bounded."""
    modes = [name for name, on in (("exact", exact), ("ordered", ordered)) if on]
    heading = "span tree does not match" + (f" ({', '.join(modes)})" if modes else "")
    marks = _marks([difference, *others])
    traces = len(forest.traces)
    captured = f"{len(forest)} span{'s' * (len(forest) != 1)} in {traces} trace{'s' * (traces != 1)}"
    lines = [_clip_line(f"{heading}: {difference.message}", _MAX_HEADLINE), *_other_lines(others)]
    lines += ["", "expected:", *_section(render_expected(roots)), ""]
    lines += [f"captured ({captured}):", *_section(render_forest(forest, marks))]
    return escape_unprintable("\n".join(lines), keep="\n")


def _marks(differences: Sequence[Difference]) -> dict[int, str]:
    marks: dict[int, str] = {}
    for difference in differences:
        for node in [difference.node, *difference.others] if difference.node is not None else []:
            marks[node.index] = (
                f"{marks[node.index]}; {difference.detail}" if node.index in marks else difference.detail
            )
    return marks


def _other_lines(others: Sequence[Difference]) -> list[str]:
    if not others:
        return []
    shown = [_clip_line(f"  - {other.message}", _MAX_HEADLINE) for other in others[:_MAX_OTHERS]]
    rest = len(others) - len(shown)
    if rest:
        many = "at least " if len(others) >= MAX_FOUND else ""
        shown.append(f"  ... and {many}{rest} more difference{'s' * (rest != 1)}")
    return ["other differences:", *shown]


def _section(text: str) -> list[str]:
    """At most _MAX_LINES lines around the first mark, each clipped, saying what was left out."""
    lines = text.splitlines()
    focus = next((i for i, line in enumerate(lines) if "    <-- " in line), 0)
    start = max(0, min(focus - _MAX_LINES // 2, len(lines) - _MAX_LINES))
    shown = ["  " + _clip_line(line, _MAX_WIDTH) for line in lines[start : start + _MAX_LINES]]
    if start:
        shown.insert(0, f"  ... {start} lines above ...")
    if start + _MAX_LINES < len(lines):
        shown.append(f"  ... {len(lines) - start - _MAX_LINES} lines below ...")
    return shown


def _clip_line(line: str, width: int) -> str:
    """One line of at most about ``width`` characters: deep indentation is folded, the rest cut."""
    if len(line) <= width:
        return line
    text = line.lstrip("│├└─ ")
    indent = line[: len(line) - len(text)]
    if len(indent) > width // 2:
        hidden = (len(indent) - 16) // 4
        indent = f"{indent[:8]}[{hidden} levels]{indent[-8:]}"
    room = max(width - len(indent), 40)
    if len(text) > room:
        text = f"{text[:room]}... ({len(text) - room} more characters)"
    return indent + text
