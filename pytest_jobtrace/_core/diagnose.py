"""Finding, after a failed match, the closest candidate and its first concrete difference.

Runs only when an assertion has already failed, so it favours clear answers over speed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from pytest_jobtrace._core import extensions
from pytest_jobtrace._core.deep import DEEP, post_order
from pytest_jobtrace._core.expect import Expected, ExpectedSpan
from pytest_jobtrace._core.forest import SpanNode
from pytest_jobtrace._core.match import Difference, Matcher, crowded_groups, sibling_groups
from pytest_jobtrace._core.values import show

_MAX_CANDIDATES = 50


Scope = Callable[[SpanNode], "tuple[SpanNode, str] | None"]
SCOPES: dict[str, Scope] = {}
"""Where a path may start from something the user named rather than the trace root, by kind (e.g. "job"):
a function given a span returns the ancestor (or the span) to start from and how to call it, or None."""


def where(node: SpanNode, keep: int = 3) -> str:
    """``'root' > 'child' > 'span'``; a deep path keeps its first and last ``keep`` levels.

    Inside a scope the user named (a job's attempt), the path starts there: ``job 'X', attempt 1 > 'span'``.
    """
    path = node.path()
    head: list[str] = []
    extensions.load()
    for scope in SCOPES.values():
        found = scope(node)
        if found is not None:
            start, head = found[0], [found[1]]
            path = path[next(i for i, n in enumerate(path) if n is start) + 1 :]
            break
    if len(head) + len(path) > 2 * keep + 1:
        first = path[: keep - len(head)]
        skipped = f"... {len(path) - len(first) - keep} levels ..."
        return " > ".join([*head, *(show(n.name) for n in first), skipped, *(show(n.name) for n in path[-keep:])])
    return " > ".join([*head, *(show(n.name) for n in path)])


def names(nodes: Sequence[SpanNode], limit: int = 6) -> str:
    shown = ", ".join(show(n.name) for n in nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")


def labels(expected: Sequence[Expected], limit: int = 8) -> str:
    """Expected siblings by label; a run of interchangeable ones (or a count=N node) as ``label xN``."""
    runs: list[tuple[Expected, int]] = []
    for node in expected:
        times = 1 if node.count is None else node.count
        if runs and node.count is None and runs[-1][0].count is None and _same(runs[-1][0], node):
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((node, times))
    shown = [node.label() if times == 1 and node.count is None else f"{node.label()} x{times}" for node, times in runs]
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def _same(a: Expected, b: Expected) -> bool:
    # As a set lookup does: identity first, then ==, since keys may hold matchers with an odd __eq__.
    return b.group_key() in {a.group_key()}


def _misread_hint(name: str) -> str:
    """Names given to span() (or a dict) that look like text-tree lines: say what they are read as."""
    if name.startswith("job "):
        return "; span() matches a span by name: for a job, use job(), {'job': ...} or a text-tree line 'job NAME'"
    if name.endswith(("]", "}")) and (" [" in name or " {" in name):
        return (
            "; span() takes the name literally: annotations and {attributes} are read in a text tree, or "
            "given as span()'s keywords"
        )
    return ""


def _partial_name_hint(node: Expected, nodes: Sequence[SpanNode]) -> str:
    """A name pattern that finds a span name but does not match all of it: say so (patterns use re.fullmatch)."""
    pattern = node.name if isinstance(node, ExpectedSpan) else None
    if not isinstance(pattern, re.Pattern):
        return ""
    partial = [n for n in nodes if isinstance(n.name, str) and pattern.search(n.name)]
    if not partial:
        return ""
    return (
        f"; {show(pattern)} matches only part of {names(partial, 3)}: a name pattern must match the whole name "
        "(re.fullmatch)"
    )


class Diagnoser:
    def __init__(self, matcher: Matcher) -> None:
        self.m = matcher
        self.loose = matcher.loose()  # for "would it fit without exact?"
        self._memo: dict[tuple[int, int], Difference] = {}
        self._preparing = False

    def explain_group(
        self,
        expected: Sequence[Expected],
        actual: Sequence[SpanNode],
        parent: SpanNode | None,
        owner: Expected | None = None,
    ) -> Difference:
        """Why ``expected`` (siblings, or the roots when parent is None) cannot be placed on ``actual``.

        ``owner`` is the expected node whose children these are: its own ``exact=`` applies to them.
        """
        taken: dict[int, Expected] = {}
        for node in expected:
            if node.count is not None:
                found = self.m.candidates(node, actual)
                if len(found) != node.count:
                    return self._count_difference(node, node.count, found, actual, parent)
                shared = next((n for n in found if n.index in taken), None)
                if shared is not None:
                    return self._shared_by_counts(taken[shared.index], node, shared, parent)
                taken.update((n.index, node) for n in found)
        for group in sibling_groups(expected):
            node = expected[group[0]]
            found = self.m.candidates(node, actual)
            if not found:
                return self._missing(node, actual, parent)
            if len(found) < len(group):
                return self._count_difference(node, len(group), found, actual, parent)
        return self._placement_difference(expected, actual, parent, owner)

    def _shared_by_counts(
        self, first: Expected, second: Expected, shared: SpanNode, parent: SpanNode | None
    ) -> Difference:
        place = f"under {where(parent)}" if parent else "in the capture"
        message = (
            f"{first.label()} (count={first.count}) and {second.label()} (count={second.count}) {place} both match "
            f"{shared.name!r}; a count= node takes every sibling it matches, so two of them cannot share one"
        )
        return Difference(
            message, shared, (1,), f"matched by both {first.label()} and {second.label()}", expected=second
        )

    def _count_difference(
        self, node: Expected, wanted: int, found: list[SpanNode], actual: Sequence[SpanNode], parent: SpanNode | None
    ) -> Difference:
        place = f"under {where(parent)}" if parent else "in the capture"
        noun = node.noun + "s" * (wanted != 1)
        label = node.label().removeprefix(f"{node.noun} ")  # "2 jobs matching 'X'", not "... matching job 'X'"
        message = f"expected {wanted} {noun} matching {label} {place}, found {len(found)}"
        if len(found) < wanted:
            matched = {n.index for n in found}
            closest = self.closest(node, [n for n in actual if n.index not in matched])
            if closest is not None and closest.score[0]:
                message += f"; the closest other one differs: {closest.message}"
                return replace(closest, message=message, score=(1, *closest.score), mark=closest.detail)
        return Difference(message, parent or (found[0] if found else None), (1,), expected=node)

    def _missing(self, node: Expected, actual: Sequence[SpanNode], parent: SpanNode | None) -> Difference:
        differences = self._differences(node, actual)
        closest = max(differences, key=lambda d: d.score, default=None)
        if closest is not None and closest.score[0]:
            ties = sum(d.score == closest.score for d in differences)
            message = closest.message
            if ties > 1:
                what = f"under {where(parent)}" if parent else "in the capture"
                many = "at least " if ties == _MAX_CANDIDATES else ""
                message = (
                    f"nothing {what} matches {node.describe()}; {many}{ties} spans come equally close, "
                    f"the first: {message}"
                )
            return replace(closest, message=message, score=(1, *closest.score), mark=closest.detail)
        if parent is None:
            return self._missing_root(node)
        kids = f"; {node.siblings(actual)}"
        name = node.exact_name()
        kids += _misread_hint(name) if name is not None else _partial_name_hint(node, actual)
        elsewhere = node.whereabouts(self.m.forest)
        message = f"missing child matching {node.label()} under {where(parent)}{kids}"
        message += "".join(f"; {hint}" for hint in (node.missing_hint(parent), elsewhere) if hint)
        return Difference(message, parent, (0,), f"missing child matching {node.label()}", expected=node)

    def _missing_root(self, node: Expected) -> Difference:
        elsewhere = self.loose.candidates(node, self.m.forest.display_order) if self.m.exact else []
        if not elsewhere:
            absent = node.absent(self.m.forest)
            message = absent or f"no captured span matches {node.label()}{self._similar(node)}"
            return Difference(message, None, (0,), expected=node)
        spot = elsewhere[0]
        message = (
            f"no captured root span matches {node.label()}; {where(spot)} does, but it is not a root "
            "(exact=True: the expected roots must be the captured roots)"
        )
        detail = f"matches {node.label()}, but is not a root (exact=True)"
        return Difference(message, spot, (0,), detail, expected=node)

    def _similar(self, node: Expected) -> str:
        name = node.exact_name()
        if name is None:
            return _partial_name_hint(node, self.m.forest.display_order)
        known = sorted({n.name for n in self.m.forest.nodes})
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" (similar names captured: {', '.join(map(repr, close))})" if close else ""
        return hint + _misread_hint(name)

    def _placement_difference(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], parent: SpanNode | None, owner: Expected | None
    ) -> Difference:
        place = f"under {where(parent)}" if parent else "among the captured spans"
        own = owner.exact if owner is not None else None
        if (self.m.exact if own is None else own) and self.loose.assign(expected, actual, False) is not None:
            why = "exact=True: every span must be expected"
            if own is not None and owner is not None:
                why = f"{owner.label()} has exact=True"
            return self._unexpected(expected, actual, parent, why)
        if self.m.ordered:
            return self._order_difference(expected, actual, parent, place)
        return self._crowded(expected, actual, parent, place)

    def _order_difference(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], parent: SpanNode | None, place: str
    ) -> Difference:
        """Walk the expected siblings in order and report the first one that nothing later matches."""
        cursor, previous = 0, -1
        for node in expected:
            for _ in range(1 if node.count is None else node.count):
                while cursor < len(actual) and not self.m.matches(node, actual[cursor]):
                    cursor += 1
                if cursor == len(actual):
                    return self._out_of_order(expected, actual, parent, place, node, previous)
                previous, cursor = cursor, cursor + 1
        wanted = labels(expected)
        return Difference(f"{place}: expected {wanted} in this order, got {names(actual, 12)}", parent, (1,))

    def _out_of_order(
        self,
        expected: Sequence[Expected],
        actual: Sequence[SpanNode],
        parent: SpanNode | None,
        place: str,
        node: Expected,
        previous: int,
    ) -> Difference:
        what = "child" if parent else "span"
        after = f" after {what} {previous + 1} ({actual[previous].name!r})" if previous >= 0 else ""
        detail = f"no {what}{after} matches {node.label()}"
        listing = "children in start order" if parent else "spans in order"
        message = f"{place}: expected {labels(expected)} in this order, but {detail} ({listing}: {names(actual, 12)})"
        return Difference(message, parent, (1,), detail, expected=node)

    def _crowded(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], parent: SpanNode | None, place: str
    ) -> Difference:
        """Every expected sibling has candidates, but some of them compete for too few spans."""
        counted = [node for node in expected if node.count is not None]
        taken = {n.index for node in counted for n in self.m.candidates(node, actual)}
        groups = sibling_groups(expected)
        wanted = [self.m.candidates(expected[group[0]], actual) for group in groups]
        options = [[n for n in found if n.index not in taken] for found in wanted]
        crowded = crowded_groups([len(group) for group in groups], options)
        members = [expected[pos] for g in crowded for pos in groups[g]]
        lost = [n for n in actual if n.index in taken and any(n in wanted[g] for g in crowded)]
        if lost:
            detail = (
                f"{labels(members)} has no span left: {names(lost)} already counted by {labels(counted)} "
                "(a count=N node takes every span it matches)"
            )
        else:
            usable = [n for n in actual if any(n in options[g] for g in crowded)]
            detail = (
                f"{len(members)} expected {'children' if parent else 'spans'} ({labels(members)}) need "
                f"{len(members)} different spans, but only {len(usable)} match any of them: {names(usable)}"
            )
        return Difference(f"{place}: {detail}", parent, (1,), detail, expected=members[0] if members else None)

    def _unexpected(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], parent: SpanNode | None, why: str
    ) -> Difference:
        used = {n.index for nodes in (self.loose.assign(expected, actual, False) or {}).values() for n in nodes}
        extra = [node for node in actual if node.index not in used]
        many = len(extra) > 1
        if parent is not None:
            what = f"{'children' if many else 'child'} {names(extra)} under {where(parent)}"
        else:
            what = f"root span{'s' * many} {names(extra)}"
        return Difference(
            f"unexpected {what} ({why})",
            extra[0] if extra else parent,
            (1,),
            f"unexpected span ({why})",
            tuple(extra[1:]),
        )

    def closest(self, expected: Expected, actual: Sequence[SpanNode]) -> Difference | None:
        """The candidate that gets furthest through the checks, with its first difference."""
        return max(self._differences(expected, actual), key=lambda d: d.score, default=None)

    def _differences(self, expected: Expected, actual: Sequence[SpanNode]) -> list[Difference]:
        return [self.first_difference(expected, node) for node in self._pool(expected, actual)]

    def _pool(self, expected: Expected, actual: Sequence[SpanNode]) -> list[SpanNode]:
        pool = [n for n in actual if expected.same_name(n)] or list(actual)
        if len(pool) > _MAX_CANDIDATES:
            # Only the most promising get the full (recursive) diagnosis; the local checks are cheap.
            pool.sort(key=lambda n: (expected.local_mismatch(n) is not None, -expected.closeness(n)))
            del pool[_MAX_CANDIDATES:]
        return pool

    def first_difference(self, expected: Expected, node: SpanNode) -> Difference:
        key = (id(expected), node.index)
        found = self._memo.get(key)
        if found is None:
            if not self._preparing and self.m.height(expected) > DEEP:
                self._prepare(expected, node)
                found = self._memo.get(key)
            if found is None:
                found = self._memo[key] = self._first_difference(expected, node)
        return found

    def _prepare(self, expected: Expected, node: SpanNode) -> None:
        """For a deep tree, diagnose the pairs it may need bottom-up (see deep.py)."""
        self._preparing = True
        try:
            for pair in post_order((expected, node), self._expand):
                self.first_difference(*pair)
        finally:
            self._preparing = False

    def _expand(self, expected: Expected, node: SpanNode) -> list[tuple[Expected, SpanNode]]:
        if (id(expected), node.index) in self._memo or expected.local_mismatch(node) is not None:
            return []
        if not self._links_ok(expected, node):
            return []
        kids = expected.child_nodes(node)
        short = [child for child in expected.children if len(self.m.candidates(child, kids)) < (child.count or 1)]
        return [(child, kid) for child in short for kid in self._pool(child, kids)]

    def _links_ok(self, expected: Expected, node: SpanNode) -> bool:
        return all(any(self.loose.matches(link, t) for t in node.links) for link in expected.links)

    def _first_difference(self, expected: Expected, node: SpanNode) -> Difference:
        local = expected.local_mismatch(node)
        if local is not None:
            named = expected.same_name(node)
            score = (int(named), 0, expected.closeness(node))
            return Difference(f"at {where(node)}: {local}", node, score, local, expected=expected)
        for link in expected.links:
            if not any(self.loose.matches(link, target) for target in node.links):
                got = names(node.links) if node.links else "nothing captured"
                detail = f"expected a link to {link.label()}, it links to {got}"
                return Difference(f"at {where(node)}: {detail}", node, (1, 1), detail, expected=expected)
        if not self.loose.links_ok(expected, node):  # each found, but not each a link of its own
            labels = ", ".join(link.label() for link in expected.links)
            detail = f"expected {len(expected.links)} links ({labels}), it links to {names(node.links)}"
            return Difference(f"at {where(node)}: {detail}", node, (1, 1), detail, expected=expected)
        # Messages say "under X" for the span whose children were searched (for a job: its last attempt).
        inner = self.explain_group(
            expected.children, expected.child_nodes(node), expected.children_owner(node), expected
        )
        return replace(inner, score=(1, 2, *inner.score))
