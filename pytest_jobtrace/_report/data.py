"""A test's spans as plain, JSON-ready data for the HTML report (small keys: a session holds many).

Times are microseconds from the test's first span start. Rows are the waterfall in display order: a
span's row is ``[span index, depth]``; a job's header row is ``[-1 - job index, depth]``, with the job's
send span and every attempt under it (the folded order of ``render(format="jobs")``, attempts kept).
All text is free of control characters.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import Attributes

from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._jobs.views import JobIndex, JobView, job_index
from pytest_jobtrace._report.safe import neutral

Row = list[int]


def trace_data(forest: SpanForest) -> dict[str, Any]:
    """The page's data for one test's forest (pass ``JobSpans.forest()``: a test that asserted built it already)."""
    if not forest.nodes:
        return {"spans": [], "rows": [], "jobs": [], "traces": [], "d": 0}
    t0 = min(node.span.start_time or 0 for node in forest.nodes)
    end = max(node.span.end_time or node.span.start_time or 0 for node in forest.nodes)
    trace_of = {node.index: n for n, roots in enumerate(forest.traces) for root in roots for node in root.walk()}
    index = job_index(forest)
    return {
        "spans": [_span(node, t0, trace_of[node.index]) for node in forest.nodes],
        "rows": waterfall_rows(forest, index),
        "jobs": [_job(job) for job in index.jobs],
        "traces": [f"{_trace_id(roots[0]):032x}" for roots in forest.traces],
        "d": (end - t0) / 1000,
    }


def _span(node: SpanNode, t0: int, trace: int) -> dict[str, Any]:
    span = node.span
    start = span.start_time or t0
    data: dict[str, Any] = {
        "n": neutral(span.name),
        "s": (start - t0) / 1000,
        "e": ((span.end_time or start) - t0) / 1000,
        "t": trace,
        "id": f"{span.context.span_id:016x}" if span.context else "",
    }
    if node.kind != SpanKind.INTERNAL:
        data["k"] = node.kind.name.lower()
    if node.parent is not None:
        data["p"] = node.parent.index
    _add_status(data, span)
    if span.attributes:
        data["a"] = attribute_rows(span.attributes)
    events = span.events  # the SDK copies them on every access
    if events:
        data["ev"] = [[neutral(e.name), (e.timestamp - t0) / 1000, attribute_rows(e.attributes)] for e in events]
    if node.links:
        data["l"] = [target.index for target in node.links]
    if node.unresolved_links:
        data["ul"] = node.unresolved_links
    return data


def _add_status(data: dict[str, Any], span: ReadableSpan) -> None:
    code = span.status.status_code
    if code == StatusCode.UNSET:
        return
    data["st"] = code.name
    if span.status.description:
        data["sd"] = neutral(span.status.description)
    exception = next((e for e in span.events if e.name == "exception"), None)
    if code == StatusCode.ERROR and exception is not None and exception.attributes:
        kind, message = exception.attributes.get("exception.type"), exception.attributes.get("exception.message")
        data["x"] = neutral(f"{kind}: {message}" if message else str(kind))


def attribute_rows(attributes: Attributes) -> list[list[str]]:
    """``[key, value as text]`` pairs; strings as they are, other values as JSON."""
    return [[neutral(key), _text(value)] for key, value in dict(attributes or {}).items()]


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
