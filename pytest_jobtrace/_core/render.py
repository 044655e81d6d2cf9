"""Text and Mermaid renderings of a span forest and of an expected tree.

The text form is also a valid expectation: ``assert_span_tree(capture.render())`` passes for the
capture it was rendered from (see docs/text-trees.md for the grammar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal, TypeVar

from opentelemetry.trace import SpanKind, StatusCode

from pytest_jobtrace._core.expect import Expected
from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.notation import quote
from pytest_jobtrace._core.texttree import written_name
from pytest_jobtrace._core.values import kind_word
from pytest_jobtrace._jobs.views import JobIndex, folded_children, job_index, job_line

T = TypeVar("T")
Format = Literal["text", "mermaid", "jobs"]
FORMATS = ("text", "mermaid", "jobs")


def render_as(forest: SpanForest, format: Format) -> str:
    """``text``: box-drawn, a valid expectation; ``mermaid``: a graph; ``jobs``: each job on one line."""
    if format == "text":
        return render_forest(forest)
    if format == "mermaid":
        return render_mermaid(forest)
    if format == "jobs":
        return render_folded(job_index(forest))
    raise ValueError(f"render(format={format!r}): use one of {', '.join(map(repr, FORMATS))}")


def span_line(node: SpanNode, *, links: bool = True, literal: bool = False) -> str:
    """One span as a line: name, then [kind, status "description", link "target"]."""
    notes = []
    if node.kind != SpanKind.INTERNAL:
        notes.append(kind_word(node.kind))
    status = node.span.status
    if status.status_code != StatusCode.UNSET:
        note = status.status_code.name
        if status.description:
            note += f" {quote(status.description)}"
        notes.append(note)
    if links:
        notes.extend(f"link {quote(written_name(target.name))}" for target in node.links)
        notes.extend("link (not captured)" for _ in range(node.unresolved_links))
    suffix = f" [{', '.join(notes)}]" if notes else ""
    return (node.name if literal else written_name(node.name, suffix)) + suffix


def tree_lines(
    roots: Sequence[T],
    children: Callable[[T], Sequence[T]],
    line: Callable[[T], str],
) -> Iterator[tuple[T, str]]:
    """Box-drawn lines for a forest of any node type, with the node each line shows.

    Walks with an explicit stack: a chain of jobs or an expected tree may be thousands of levels deep.
    """
    stack: list[tuple[T, str, str]] = [(root, "", "") for root in reversed(roots)]
    while stack:
        node, prefix, indent = stack.pop()
        yield node, prefix + line(node)
        kids = children(node)
        for i in range(len(kids) - 1, -1, -1):
            last = i == len(kids) - 1
            stack.append((kids[i], indent + ("└── " if last else "├── "), indent + ("    " if last else "│   ")))


def render_forest(forest: SpanForest, marks: Mapping[int, str] | None = None) -> str:
    """The captured forest, traces separated by a blank line; ``marks`` annotate nodes by index."""
    if not forest.roots:
        return "(no spans captured)"
    marks = marks or {}
    blocks = []
    for roots in forest.traces:
        lines = []
        for node, text in tree_lines(roots, lambda n: n.children, span_line):
            mark = marks.get(node.index)
            lines.append(f"{text}    <-- {mark}" if mark else text)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_folded(index: JobIndex) -> str:
    """The forest with each job folded to one line; its attempts' own spans hang under it."""
    hidden = index.hidden
    traces = [[root for root in roots if root.index not in hidden] for roots in index.forest.traces]

    def line(node: SpanNode) -> str:
        job = index.job_at(node)
        return job_line(job) if job is not None else span_line(node)

    blocks = [
        "\n".join(text for _, text in tree_lines(roots, lambda n: folded_children(index, n), line))
        for roots in traces
        if roots
    ]
    return "\n\n".join(blocks) if blocks else "(no spans captured)"


def render_expected(roots: Sequence[Expected]) -> str:
    return "\n".join(text for _, text in tree_lines(roots, lambda e: e.children, lambda e: e.render_line()))


def render_mermaid(forest: SpanForest) -> str:
    """A ``graph TD`` of the forest, one subgraph per trace: solid arrows to children, dotted links."""
    lines = ["graph TD"]
    for number, roots in enumerate(forest.traces, 1):
        lines.append(f'    subgraph t{number} ["trace {number}"]')
        for node in (n for root in roots for n in root.walk()):
            lines.append(f'        s{node.index}["{_mermaid_label(node)}"]')
            if node.status_code == StatusCode.ERROR:
                lines.append(f"        class s{node.index} error")
        lines.append("    end")
    for node in forest:
        lines.extend(f"    s{node.index} --> s{child.index}" for child in node.children)
        lines.extend(f"    s{node.index} -.->|link| s{target.index}" for target in node.links)
    lines.append("    classDef error fill:#fdd,stroke:#c00")
    return "\n".join(lines)


def _mermaid_label(node: SpanNode) -> str:
    text = span_line(node, links=False, literal=True).replace('"', "#quot;")
    return text.replace("[", "#91;").replace("]", "#93;")
