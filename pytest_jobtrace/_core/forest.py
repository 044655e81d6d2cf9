"""The captured spans as a forest: traces, parent-child trees and resolved links."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

T = TypeVar("T")


@dataclass(eq=False)
class SpanNode:
    """One captured span in the forest, with its captured parent, children and link targets."""

    span: ReadableSpan
    index: int
    forest: SpanForest = field(repr=False)
    parent: SpanNode | None = None
    children: list[SpanNode] = field(default_factory=list)
    links: list[SpanNode] = field(default_factory=list)
    unresolved_links: int = 0

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def kind(self) -> SpanKind:
        return self.span.kind

    @property
    def status_code(self) -> StatusCode:
        return self.span.status.status_code

    def path(self) -> list[SpanNode]:
        """This node and its ancestors, root first."""
        nodes: list[SpanNode] = []
        node: SpanNode | None = self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def walk(self) -> Iterator[SpanNode]:
        """This node, then its descendants depth-first in display order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def __repr__(self) -> str:
        return f"<SpanNode {self.name!r}>"


def _order_key(node: SpanNode) -> tuple[int, str, int]:
    return (node.span.start_time or 0, node.name, node.index)


class SpanForest:
    """Spans grouped into traces and trees by parent id, in a deterministic order.

    Traces come by earliest start; within a trace, parents before children; siblings (and roots)
    by start time, ties by name. A span whose parent was not captured is a root.
    """

    def __init__(self, spans: Iterable[ReadableSpan]) -> None:
        self.nodes = [SpanNode(span, i, self) for i, span in enumerate(spans)]
        self._extensions: dict[str, object] = {}
        self._by_id: dict[tuple[int, int], list[SpanNode]] = {}
        for node in self.nodes:
            self._by_id.setdefault(_key_of(node.span), []).append(node)
        self.roots = self._link_parents()
        self._resolve_links()
        self.traces = self._group_traces()
        self.roots = [root for trace in self.traces for root in trace]
        self.display_order = [node for root in self.roots for node in root.walk()]
        if len(self.display_order) < len(self.nodes):  # parent ids that loop: only when ids collide
            self._break_cycles()

    def _find(self, key: tuple[int, int], near: SpanNode) -> SpanNode | None:
        """The captured span with these ids; where ids collide (providers with their own id generators,
        such as counters), the one from ``near``'s provider, told by its resource object."""
        found = self._by_id.get(key)
        if found is None:
            return None
        if len(found) == 1:
            return found[0]
        others = [node for node in found if node is not near]
        same = [node for node in others if node.span.resource is near.span.resource]
        pool = same or others
        return pool[0] if pool else None

    def _break_cycles(self) -> None:
        """Make the earliest span of each parent loop a root, so that no captured span goes unshown."""
        shown = {node.index for node in self.display_order}
        for node in sorted(self.nodes, key=_order_key):
            if node.index in shown:
                continue
            loop: list[SpanNode] = []
            current: SpanNode | None = node
            while current is not None and current.index not in shown and current not in loop:
                loop.append(current)
                current = current.parent
            head = min(loop[loop.index(current) :] if current in loop else loop, key=_order_key)
            if head.parent is not None:
                head.parent.children.remove(head)
                head.parent = None
            self.roots.append(head)
            shown.update(n.index for n in head.walk())
        self.traces = self._group_traces()
        self.roots = [root for trace in self.traces for root in trace]
        self.display_order = [node for root in self.roots for node in root.walk()]

    def _link_parents(self) -> list[SpanNode]:
        roots = []
        for node in self.nodes:
            parent_ctx = node.span.parent
            parent = None
            if parent_ctx is not None:
                parent = self._find((parent_ctx.trace_id, parent_ctx.span_id), node)
            if parent is None or parent is node:
                roots.append(node)
            else:
                node.parent = parent
                parent.children.append(node)
        for node in self.nodes:
            node.children.sort(key=_order_key)
        return roots

    def _resolve_links(self) -> None:
        for node in self.nodes:
            for link in node.span.links:
                target = self._find((link.context.trace_id, link.context.span_id), node)
                if target is None:
                    node.unresolved_links += 1
                else:
                    node.links.append(target)

    def _group_traces(self) -> list[list[SpanNode]]:
        traces: dict[int, list[SpanNode]] = {}
        for root in sorted(self.roots, key=_order_key):
            traces.setdefault(_trace_id(root), []).append(root)
        return sorted(traces.values(), key=lambda roots: _order_key(roots[0]))

    def cached(self, key: str, build: Callable[[SpanForest], T]) -> T:
        """Per-forest derived data (such as the job index), built once on first use."""
        if key not in self._extensions:
            self._extensions[key] = build(self)
        return self._extensions[key]  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[SpanNode]:
        return iter(self.display_order)


def _key_of(span: ReadableSpan) -> tuple[int, int]:
    context = span.context
    if context is None:
        return (0, id(span))
    return (context.trace_id, context.span_id)


def _trace_id(node: SpanNode) -> int:
    context = node.span.context
    return context.trace_id if context is not None else 0
