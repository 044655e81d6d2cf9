"""Matching expected nodes against the captured forest.

A node matches a span when its own checks pass, its links are there, and its expected children can
be given *distinct* actual children. That last part is a bipartite matching (with capacities, since
interchangeable expected siblings are grouped), solved with augmenting paths so that a generic
expectation next to a specific one never fails because of the order in which they were tried.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from pytest_jobtrace._expect import Expected
from pytest_jobtrace._tree import SpanForest, SpanNode

_INDEX_FROM = 12  # below this many candidates, scanning beats building a name index

Assignment = dict[int, list[SpanNode]]


class Matcher:
    """Memoised matching of expected nodes against one forest, for one assertion."""

    def __init__(self, forest: SpanForest, *, exact: bool = False, ordered: bool = False) -> None:
        self.forest = forest
        self.exact = exact
        self.ordered = ordered
        self._memo: dict[tuple[int, int], bool] = {}
        self._indexes: dict[int, tuple[Sequence[SpanNode], dict[str, list[SpanNode]]]] = {}

    def root_pool(self) -> Sequence[SpanNode]:
        """Expected roots match captured roots with exact=True, any captured span otherwise."""
        return self.forest.roots if self.exact else self.forest.ordered

    def matches(self, expected: Expected, node: SpanNode) -> bool:
        key = (id(expected), node.index)
        found = self._memo.get(key)
        if found is None:
            found = (
                expected.local_mismatch(node) is None
                and self.links_ok(expected, node)
                and self.assign(expected.children, expected.child_nodes(node)) is not None
            )
            self._memo[key] = found
        return found

    def links_ok(self, expected: Expected, node: SpanNode) -> bool:
        return all(any(self.matches(link, t) for t in node.links) for link in expected.links)

    def candidates(self, expected: Expected, actual: Sequence[SpanNode]) -> list[SpanNode]:
        return [node for node in self._prefiltered(expected, actual) if self.matches(expected, node)]

    def _prefiltered(self, expected: Expected, actual: Sequence[SpanNode]) -> Sequence[SpanNode]:
        name = expected.exact_name()
        if name is None or len(actual) < _INDEX_FROM:
            return actual
        entry = self._indexes.get(id(actual))
        if entry is None or entry[0] is not actual:
            index: dict[str, list[SpanNode]] = {}
            for node in actual:
                index.setdefault(node.name, []).append(node)
            entry = self._indexes[id(actual)] = (actual, index)
        return entry[1].get(name, [])

    def assign(self, expected: Sequence[Expected], actual: Sequence[SpanNode]) -> Assignment | None:
        """Distinct actual nodes for every expected node (count=N nodes take all N), or None."""
        if not expected:
            return {} if not (self.exact and actual) else None
        if self.exact and _units(expected) != len(actual):
            return None
        if self.ordered:
            return self._assign_ordered(expected, actual)
        result = self._assign_counted(expected, actual)
        if result is None:
            return None
        taken = {node.index for nodes in result.values() for node in nodes}
        return self._assign_groups(expected, actual, taken, result)

    def _assign_counted(self, expected: Sequence[Expected], actual: Sequence[SpanNode]) -> Assignment | None:
        result: Assignment = {}
        taken: set[int] = set()
        for pos, node in enumerate(expected):
            if node.count is None:
                continue
            found = self.candidates(node, actual)
            if len(found) != node.count or any(n.index in taken for n in found):
                return None
            taken.update(n.index for n in found)
            result[pos] = found
        return result

    def _assign_groups(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], taken: set[int], result: Assignment
    ) -> Assignment | None:
        groups: dict[Hashable, list[int]] = {}
        for pos, item in enumerate(expected):
            if item.count is None:
                groups.setdefault(item.group_key(), []).append(pos)
        positions = list(groups.values())
        options = [[n for n in self.candidates(expected[pos[0]], actual) if n.index not in taken] for pos in positions]
        owned = max_assignment([len(p) for p in positions], options)
        if owned is None:
            return None
        for pos_list, nodes in zip(positions, owned):
            for pos, chosen in zip(pos_list, nodes):
                result[pos] = [chosen]
        return result

    def _assign_ordered(self, expected: Sequence[Expected], actual: Sequence[SpanNode]) -> Assignment | None:
        """Greedy earliest placement is optimal for in-order (subsequence) matching."""
        result: Assignment = {}
        cursor = 0
        for pos, node in enumerate(expected):
            if node.count is not None and len(self.candidates(node, actual)) != node.count:
                return None
            for _ in range(1 if node.count is None else node.count):
                while cursor < len(actual) and not self.matches(node, actual[cursor]):
                    if self.exact:
                        return None
                    cursor += 1
                if cursor == len(actual):
                    return None
                result.setdefault(pos, []).append(actual[cursor])
                cursor += 1
        return result


def _units(expected: Sequence[Expected]) -> int:
    return sum(1 if node.count is None else node.count for node in expected)


def max_assignment(capacity: list[int], options: list[list[SpanNode]]) -> list[list[SpanNode]] | None:
    """Give group g ``capacity[g]`` distinct nodes from ``options[g]``, or None if impossible."""
    if any(len(opts) < cap for cap, opts in zip(capacity, options)):
        return None
    owner: dict[int, int] = {}
    load = [0] * len(capacity)
    for group, opts in enumerate(options):
        for node in opts:
            if load[group] == capacity[group]:
                break
            if node.index not in owner:
                owner[node.index] = group
                load[group] += 1
    for group in range(len(capacity)):
        while load[group] < capacity[group]:
            if not _augment(group, options, owner):
                return None
            load[group] += 1
    by_index = {node.index: node for opts in options for node in opts}
    owned: list[list[SpanNode]] = [[] for _ in capacity]
    for index, group in owner.items():
        owned[group].append(by_index[index])
    return owned


def _augment(start: int, options: list[list[SpanNode]], owner: dict[int, int]) -> bool:
    """Breadth-first search for a chain of reassignments that frees one node for ``start``."""
    came_from: dict[int, tuple[int, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        group = queue.popleft()
        for node in options[group]:
            holder = owner.get(node.index)
            if holder is None:
                _flip(group, node.index, came_from, owner)
                return True
            if holder not in came_from:
                came_from[holder] = (group, node.index)
                queue.append(holder)
    return False


def _flip(group: int, free: int, came_from: dict[int, tuple[int, int] | None], owner: dict[int, int]) -> None:
    owner[free] = group
    step = came_from[group]
    while step is not None:
        previous, index = step
        owner[index] = previous
        step = came_from[previous]


@dataclass(frozen=True)
class Difference:
    """The first concrete difference found, where it was found, and how far matching got."""

    message: str
    node: SpanNode | None
    score: tuple[int, ...]

    @property
    def detail(self) -> str:
        return self.message.split(": ", 1)[-1] if self.message.startswith("at ") else self.message
