"""After the first difference: the other differences a failed assertion can point at, in one pass.

Each expected node that matches nowhere is paired with its closest captured span by its own checks
(name first), its local difference is noted, and the walk goes on into its children, so that fixing
three mistakes takes one run instead of three. The walk is iterative and bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from pytest_jobtrace._core.diagnose import Diagnoser, where
from pytest_jobtrace._core.expect import Expected
from pytest_jobtrace._core.forest import SpanNode
from pytest_jobtrace._core.match import Difference

MAX_FOUND = 50  # differences looked for; past that, the message says "at least"

Work = tuple[Sequence[Expected], Sequence[SpanNode], SpanNode | None, Expected | None]


def other_differences(
    diagnoser: Diagnoser, roots: Sequence[Expected], pool: Sequence[SpanNode], first: Difference
) -> list[Difference]:
    """Differences besides ``first``, in tree order, at most MAX_FOUND of them."""
    found: list[Difference] = []
    seen = set(_keys(first))
    queue: deque[Work] = deque([(roots, pool, None, None)])
    while queue and len(found) < MAX_FOUND:
        for difference in _group(diagnoser, queue, *queue.popleft()):
            if not seen.intersection(_keys(difference)):
                seen.update(_keys(difference))
                found.append(difference)
    return found[:MAX_FOUND]


def _keys(difference: Difference) -> list[object]:
    """One difference per span: a second one about the same span is the same mistake seen again."""
    if difference.node is None:
        return [difference.message]
    return [node.index for node in (difference.node, *difference.others)]


def _group(
    diagnoser: Diagnoser,
    queue: deque[Work],
    expected: Sequence[Expected],
    actual: Sequence[SpanNode],
    parent: SpanNode | None,
    owner: Expected | None,
) -> list[Difference]:
    m = diagnoser.m
    found: list[Difference] = []
    for node in expected:
        candidates = m.candidates(node, actual)
        if len(candidates) == (node.count or 1) or (node.count is None and candidates):
            continue
        closest = _closest(node, actual)
        if node.count is not None or closest is None:
            # Said as the first difference would say it, so that it is recognised as the same one.
            found.append(diagnoser.explain_group([node], actual, parent, owner))
            continue
        found.extend(_local(diagnoser, node, closest))
        queue.append((node.children, node.child_nodes(closest), node.children_owner(closest), node))
    if not found and expected and m.assign(expected, actual, owner.exact if owner else None) is None:
        found.append(diagnoser.explain_group(expected, actual, parent, owner))
    return found


def _closest(node: Expected, actual: Sequence[SpanNode]) -> SpanNode | None:
    """The span with this node's name (if it names one) that passes most of its own checks."""
    named = [span for span in actual if node.same_name(span)]
    if not named:
        return None
    return min(named, key=lambda span: (node.local_mismatch(span) is not None, -node.closeness(span)))


def _local(diagnoser: Diagnoser, node: Expected, span: SpanNode) -> list[Difference]:
    local = node.local_mismatch(span)
    if local is not None:
        return [Difference(f"at {where(span)}: {local}", span, (0,), local, expected=node)]
    for link in node.links:
        if not any(diagnoser.loose.matches(link, target) for target in span.links):
            detail = f"expected a link to {link.label()}"
            return [Difference(f"at {where(span)}: {detail}", span, (0,), detail, expected=node)]
    return []
