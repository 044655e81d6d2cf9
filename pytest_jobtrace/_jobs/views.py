"""Jobs as one thing: the publish span, the attempts and the jobs they enqueue, across linked traces.

Which spans belong to which job is decided by the adapters' ``recognise`` functions (one per job
system, see ``adapters.py``); this module only groups what they recognise.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.values import show_name
from pytest_jobtrace._jobs.info import JobSpanInfo
from pytest_jobtrace._jobs.names import job_name_matches, short_name
from pytest_jobtrace.adapters import JobAdapter, recognise

Outcome = Literal["succeeded", "failed", "discarded", "pending"]


@dataclass(eq=False)
class JobView:
    """One job as the captured spans tell it."""

    name: str
    system: str
    id: str | None
    queue: str | None
    publish_node: SpanNode | None
    attempt_nodes: list[SpanNode] = field(default_factory=list)
    attempt_infos: list[JobSpanInfo] = field(default_factory=list)
    republish_nodes: list[SpanNode] = field(default_factory=list)
    enqueued: list[JobView] = field(default_factory=list)
    parent: JobView | None = None
    adapter: JobAdapter | None = field(default=None, repr=False)
    """The adapter that recognised the job's spans (its fixture drains it)."""

    @property
    def publish(self) -> ReadableSpan | None:
        """The span where the job was enqueued (None for a job performed directly)."""
        return self.publish_node.span if self.publish_node else None

    @property
    def attempts(self) -> list[ReadableSpan]:
        """The process spans, one per attempt, in order."""
        return [node.span for node in self.attempt_nodes]

    @property
    def outcome(self) -> Outcome:
        if not self.attempt_infos:
            return "pending"
        last = self.attempt_infos[-1].attempt_outcome
        if last is None or last == "retried":
            return "pending"  # a retry is scheduled and has not run yet
        return last

    @property
    def retry_reasons(self) -> list[str]:
        return [info.retry_reason for info in self.attempt_infos if info.retry_reason]

    @property
    def short_name(self) -> str:
        return short_name(self.name)

    @property
    def site(self) -> SpanNode | None:
        """Where the job is matched: its publish span, or its first attempt when it was never enqueued."""
        return self.publish_node or (self.attempt_nodes[0] if self.attempt_nodes else None)

    def describe_attempts(self) -> str:
        states = [info.attempt_outcome or "?" for info in self.attempt_infos]
        return ", ".join(f"attempt {i} {state}" for i, state in enumerate(states, 1))

    def __repr__(self) -> str:
        return f"<JobView {self.name!r} id={self.id} {len(self.attempt_nodes)} attempts, {self.outcome}>"


name_matches = job_name_matches


class JobIndex:
    """Every job in a forest, with the lookup the matchers need (site span -> job)."""

    def __init__(self, forest: SpanForest) -> None:
        self.forest = forest
        self.info: dict[int, JobSpanInfo] = {}
        self.adapter_of: dict[int, JobAdapter] = {}
        for node in forest.nodes:
            found = recognise(node.span)
            if found is not None:
                self.adapter_of[node.index], self.info[node.index] = found
        self.jobs = self._group()
        self.by_site = {job.site.index: job for job in self.jobs if job.site is not None}
        self._link_enqueued()

    def _group(self) -> list[JobView]:
        jobs: dict[tuple[str, str], JobView] = {}
        ordered: list[JobView] = []
        for node in sorted(self.forest.nodes, key=_start):
            info = self.info.get(node.index)
            if info is None:
                continue
            key = (info.system, info.job_id or f"span:{node.index}")
            job = jobs.get(key)
            if job is None:
                job = jobs[key] = JobView(info.job_name, info.system, info.job_id, info.queue, None)
                job.adapter = self.adapter_of[node.index]
                ordered.append(job)
            _add_span(job, node, info)
        for job in ordered:
            _sort_attempts(job)
        return ordered

    def _link_enqueued(self) -> None:
        owner = {node.index: job for job in self.jobs for node in job.attempt_nodes}
        for job in self.jobs:
            parent = _enclosing_job(job.publish_node, owner) if job.publish_node else None
            if parent is not None and parent is not job:
                job.parent = parent
                parent.enqueued.append(job)

    @functools.cached_property
    def attempt_of(self) -> dict[int, tuple[JobView, int]]:
        """Each attempt span's job and 1-based attempt number."""
        return {node.index: (job, n) for job in self.jobs for n, node in enumerate(job.attempt_nodes, 1)}

    def job_at(self, node: SpanNode) -> JobView | None:
        return self.by_site.get(node.index)

    @functools.cached_property
    def hidden(self) -> frozenset[int]:
        """Spans that the folded rendering shows as part of a job line rather than on their own."""
        nodes = {n.index for job in self.jobs for n in (*job.attempt_nodes, *job.republish_nodes)}
        return frozenset(nodes - set(self.by_site))

    def __iter__(self) -> Iterator[JobView]:
        return iter(self.jobs)


def job_index(forest: SpanForest) -> JobIndex:
    """The forest's jobs, recognised once per forest."""
    return forest.cached("jobs", JobIndex)


def _start(node: SpanNode) -> tuple[int, int]:
    return (node.span.start_time or 0, node.index)


def _add_span(job: JobView, node: SpanNode, info: JobSpanInfo) -> None:
    if info.role == "send":
        if job.publish_node is None:
            job.publish_node = node
        else:
            job.republish_nodes.append(node)  # a retry that re-publishes (Celery workers do)
        return
    job.attempt_nodes.append(node)
    job.attempt_infos.append(info)


def _sort_attempts(job: JobView) -> None:
    pairs = sorted(
        zip(job.attempt_nodes, job.attempt_infos),
        key=lambda pair: (pair[1].attempt or 0, pair[0].span.start_time or 0),
    )
    job.attempt_nodes = [node for node, _ in pairs]
    job.attempt_infos = [info for _, info in pairs]


def _enclosing_job(node: SpanNode, owner: dict[int, JobView]) -> JobView | None:
    current = node.parent
    while current is not None:
        job = owner.get(current.index)
        if job is not None:
            return job
        current = current.parent
    return None


def describe_jobs(jobs: Sequence[JobView]) -> str:
    return ", ".join(f"{job.name!r} ({job.outcome})" for job in jobs) or "none"


def job_label(name: object) -> str:
    """``job 'ProcessOrderJob'``: a job expectation as messages show it, whether named by a string, a
    pattern, the job's class or function, or a Celery task object."""
    return f"job {show_name(written_job_name(name))}"


def written_job_name(name: object) -> object:
    """A job expectation's name as text: a class, function or task object gives its name."""
    if isinstance(name, (str, re.Pattern)):
        return name
    task_name = getattr(name, "name", None)
    if isinstance(task_name, str) and not isinstance(name, type):
        return task_name
    qualname = getattr(name, "__qualname__", None)
    if isinstance(qualname, str) and hasattr(name, "__module__"):
        return qualname.rpartition("<locals>.")[2]
    return name


def folded_children(index: JobIndex, node: SpanNode) -> list[SpanNode]:
    """What shows under a node when jobs are folded: a job's user spans from all its attempts."""
    job = index.job_at(node)
    sources = [node] if job is None else [node, *job.attempt_nodes, *job.republish_nodes]
    # A job performed directly has no send span: its site is its (only) attempt, listed once.
    sources = list({source.index: source for source in sources}.values())
    hidden = index.hidden
    kids: list[SpanNode] = []
    for source in sources:
        # Hidden children (attempts, re-publishes) are shown through their own job's line.
        kids.extend(child for child in source.children if child.index not in hidden)
    return sorted(kids, key=_start)
