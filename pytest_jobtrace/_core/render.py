"""Text and Mermaid renderings of a span forest and of an expected tree.

The text form is also a valid expectation: ``assert_span_tree(capture.render())`` passes for the
capture it was rendered from (see docs/text-trees.md for the grammar).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

from opentelemetry.sdk.trace import Event
from opentelemetry.trace import SpanKind, StatusCode

from pytest_jobtrace._core.expect import EventSpec, ExceptionSpec, Expected
from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.notation import PRESENT, quote, write_attributes
from pytest_jobtrace._core.texttree import written_name
from pytest_jobtrace._core.values import kind_word
from pytest_jobtrace._jobs.match import job_line
from pytest_jobtrace._jobs.views import JobIndex, JobView, folded_children, job_index

T = TypeVar("T")
Format = Literal["text", "mermaid", "jobs"]
FORMATS = ("text", "mermaid", "jobs")


# Attribute keys whose values change from run to run or machine to machine, whatever the code does:
# generated ids, wall-clock times, host names, ports, threads and processes, source locations.
# render(details=True) writes them as ``*`` (present, any value). docs/snapshots.md lists them.
VOLATILE_KEYS = (
    # ids a job system or transport generates
    "messaging.message.id",
    "messaging.message.conversation_id",
    "messaging.conversation_id",
    "celery.reply_to",
    "celery.task_id",
    "rq.job.id",
    "rq.job.depends_on",
    # wall-clock times
    "celery.eta",
    "celery.expires",
    "rq.job.scheduled_for",
    # host names, peer ports
    "celery.hostname",
    "host.name",
    "client.port",
    "net.peer.port",
    "net.sock.peer.port",
    "network.peer.port",
    # threads and processes
    "thread.id",
    "thread.name",
    "process.pid",
    # source locations and stack traces
    "code.filepath",
    "code.file.path",
    "code.lineno",
    "code.line.number",
    "code.column",
    "code.column.number",
    "code.stacktrace",
    "exception.stacktrace",
)


_GLOB = re.compile(r"[*?\[]")


class Details:
    """What ``render(details=True)`` adds to each line: attributes, events and exceptions, volatile values as ``*``."""

    def __init__(self, volatile: Iterable[str] = ()) -> None:
        if isinstance(volatile, str):
            raise TypeError(f"volatile={volatile!r}: give a list of attribute keys, such as [{volatile!r}]")
        extra = tuple(volatile)
        wrong = [key for key in extra if not isinstance(key, str)]
        if wrong:
            raise TypeError(f"volatile=: {wrong[0]!r} is not an attribute key (a string, or a glob such as 'http.*')")
        self.volatile = VOLATILE_KEYS + extra
        self._exact = frozenset(self.volatile)
        globs = [fnmatch.translate(key) for key in self.volatile if _GLOB.search(key)]
        self._glob = re.compile("|".join(globs)) if globs else None
        self._seen: dict[str, bool] = {}  # a trace repeats its keys: each is looked up once

    def is_volatile(self, key: str) -> bool:
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = key in self._exact or bool(self._glob and self._glob.match(key))
        return found

    def attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, object]:
        """The attributes sorted by key, each volatile one as ``*`` (present, any value)."""
        given = attributes or {}
        return {key: PRESENT if self.is_volatile(key) else given[key] for key in sorted(given)}

    def notes(self, node: SpanNode) -> list[str]:
        """The span's events in the order recorded, its first exception as ``exception "Type" "message"``."""
        first, exception = _first_exception(node)
        notes = [
            EventSpec(event.name, self.attributes(event.attributes) or None).note()
            for event in node.span.events
            if event is not first
        ]
        return notes if exception is None else [*notes, exception.note()]

    def job_line(self, job: JobView) -> str:
        """What ``job(attributes=..., exception=...)`` checks: the last attempt's (the send span's if none ran)."""
        if job.attempt_nodes:
            node = job.attempt_nodes[-1]
            return job_line(job, self.attributes(node.span.attributes), _first_exception(node)[1])
        return job_line(job, self.attributes(job.site.span.attributes) if job.site else None)


def details_for(details: object, volatile: Iterable[str]) -> Details | None:
    """The ``details=`` and ``volatile=`` arguments of ``render()``, checked."""
    if type(details) is not bool:
        raise TypeError(f"render(details={details!r}): details takes True or False")
    if not details:
        if volatile:
            raise ValueError("render(volatile=...) names keys to hide among the details: give details=True too")
        return None
    return Details(volatile)


def _first_exception(node: SpanNode) -> tuple[Event | None, ExceptionSpec | None]:
    """The span's first exception event as ``record_exception`` writes it, and its shorthand."""
    for event in node.span.events:
        attributes = event.attributes or {}
        if event.name == "exception" and _recorded_exception(attributes):
            return event, ExceptionSpec(attributes["exception.type"], attributes["exception.message"])
    return None, None


def _recorded_exception(attributes: Mapping[str, Any]) -> bool:
    """An exception event as ``record_exception`` writes it: the shorthand says all but the stack trace."""
    known = {"exception.type", "exception.message", "exception.stacktrace", "exception.escaped"}
    return (
        isinstance(attributes.get("exception.type"), str)
        and isinstance(attributes.get("exception.message"), str)
        and set(attributes) <= known
        and attributes.get("exception.escaped", "False") in ("False", False)
    )


def render_as(forest: SpanForest, format: Format, details: Details | None = None) -> str:
    """``text``: box-drawn, a valid expectation; ``mermaid``: a graph; ``jobs``: each job on one line.

    ``details`` adds each span's attributes, events and exceptions (the snapshot form; not for Mermaid).
    """
    if format not in FORMATS:
        raise ValueError(f"render(format={format!r}): use one of {', '.join(map(repr, FORMATS))}")
    if format == "mermaid":
        if details is not None:
            raise ValueError("render('mermaid', details=True): details= applies to the 'text' and 'jobs' forms")
        return render_mermaid(forest)
    if format == "jobs":
        return render_folded(job_index(forest), details)
    return render_forest(forest, details=details)


def span_line(node: SpanNode, *, links: bool = True, literal: bool = False, details: Details | None = None) -> str:
    """One span as a line: name, then [kind, status "description", link "target"].

    With ``details``: then its events and exception in the brackets, and ``{attributes}`` sorted by key.
    """
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
    if details is not None:
        notes += details.notes(node)
    groups = [f"[{', '.join(notes)}]"] if notes else []
    if details is not None and node.span.attributes:
        groups.append(write_attributes(details.attributes(node.span.attributes)))
    suffix = "".join(f" {group}" for group in groups)
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


def render_forest(forest: SpanForest, marks: Mapping[int, str] | None = None, *, details: Details | None = None) -> str:
    """The captured forest, traces separated by a blank line; ``marks`` annotate nodes by index."""
    if not forest.roots:
        return "(no spans captured)"
    marks = marks or {}
    blocks = []
    for roots in forest.traces:
        lines = []
        for node, text in tree_lines(roots, lambda n: n.children, lambda n: span_line(n, details=details)):
            mark = marks.get(node.index)
            lines.append(f"{text}    <-- {mark}" if mark else text)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_folded(index: JobIndex, details: Details | None = None) -> str:
    """The forest with each job folded to one line; its attempts' own spans hang under it."""
    hidden = index.hidden
    traces = [[root for root in roots if root.index not in hidden] for roots in index.forest.traces]

    def line(node: SpanNode) -> str:
        job = index.job_at(node)
        if job is None:
            return span_line(node, details=details)
        return details.job_line(job) if details else job_line(job)

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
