"""Finding, after a failed match, the closest candidate and its first concrete difference.

Runs only when an assertion has already failed, so it favours clear answers over speed.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_jobtrace._expect import Expected
from pytest_jobtrace._match import Difference, Matcher
from pytest_jobtrace._tree import SpanNode

_MAX_CANDIDATES = 50


def where(node: SpanNode) -> str:
    return " > ".join(repr(n.name) for n in node.path())


def names(nodes: Sequence[SpanNode], limit: int = 6) -> str:
    shown = ", ".join(repr(n.name) for n in nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")


class Diagnoser:
    def __init__(self, matcher: Matcher) -> None:
        self.m = matcher
        # Memoised results depend on exact=, so "would it fit without exact?" needs its own matcher.
        self.loose = Matcher(matcher.forest, exact=False, ordered=matcher.ordered)

    def explain_group(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], parent: SpanNode | None
    ) -> Difference:
        """Why ``expected`` (siblings, or the roots when parent is None) cannot be placed on ``actual``."""
        for node in expected:
            if node.count is not None:
                found = self.m.candidates(node, actual)
                if len(found) != node.count:
                    return self._count_difference(node, found, actual, parent)
        for node in expected:
            if node.count is None and not self.m.candidates(node, actual):
                return self._missing(node, actual, parent)
        return self._placement_difference(expected, actual, parent)

    def _count_difference(
        self, node: Expected, found: list[SpanNode], actual: Sequence[SpanNode], parent: SpanNode | None
    ) -> Difference:
        place = f"under {where(parent)}" if parent else "in the capture"
        message = (
            f"expected {node.count} span{'s' * (node.count != 1)} matching {node.label()} {place}, found {len(found)}"
        )
        if len(found) < (node.count or 0):
            closest = self.closest(node, [n for n in actual if n not in found])
            if closest is not None and closest.score[0]:
                message += f"; the closest other one differs: {closest.message}"
                return Difference(message, closest.node, (1, *closest.score))
        return Difference(message, parent or (found[0] if found else None), (1,))

    def _missing(self, node: Expected, actual: Sequence[SpanNode], parent: SpanNode | None) -> Difference:
        closest = self.closest(node, actual)
        if closest is not None and closest.score[0]:
            return Difference(closest.message, closest.node, (1, *closest.score))
        if parent is None:
            message = f"no captured span matches {node.label()}"
        else:
            kids = f"; its children are {names(actual)}" if actual else "; it has no children"
            message = f"missing child matching {node.label()} under {where(parent)}{kids}"
        return Difference(message, parent, (0,))

    def _placement_difference(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], parent: SpanNode | None
    ) -> Difference:
        place = f"under {where(parent)}" if parent else "among the captured spans"
        if self.m.exact and self.loose.assign(expected, actual) is not None:
            return self._unexpected(expected, actual, parent)
        if self.m.ordered:
            wanted = ", ".join(node.label() for node in expected)
            return Difference(f"{place}: expected {wanted} in this order, got {names(actual, 12)}", parent, (1,))
        labels = ", ".join(node.label() for node in expected if node.count is None)
        return Difference(f"{place}: {labels} must each match a different span, and not enough do", parent, (1,))

    def _unexpected(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], parent: SpanNode | None
    ) -> Difference:
        used = {n.index for nodes in (self.loose.assign(expected, actual) or {}).values() for n in nodes}
        extra = [node for node in actual if node.index not in used]
        what = f"child {names(extra)} under {where(parent)}" if parent else f"root span {names(extra)}"
        return Difference(
            f"unexpected {what} (exact=True: every span must be expected)",
            extra[0] if extra else parent,
            (1,),
        )

    def closest(self, expected: Expected, actual: Sequence[SpanNode]) -> Difference | None:
        """The candidate that gets furthest through the checks, with its first difference."""
        named = [n for n in actual if expected.same_name(n)]
        pool = (named or list(actual))[:_MAX_CANDIDATES]
        differences = [self.first_difference(expected, node) for node in pool]
        return max(differences, key=lambda d: d.score, default=None)

    def first_difference(self, expected: Expected, node: SpanNode) -> Difference:
        local = expected.local_mismatch(node)
        if local is not None:
            named = expected.same_name(node)
            return Difference(f"at {where(node)}: {local}", node, (int(named), 0))
        for link in expected.links:
            if not any(self.m.matches(link, target) for target in node.links):
                got = names(node.links) if node.links else "nothing captured"
                return Difference(
                    f"at {where(node)}: expected a link to {link.label()}, it links to {got}", node, (1, 1)
                )
        inner = self.explain_group(expected.children, expected.child_nodes(node), node)
        return Difference(inner.message, inner.node, (1, 2, *inner.score))
