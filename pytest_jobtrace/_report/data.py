"""A test's spans as the page's data: flat columns, one entry a span (small keys: a session holds many).

``{"n": names, "s": starts, "e": ends, "i": span ids, "t": traces, "T": trace ids, "p": parents,
"a": attributes, "o": order, "m": more, "d": duration}``, spans in capture order (``t``, ``o``, ``m`` only
where needed):

- ``n`` the names as captured and ``a`` the attributes as they are: the page escapes control characters;
- ``s``, ``e`` whole microseconds from the test's first span start, ``d`` the whole test's;
- ``i`` span ids (16 hex digits); ``t`` each span's own trace, an index into ``T`` (32 hex digits), left out
  where all are in one trace;
- ``p`` the captured parent's index, -1 for a root (a span whose parent was not captured);
- ``o`` the span indexes in the forest's order of siblings: start time (ns), name, index; left out where no
  two spans start in the same microsecond (the order of ``s`` is then that order);
- ``m`` ``[[index, {k, st, sd, x, ev, l, ul}]...]`` for the few spans with more to say: kind (``k``) other than
  internal, status and exception, events, links (``l`` span indexes, ``ul`` how many were not captured);
- ``rows`` and ``jobs``, only where the test ran jobs: the waterfall with each job's spans grouped under it.

The page lays the spans out itself (``layout`` in page.html): roots and siblings in ``o``'s order, traces
grouped by their roots' trace id, first root first, depth first, a parent loop broken as ``SpanForest`` breaks
it. So a test's data is a few columns read off its spans, in C where Python allows: no forest, no rows.
Only a test with jobs (or spans the columns cannot take: missing ids, ids that collide) goes through its
forest, whose parents and links the data then carries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from operator import attrgetter, eq, itemgetter
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import Attributes

from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._jobs.jobspans import JobSpans
from pytest_jobtrace._jobs.registry import recognise
from pytest_jobtrace._jobs.views import JobIndex, JobView, job_index
from pytest_jobtrace._report.html import script_json
from pytest_jobtrace._report.safe import neutral

Row = list[int]
EMPTY: dict[str, Any] = {"n": [], "s": [], "e": [], "i": [], "T": [], "p": [], "a": [], "d": 0}

# (name, start, end, context, parent, kind, status code, attributes, events, links) of a span. The SDK's
# ReadableSpan copies events and links under a lock on every access, and wraps its attributes: these
# fields, read in C all at once, are its own (a span made otherwise takes the public properties' way).
Fields = tuple[Any, ...]
_OWN_FIELDS = attrgetter(
    "_name", "_start_time", "_end_time", "_context", "_parent", "_kind", "_status._status_code",
    "_attributes._dict", "_events._dq", "_links._dq",
)  # fmt: skip
_IDS = itemgetter(0, 1)  # (trace id, span id) of a SpanContext, a tuple
_TRACE_ID = itemgetter(0)
_SPAN_ID = itemgetter(1)
_JOB_KINDS = (SpanKind.PRODUCER, SpanKind.CONSUMER)
_INTERNAL, _UNSET = SpanKind.INTERNAL, StatusCode.UNSET


def trace_json(capture: JobSpans, job_fixture: bool = True) -> str:
    """:func:`capture_data` as the page's JSON text (what a test's teardown report carries)."""
    return script_json(capture_data(capture, job_fixture))


def capture_data(capture: JobSpans, job_fixture: bool = True) -> dict[str, Any]:
    """The page's data for one test's capture; ``job_fixture``: the test used a job adapter's fixture, so
    any of its spans may be a job's (its forest, built already if the test asserted, finds its jobs)."""
    if not job_fixture:
        plain = plain_trace_data(capture._sink.snapshot()[1])
        if plain is not None:
            return plain
    return trace_data(capture.forest())


def plain_trace_data(spans: Sequence[ReadableSpan]) -> dict[str, Any] | None:
    """What :func:`trace_data` gives for spans of no job, without building their forest; None where that
    takes the forest: a span a job adapter recognises, a span without ids or times, ids that collide.

    Only producer and consumer spans are offered to the adapters (the kinds of every job span the built-in,
    Celery and RQ adapters know; a test that uses a job fixture takes the forest's way, where every span is).
    """
    if not spans:
        return dict(EMPTY)
    try:
        columns = tuple(zip(*map(_OWN_FIELDS, spans)))
    except AttributeError:  # not the SDK's own span objects: their forest reads them through the public API
        return None
    starts, contexts, kinds = columns[1], columns[3], columns[5]
    if not all(starts) or (kinds.count(_INTERNAL) < len(kinds) and _has_job_span(spans)):
        return None
    try:
        at = dict(zip(map(_IDS, contexts), range(len(spans))))
    except TypeError:  # a span without a context
        return None
    if len(at) < len(spans):
        return None
    parents = [-1 if up is None else at.get((up[0], up[1]), -1) for up in columns[4]]
    if any(map(eq, parents, range(len(spans)))):  # a span its own parent: a root, as in SpanForest
        parents = [-1 if parent == i else parent for i, parent in enumerate(parents)]

    def links(i: int) -> tuple[list[int], int]:
        found = [at.get((link.context.trace_id, link.context.span_id)) for link in spans[i].links]
        targets = [target for target in found if target is not None]
        return targets, len(found) - len(targets)

    return _columns(spans, columns, parents, links)


def _has_job_span(spans: Sequence[ReadableSpan]) -> bool:
    return any(span.kind in _JOB_KINDS and recognise(span) is not None for span in spans)


def trace_data(forest: SpanForest) -> dict[str, Any]:
    """The page's data for one test's forest (pass ``JobSpans.forest()``: a test that asserted built it already)."""
    if not forest.nodes:
        return dict(EMPTY)
    spans = [node.span for node in forest.nodes]
    parents = [node.parent.index if node.parent is not None else -1 for node in forest.nodes]

    def links(i: int) -> tuple[list[int], int]:
        node = forest.nodes[i]
        return [target.index for target in node.links], node.unresolved_links

    data = _columns(spans, tuple(zip(*map(_public_fields, spans))), parents, links)
    index = job_index(forest)
    if index.jobs:
        data["rows"] = waterfall_rows(forest, index)
        data["jobs"] = [_job(job) for job in index.jobs]
    return data


def _public_fields(span: ReadableSpan) -> Fields:
    return (
        span.name,
        span.start_time,
        span.end_time,
        span.context,
        span.parent,
        span.kind,
        span.status.status_code,
        dict(span.attributes or {}),
        span.events,
        span.links,
    )


def _columns(
    spans: Sequence[ReadableSpan],
    columns: tuple[tuple[Any, ...], ...],
    parents: list[int],
    links: Callable[[int], tuple[list[int], int]],
) -> dict[str, Any]:
    """The page's columns (see the module's docstring) from the spans' fields (one tuple a field, see
    ``Fields``), their captured parents and a way to a span's captured links. A start of 0 or None counts
    as 0, and a missing end as the start, as in ``SpanForest``."""
    names, starts, ends, contexts, _, kinds, codes, attributes, events, held_links = columns
    count = len(spans)
    if not all(starts):
        starts = tuple(start or 0 for start in starts)
    if not all(ends):
        ends = tuple(end or start for end, start in zip(ends, starts))
    t0 = min(starts)
    try:
        span_ids = list(map("%016x".__mod__, map(_SPAN_ID, contexts)))
        trace_ids = list(map(_TRACE_ID, contexts))
    except TypeError:  # a span without a context: no id, trace 0 (as in SpanForest)
        span_ids = ["" if context is None else f"{context[1]:016x}" for context in contexts]
        trace_ids = [0 if context is None else context[0] for context in contexts]
    traces = list(dict.fromkeys(trace_ids))
    trace_of = {trace_id: n for n, trace_id in enumerate(traces)}
    data = {
        "n": names,
        "s": [(start - t0) // 1000 for start in starts],
        "e": [(end - t0) // 1000 for end in ends],
        "i": span_ids,
        "T": [f"{trace_id:032x}" for trace_id in traces],
        "p": parents,
        "a": attributes,
        "d": (max(ends) - t0) // 1000,
    }
    if len(set(data["s"])) < count:  # starts in the same microsecond: the order by nanoseconds and names
        data["o"] = sorted(range(count), key=list(zip(starts, names, range(count))).__getitem__)
    if len(traces) > 1:  # one trace (most tests): no column
        data["t"] = list(map(trace_of.__getitem__, trace_ids))
    plain = kinds.count(_INTERNAL) == count and codes.count(_UNSET) == count
    if not plain or any(events) or any(held_links):
        special = zip(kinds, codes, events, held_links)
        more = [
            [i, _more(spans[i], t0, *links(i))]
            for i, (kind, code, held_events, held) in enumerate(special)
            if kind is not _INTERNAL or code is not _UNSET or held_events or held
        ]
        more = [entry for entry in more if entry[1]]
        if more:
            data["m"] = more
    return data


def _more(span: ReadableSpan, t0: int, links: list[int], unresolved: int) -> dict[str, Any]:
    """``k`` kind, ``st``/``sd``/``x`` status and exception, ``ev`` events, ``l``/``ul`` links: what a span
    has beyond its name, times, ids and attributes (most spans: nothing)."""
    more: dict[str, Any] = {}
    if span.kind is not _INTERNAL:
        more["k"] = span.kind.name.lower()
    events = span.events
    if span.status.status_code is not _UNSET:
        _add_status(more, span, events)
    if events:
        more["ev"] = [[neutral(e.name), (e.timestamp - t0) // 1000, attribute_rows(e.attributes)] for e in events]
    if links:
        more["l"] = links
    if unresolved:
        more["ul"] = unresolved
    return more


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
    """Every span once, depth first; a job's spans grouped under a header row where the job starts:
    ``[span index, depth]``, or ``[-1 - job index, depth]`` for a job's header (the folded order of
    ``render(format="jobs")``, attempts kept)."""
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
