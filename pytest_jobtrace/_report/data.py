"""A test's spans as plain, JSON-ready data for the HTML report (small keys: a session holds many).

Times are whole microseconds from the test's first span start; each span is a list (see ``_span``).
Rows are the waterfall in display order: a span's row is ``[span index, depth]``; a job's header row is
``[-1 - job index, depth]``, with the job's send span and every attempt under it (the folded order of
``render(format="jobs")``, attempts kept).
All text is free of control characters, except the spans' attribute values, which the page escapes.

Cost: a test that asserted has its forest (and job index) built already, and its data comes from them.
Otherwise, when none of its spans is a job's, :func:`plain_trace_data` lays the spans out as the forest
would without building one (most tests of a large session); only a test with jobs builds its forest here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import Attributes

from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._jobs.jobspans import JobSpans
from pytest_jobtrace._jobs.registry import recognise
from pytest_jobtrace._jobs.views import JobIndex, JobView, job_index
from pytest_jobtrace._report.safe import neutral

Row = list[int]
EMPTY: dict[str, Any] = {"spans": [], "rows": [], "jobs": [], "traces": [], "d": 0}


def capture_data(capture: JobSpans, job_fixture: bool = True) -> dict[str, Any]:
    """The page's data for one test's capture, from its forest if the test built one.

    ``job_fixture``: the test used a job adapter's fixture, so any of its spans may be a job's.
    """
    version, spans = capture._sink.snapshot()
    built = capture._forest  # (version, forest) once the test asserted, rendered or listed its jobs
    if built is not None and built[0] == version:
        return trace_data(built[1])
    plain = None if job_fixture else plain_trace_data(spans)
    return plain if plain is not None else trace_data(capture.forest())


def trace_data(forest: SpanForest) -> dict[str, Any]:
    """The page's data for one test's forest (pass ``JobSpans.forest()``: a test that asserted built it already)."""
    if not forest.nodes:
        return dict(EMPTY)
    t0, duration = _bounds([node.span for node in forest.nodes])
    trace_of = {node.index: n for n, roots in enumerate(forest.traces) for root in roots for node in root.walk()}
    index = job_index(forest)
    spans = []
    for node in forest.nodes:
        parent = node.parent.index if node.parent is not None else None
        links = [target.index for target in node.links]
        spans.append(_span(node.span, t0, trace_of[node.index], parent, links, node.unresolved_links))
    return {
        "spans": spans,
        "rows": waterfall_rows(forest, index),
        "jobs": [_job(job) for job in index.jobs],
        "traces": [f"{_trace_id(roots[0]):032x}" for roots in forest.traces],
        "d": duration,
    }


_JOB_KINDS = (SpanKind.PRODUCER, SpanKind.CONSUMER)


def plain_trace_data(spans: Sequence[ReadableSpan]) -> dict[str, Any] | None:
    """What :func:`trace_data` gives for spans of no job, without building their forest; None where that
    takes the forest: a span a job adapter recognises, a span without ids, ids that collide, parents that loop.

    Only producer and consumer spans are offered to the adapters (the kinds of every job span the built-in,
    Celery and RQ adapters know; a test that uses a job fixture takes the forest's way, where every span is).
    """
    if not spans:
        return dict(EMPTY)
    at: dict[tuple[int, int], int] = {}
    keys = []  # the forest's order of siblings: start time, name, index
    for i, span in enumerate(spans):
        context = span.context
        if context is None or (span.kind in _JOB_KINDS and recognise(span) is not None):
            return None
        at[(context.trace_id, context.span_id)] = i
        keys.append((span.start_time or 0, span.name, i))
    if len(at) < len(spans):
        return None
    children: list[list[int]] = [[] for _ in spans]
    parents: list[int | None] = []
    roots = []
    for i, span in enumerate(spans):
        up = span.parent
        parent = at.get((up.trace_id, up.span_id)) if up is not None else None
        if parent is None or parent == i:
            parent = None
            roots.append(i)
        else:
            children[parent].append(i)
        parents.append(parent)
    return _plain_layout(spans, at, keys, parents, children, roots)


def _plain_layout(
    spans: Sequence[ReadableSpan],
    at: dict[tuple[int, int], int],
    keys: list[tuple[int, str, int]],
    parents: list[int | None],
    children: list[list[int]],
    roots: list[int],
) -> dict[str, Any] | None:
    """The forest's order (see SpanForest): siblings and roots by start time, name, index; traces by their
    first root; depth first."""
    for kids in children:
        if len(kids) > 1:
            kids.sort(key=keys.__getitem__)
    traces: dict[int, list[int]] = {}
    for root in sorted(roots, key=keys.__getitem__):
        traces.setdefault(spans[root].context.trace_id, []).append(root)
    grouped = sorted(traces.values(), key=lambda trace: keys[trace[0]])
    rows: list[Row] = []
    trace_of = [0] * len(spans)
    for n, trace in enumerate(grouped):
        stack = [(root, 0) for root in reversed(trace)]
        while stack:
            i, depth = stack.pop()
            rows.append([i, depth])
            trace_of[i] = n
            stack.extend((kid, depth + 1) for kid in reversed(children[i]))
    if len(rows) < len(spans):  # parent ids that loop: the forest breaks the loop
        return None
    t0, duration = _bounds(spans)
    data = []
    for i, span in enumerate(spans):
        links, unresolved = [], 0
        for link in _links(span):
            target = at.get((link.context.trace_id, link.context.span_id))
            if target is None:
                unresolved += 1
            else:
                links.append(target)
        data.append(_span(span, t0, trace_of[i], parents[i], links, unresolved))
    ids = [f"{spans[trace[0]].context.trace_id:032x}" for trace in grouped]
    return {"spans": data, "rows": rows, "jobs": [], "traces": ids, "d": duration}


def _bounds(spans: Sequence[ReadableSpan]) -> tuple[int, float]:
    t0 = min(span.start_time or 0 for span in spans)
    end = max(span.end_time or span.start_time or 0 for span in spans)
    return t0, (end - t0) // 1000


# The SDK's ReadableSpan copies its events and links, under a lock, on every access, and its attributes
# iterate the same way: most spans have no events or links, so their emptiness is read first, and the
# attributes' own dict where the SDK keeps one (the public API otherwise). A session has many spans.
def _events(span: ReadableSpan) -> Sequence[Any]:
    held = getattr(span, "_events", None)
    return () if held is not None and not len(held) else span.events


def _links(span: ReadableSpan) -> Sequence[Any]:
    held = getattr(span, "_links", None)
    return () if held is not None and not len(held) else span.links


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    # Handed to the JSON encoder as they are (read before the test's next span can end: the data is encoded
    # in the same hook); the page escapes control characters in them, as neutral() does here.
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    return inner if type(inner) is dict else dict(span.attributes or {})


def _span(span: ReadableSpan, t0: int, trace: int, parent: int | None, links: list[int], unresolved: int) -> list[Any]:
    """``[name, start, end, trace, span id, parent or -1, {attributes}]`` and, when there is more to say, a
    dict of it: ``k`` kind, ``st``/``sd``/``x`` status and exception, ``ev`` events, ``l``/``ul`` links. A
    list is cheaper to build and to encode than a dict; the page reads it when the test is shown. The
    attributes are the span's own values (the only text not neutralised here: the page does it).
    """
    start = span.start_time or t0
    context = span.context
    data = [
        neutral(span.name),
        (start - t0) // 1000,
        ((span.end_time or start) - t0) // 1000,
        trace,
        f"{context.span_id:016x}" if context else "",
        -1 if parent is None else parent,
        _attributes(span),
    ]
    kind, events, code = span.kind, _events(span), span.status.status_code
    if kind is SpanKind.INTERNAL and code is StatusCode.UNSET and not events and not links and not unresolved:
        return data  # most spans: nothing more to say
    more: dict[str, Any] = {}
    if kind is not SpanKind.INTERNAL:
        more["k"] = kind.name.lower()
    if code is not StatusCode.UNSET:
        _add_status(more, span, events)
    if events:
        more["ev"] = [[neutral(e.name), (e.timestamp - t0) // 1000, attribute_rows(e.attributes)] for e in events]
    if links:
        more["l"] = links
    if unresolved:
        more["ul"] = unresolved
    data.append(more)
    return data


def _add_status(data: dict[str, Any], span: ReadableSpan, events: Sequence[Any]) -> None:
    code = span.status.status_code
    data["st"] = code.name
    if span.status.description:
        data["sd"] = neutral(span.status.description)
    exception = next((e for e in events if e.name == "exception"), None)
    if code == StatusCode.ERROR and exception is not None and exception.attributes:
        kind, message = exception.attributes.get("exception.type"), exception.attributes.get("exception.message")
        data["x"] = neutral(f"{kind}: {message}" if message else str(kind))


def attribute_rows(attributes: Attributes) -> list[list[str]]:
    """``[key, value as text]`` pairs; strings as they are, other values as JSON."""
    return [[neutral(key), _text(value)] for key, value in (attributes or {}).items()]


def _text(value: object) -> str:
    # The common types first, without json (a report of 1,000 tests has tens of thousands of values).
    kind = type(value)
    if kind is str:
        return neutral(value)  # type: ignore[arg-type]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if isinstance(value, (tuple, list)):
        value = list(value)
    return neutral(json.dumps(value, ensure_ascii=False, default=str))


def _job(job: JobView) -> dict[str, Any]:
    return {
        "n": neutral(job.name),
        "q": neutral(job.queue) if job.queue else None,
        "o": job.outcome,
        "p": job.publish_node.index if job.publish_node else None,
        "a": [
            [node.index, info.attempt_outcome or "?", neutral(info.retry_reason or "")]
            for node, info in zip(job.attempt_nodes, job.attempt_infos)
        ],
    }


def waterfall_rows(forest: SpanForest, index: JobIndex) -> list[Row]:
    """Every span once, depth first; a job's spans grouped under a header row where the job starts."""
    hidden = index.hidden
    jobs = {id(job): n for n, job in enumerate(index.jobs)}
    rows: list[Row] = []
    seen: set[int] = set()
    # (node, depth, as_member): a member row is a span shown inside its job's group.
    stack = [(root, 0, False) for roots in reversed(forest.traces) for root in reversed(roots)]
    stack = [entry for entry in stack if entry[0].index not in hidden]
    while stack:
        node, depth, as_member = stack.pop()
        job = None if as_member else index.job_at(node)
        if job is not None:
            rows.append([-1 - jobs[id(job)], depth])
            members = sorted(_members(job), key=lambda n: (n.span.start_time or 0, n.index), reverse=True)
            stack.extend((member, depth + 1, True) for member in members)
            continue
        rows.append([node.index, depth])
        seen.add(node.index)
        stack.extend((kid, depth + 1, False) for kid in reversed(node.children) if kid.index not in hidden)
    # Never lose a span, whatever shape the jobs have: anything not placed goes at the end, at the top level.
    rows.extend([node.index, 0] for node in forest.nodes if node.index not in seen)
    return rows


def _members(job: JobView) -> list[SpanNode]:
    nodes = [job.publish_node] if job.publish_node else []
    return [*nodes, *job.attempt_nodes, *job.republish_nodes]


def _trace_id(node: SpanNode) -> int:
    return node.span.context.trace_id if node.span.context else 0
