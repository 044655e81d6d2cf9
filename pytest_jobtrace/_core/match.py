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

from pytest_jobtrace._core.deep import DEEP, Heights, post_order
from pytest_jobtrace._core.expect import Expected
from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.values import distinct_matches

_INDEX_FROM = 12  # below this many candidates, scanning beats building a name index
_ABSENT = object()

Assignment = dict[int, list[SpanNode]]


class Matcher:
    """Memoised matching of expected nodes against one forest, for one assertion."""

    def __init__(self, forest: SpanForest, *, exact: bool = False, ordered: bool = False) -> None:
        self.forest = forest
        self.exact = exact
        self.ordered = ordered
        self._memo: dict[tuple[int, int], bool] = {}
        self._loose: Matcher | None = None
        self._canonical: dict[int, int] = {}
        self._by_key: dict[Hashable, int] = {}
        self._indexes: dict[tuple[int, str | None], tuple[Sequence[SpanNode], dict[object, list[SpanNode]]]] = {}
        self.height = Heights()
        self._preparing = False

    def root_pool(self) -> Sequence[SpanNode]:
        """Expected roots match captured roots with exact=True, any captured span otherwise."""
        return self.forest.roots if self.exact else self.forest.display_order

    def matches(self, expected: Expected, node: SpanNode) -> bool:
        key = (self._canonical_id(expected), node.index)
        found = self._memo.get(key)
        if found is None:
            if not self._preparing and self.height(expected) > DEEP:
                self._prepare(expected, node)
                found = self._memo.get(key)
            if found is None:
                found = self._memo[key] = self._evaluate(expected, node)
        return found

    def _evaluate(self, expected: Expected, node: SpanNode) -> bool:
        return (
            expected.local_mismatch(node) is None
            and self.links_ok(expected, node)
            and self.assign(expected.children, expected.child_nodes(node), expected.exact) is not None
        )

    def _prepare(self, expected: Expected, node: SpanNode) -> None:
        """Evaluate the pairs a deep tree needs bottom-up, so that no call recurses more than a level."""
        self._preparing = True
        try:
            for pair in post_order((expected, node), self._expand):
                self.matches(*pair)
        finally:
            self._preparing = False

    def _expand(self, expected: Expected, node: SpanNode) -> list[tuple[Expected, SpanNode]]:
        if (self._canonical_id(expected), node.index) in self._memo or expected.local_mismatch(node) is not None:
            return []  # answered already, or without looking at the children
        kids = expected.child_nodes(node)
        return [(child, kid) for child in expected.children for kid in self._prefiltered(child, kids)]

    def _canonical_id(self, expected: Expected) -> int:
        """Interchangeable expected nodes (equal group keys) share one memo entry per span."""
        found = self._canonical.get(id(expected))
        if found is None:
            found = self._canonical[id(expected)] = self._by_key.setdefault(expected.group_key(), id(expected))
        return found

    def links_ok(self, expected: Expected, node: SpanNode) -> bool:
        # A link names the span it points at; exact= is about this tree, not the linked span's subtree.
        if not expected.links:
            return True
        matcher = self.loose()
        options = [[i for i, t in enumerate(node.links) if matcher.matches(link, t)] for link in expected.links]
        return distinct_matches(options)  # each expected link needs a link of its own

    def loose(self) -> Matcher:
        """This matcher without exact= (memoised results depend on it, so exact needs a second one)."""
        if not self.exact:
            return self
        if self._loose is None:
            self._loose = Matcher(self.forest, exact=False, ordered=self.ordered)
            self._loose.height = self.height
        return self._loose

    def candidates(self, expected: Expected, actual: Sequence[SpanNode]) -> list[SpanNode]:
        return [node for node in self._prefiltered(expected, actual) if self.matches(expected, node)]

    def _prefiltered(self, expected: Expected, actual: Sequence[SpanNode]) -> Sequence[SpanNode]:
        """The nodes that can match at all, looked up by a plain attribute value or the exact name."""
        if len(actual) < _INDEX_FROM:
            return actual
        attribute = expected.exact_attribute()
        if attribute is not None:
            return self._index(actual, attribute[0]).get(attribute[1], [])
        name = expected.exact_name()
        return actual if name is None else self._index(actual, None).get(name, [])

    def _index(self, actual: Sequence[SpanNode], key: str | None) -> dict[object, list[SpanNode]]:
        """Nodes by name (key None) or by the value of one attribute; built once per list of siblings."""
        entry = self._indexes.get((id(actual), key))
        if entry is None or entry[0] is not actual:
            index: dict[object, list[SpanNode]] = {}
            for node in actual:
                value = node.name if key is None else (node.span.attributes or {}).get(key, _ABSENT)
                if value is not _ABSENT and isinstance(value, Hashable):  # no plain value equals a list anyway
                    index.setdefault(value, []).append(node)
            entry = self._indexes[(id(actual), key)] = (actual, index)
        return entry[1]

    def assign(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], exact: bool | None = None
    ) -> Assignment | None:
        """Distinct actual nodes for every expected node (count=N nodes take all N), or None.

        ``exact`` is the parent node's own ``exact=``; None means the assertion's.
        """
        exact = self.exact if exact is None else exact
        if not expected:
            return {} if not (exact and actual) else None
        if exact and _units(expected) != len(actual):
            return None
        if self.ordered:
            return self._assign_ordered(expected, actual, exact)
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
        positions = sibling_groups(expected)
        owned = self._first_fit(expected, actual, positions, taken)
        if owned is None:
            options = [[n for n in self.candidates(expected[p[0]], actual) if n.index not in taken] for p in positions]
            owned = max_assignment([len(p) for p in positions], options)
        if owned is None:
            return None
        for pos_list, nodes in zip(positions, owned):
            for pos, chosen in zip(pos_list, nodes):
                result[pos] = [chosen]
        return result

    def _first_fit(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], positions: list[list[int]], taken: set[int]
    ) -> list[list[SpanNode]] | None:
        """Each group takes the first free nodes it matches; usually enough, and it tests few pairs.

        When it leaves a group short, the caller falls back to the full bipartite matching.
        """
        used = set(taken)
        owned: list[list[SpanNode]] = []
        for pos in positions:
            nodes: list[SpanNode] = []
            for node in self._prefiltered(expected[pos[0]], actual):
                if len(nodes) == len(pos):
                    break
                if node.index not in used and self.matches(expected[pos[0]], node):
                    nodes.append(node)
                    used.add(node.index)
            if len(nodes) < len(pos):
                return None
            owned.append(nodes)
        return owned

    def _assign_ordered(
        self, expected: Sequence[Expected], actual: Sequence[SpanNode], exact: bool
    ) -> Assignment | None:
        """Greedy earliest placement is optimal for in-order (subsequence) matching."""
        result: Assignment = {}
        cursor = 0
        for pos, node in enumerate(expected):
            if node.count is not None and len(self.candidates(node, actual)) != node.count:
                return None
            for _ in range(1 if node.count is None else node.count):
                while cursor < len(actual) and not self.matches(node, actual[cursor]):
                    if exact:
                        return None
                    cursor += 1
                if cursor == len(actual):
                    return None
                result.setdefault(pos, []).append(actual[cursor])
                cursor += 1
        return result


def sibling_groups(expected: Sequence[Expected]) -> list[list[int]]:
    """Positions of the expected siblings without a count, interchangeable ones grouped together."""
    groups: dict[Hashable, list[int]] = {}
    for pos, item in enumerate(expected):
        if item.count is None:
            groups.setdefault(item.group_key(), []).append(pos)
    return list(groups.values())


def _units(expected: Sequence[Expected]) -> int:
    return sum(1 if node.count is None else node.count for node in expected)


def max_assignment(capacity: list[int], options: list[list[SpanNode]]) -> list[list[SpanNode]] | None:
    """Give group g ``capacity[g]`` distinct nodes from ``options[g]``, or None if impossible."""
    owner, crowded = _solve(capacity, options)
    if crowded:
        return None
    by_index = {node.index: node for opts in options for node in opts}
    owned: list[list[SpanNode]] = [[] for _ in capacity]
    for index, group in owner.items():
        owned[group].append(by_index[index])
    return owned


def crowded_groups(capacity: list[int], options: list[list[SpanNode]]) -> list[int]:
    """When no assignment exists: groups that together need more nodes than all their options hold."""
    return sorted(_solve(capacity, options)[1])


def _solve(capacity: list[int], options: list[list[SpanNode]]) -> tuple[dict[int, int], set[int]]:
    """Owner group of each node, and the groups left short (empty when every group is served)."""
    for group, (cap, opts) in enumerate(zip(capacity, options)):
        if len(opts) < cap:
            return {}, {group}
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
            stuck = _augment(group, options, owner)
            if stuck:
                return owner, stuck
            load[group] += 1
    return owner, set()


def _augment(start: int, options: list[list[SpanNode]], owner: dict[int, int]) -> set[int]:
    """Breadth-first search for a chain of reassignments that frees one node for ``start``.

    Returns an empty set on success; otherwise the groups searched, whose options all belong to them.
    """
    came_from: dict[int, tuple[int, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        group = queue.popleft()
        for node in options[group]:
            holder = owner.get(node.index)
            if holder is None:
                _flip(group, node.index, came_from, owner)
                return set()
            if holder not in came_from:
                came_from[holder] = (group, node.index)
                queue.append(holder)
    return set(came_from)


def _flip(group: int, free: int, came_from: dict[int, tuple[int, int] | None], owner: dict[int, int]) -> None:
    owner[free] = group
    step = came_from[group]
    while step is not None:
        previous, index = step
        owner[index] = previous
        step = came_from[previous]


@dataclass(frozen=True)
class Difference:
    """The first concrete difference found, where it was found, and how far matching got.

    ``mark`` is the shorter text shown next to ``node`` (and any ``others`` it is about) in the rendered
    forest, when it differs. ``expected`` is the expected node the difference is about, where there is one
    (an unexpected span has none): the HTML report marks it in the expected tree.
    """

    message: str
    node: SpanNode | None
    score: tuple[int, ...]
    mark: str = ""
    others: tuple[SpanNode, ...] = ()
    expected: Expected | None = None

    @property
    def detail(self) -> str:
        return self.mark or self.message
