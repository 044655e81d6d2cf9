"""Walking pairs of (expected node, captured span) without recursion, for trees thousands of levels deep.

Matching and diagnosis are memoised recursive functions: fine for the trees tests usually write, but a
chain of 500 jobs nests deeper than Python's recursion limit. For a deep expected tree they first
evaluate every pair they may need bottom-up (children before parents), so each later call finds its
children memoised and goes one level down only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pytest_jobtrace._core.expect import Expected
from pytest_jobtrace._core.forest import SpanNode

DEEP = 40  # expected levels below which plain recursion is safe (each level costs a few frames)

Pair = tuple[Expected, SpanNode]


def post_order(start: Pair, expand: Callable[[Expected, SpanNode], Iterable[Pair]]) -> list[Pair]:
    """``start`` and every pair reachable through ``expand``, each after the pairs it expands to."""
    seen: set[tuple[int, int]] = set()
    order: list[Pair] = []
    stack: list[tuple[Pair, bool]] = [(start, False)]
    while stack:
        pair, expanded = stack.pop()
        if expanded:
            order.append(pair)
            continue
        key = (id(pair[0]), pair[1].index)
        if key in seen:
            continue
        seen.add(key)
        stack.append((pair, True))
        stack.extend((child, False) for child in expand(*pair))
    return order


class Heights:
    """How many levels each expected node has below it (memoised, computed without recursion)."""

    def __init__(self) -> None:
        self._height: dict[int, int] = {}

    def __call__(self, expected: Expected) -> int:
        found = self._height.get(id(expected))
        if found is not None:
            return found
        order: list[Expected] = []
        stack = [expected]
        while stack:
            node = stack.pop()
            if id(node) not in self._height:
                order.append(node)
                stack.extend(node.children)
        for node in reversed(order):
            below = [self._height.get(id(child), 0) for child in node.children]
            self._height[id(node)] = 1 + max(below, default=0)
        return self._height[id(expected)]
