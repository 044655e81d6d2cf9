"""``job()``: an expected node that matches a whole job at its enqueue site."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_jobtrace._core.diagnose import where
from pytest_jobtrace._core.expect import Expected, attributes_diff, show_attrs
from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.parse import DICT_BUILDERS, check_count, expected_list
from pytest_jobtrace._core.values import show, show_name, value_matches
from pytest_jobtrace._jobs.views import JobView, describe_jobs, job_index, job_label, name_matches

# Errors raised here are about the caller's input: pytest shows the caller's line, not these frames.
__tracebackhide__ = True

OUTCOMES = ("succeeded", "failed", "discarded", "pending")
JOB_KEYS = ("job", "queue", "attempts", "outcome", "attributes", "linked", "children", "count")


@dataclass(frozen=True, eq=False)
class ExpectedJob(Expected):
    """An expected job; build it with :func:`pytest_jobtrace.job`."""

    name: object
    queue: object = None
    attempts: int | None = None
    outcome: str | None = None
    attributes: Mapping[str, object] | None = None
    linked: bool | None = None
    children: tuple[Expected, ...] = ()
    count: int | None = None
    noun = "job"

    def label(self) -> str:
        return job_label(self.name)

    def describe(self) -> str:
        return self.render_line()

    def absent(self, forest: SpanForest) -> str | None:
        jobs = job_index(forest).jobs
        if any(name_matches(self.name, j.name) for j in jobs):
            return None
        return f"no job {show_name(self.name)} was enqueued; jobs captured: {describe_jobs(jobs)}"

    def covered_roots(self, forest: SpanForest) -> set[int]:
        jobs = [j for j in job_index(forest).jobs if name_matches(self.name, j.name)]
        nodes = [n for j in jobs for n in (*j.attempt_nodes, *j.republish_nodes) if n is not j.site]
        return {n.index for n in nodes if n.parent is None}

    def whereabouts(self, forest: SpanForest) -> str | None:
        sites = [j.site for j in job_index(forest).jobs if name_matches(self.name, j.name) and j.site]
        if not sites:
            return None
        places = " and ".join(f"under {where(s.parent)}" if s.parent else "as a trace root" for s in sites[:3])
        return f"{self.label()} was enqueued {places}"

    def same_name(self, node: SpanNode) -> bool:
        job = job_index(node.forest).job_at(node)
        return job is not None and name_matches(self.name, job.name)

    def child_nodes(self, node: SpanNode) -> Sequence[SpanNode]:
        return self.children_owner(node).children if self._last_attempt(node) else ()

    def children_owner(self, node: SpanNode) -> SpanNode:
        return self._last_attempt(node) or node

    def _last_attempt(self, node: SpanNode) -> SpanNode | None:
        job = job_index(node.forest).job_at(node)
        return job.attempt_nodes[-1] if job is not None and job.attempt_nodes else None

    def local_mismatch(self, node: SpanNode) -> str | None:
        job = job_index(node.forest).job_at(node)
        if job is None:
            return f"expected {self.label()}, but {node.name!r} is not where a job was enqueued"
        if not name_matches(self.name, job.name):
            return f"expected {self.label()}, got job {job.name!r}"
        prefix = f"job {job.short_name!r}: "
        for check in (self._queue_diff, self._processed_diff, self._attempts_diff, self._outcome_diff):
            message = check(job)
            if message is not None:
                return message if message.startswith("job ") else prefix + message
        return self._linked_diff(job, prefix) or self._attributes_diff(job, prefix)

    def _queue_diff(self, job: JobView) -> str | None:
        if self.queue is None or value_matches(self.queue, job.queue):
            return None
        return f"expected queue {show_name(self.queue)}, got {job.queue!r}"

    def _processed_diff(self, job: JobView) -> str | None:
        if job.attempt_nodes or self.outcome == "pending" or self.attempts == 0:
            return None
        site = job.publish_node
        under = site.parent.name if site is not None and site.parent is not None else None
        where = f" under {under!r}" if under else ""
        return f"job {job.short_name!r} was enqueued{where} but never processed"

    def _attempts_diff(self, job: JobView) -> str | None:
        found = len(job.attempt_nodes)
        if self.attempts is None or found == self.attempts:
            return None
        detail = f" ({job.describe_attempts()})" if found else ""
        return f"expected {_plural(self.attempts, 'attempt')}, found {found}{detail}"

    def _outcome_diff(self, job: JobView) -> str | None:
        if self.outcome is None or job.outcome == self.outcome:
            return None
        detail = f" ({job.describe_attempts()})" if job.attempt_nodes else ""
        return f"expected outcome {self.outcome!r}, got {job.outcome!r}{detail}"

    def _linked_diff(self, job: JobView, prefix: str) -> str | None:
        if self.linked is None:
            return None
        # With no enqueue or no attempt there is no relation to check: that is a mismatch, not a pass.
        asked = f"linked={self.linked}"
        if job.publish_node is None:
            return f"{prefix}{asked} needs an enqueue to relate to, but the job was performed without one"
        if not job.attempt_nodes:
            return f"{prefix}{asked} needs an attempt to check, but the job was never processed"
        wanted: Relation = "linked" if self.linked else "child"
        for number, attempt in enumerate(job.attempt_nodes, 1):
            relation = _relation(attempt, job)
            if relation != wanted:
                return prefix + _relation_message(wanted, number, relation, attempt)
        return None

    def _attributes_diff(self, job: JobView, prefix: str) -> str | None:
        if not self.attributes:
            return None
        node = job.attempt_nodes[-1] if job.attempt_nodes else job.site
        assert node is not None
        message = attributes_diff(self.attributes, node.span.attributes or {})
        return None if message is None else f"{prefix}{message} (on {node.name!r})"

    def render_line(self) -> str:
        notes = [f"{k} {show(v)}" for k, v in (("queue", self.queue), ("outcome", self.outcome)) if v is not None]
        if self.attempts is not None:
            notes.append(_plural(self.attempts, "attempt"))
        if self.linked is not None:
            notes.append("linked" if self.linked else "not linked")
        if self.count is not None:
            notes.append(f"x{self.count}")
        line = f"job {show_name(self.name)}" + (f" [{', '.join(notes)}]" if notes else "")
        if self.attributes:
            line += f" {show_attrs(self.attributes)}"
        return line


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


Relation = Literal["child", "linked", "detached"]


def _relation(attempt: SpanNode, job: JobView) -> Relation:
    """How an attempt hangs off its enqueue: below it in the same trace, in a trace linked to it, or neither.

    A retry may be re-published (Celery workers do), so a link to any of the job's publish spans counts.
    """
    publish = job.publish_node
    if publish is not None and any(node is publish for node in attempt.path()):
        return "child"
    sends = {node.index for node in (publish, *job.republish_nodes) if node is not None}
    return "linked" if any(target.index in sends for target in attempt.links) else "detached"


_RELATIONS = {
    "child": "a child of {parent} in the enqueuing trace",
    "linked": "in a new trace linked to the enqueue",
    "detached": "in a new trace with no link to the enqueue",
}


def _relation_message(wanted: Relation, number: int, found: Relation, attempt: SpanNode) -> str:
    parent = repr(attempt.parent.name) if attempt.parent else "nothing"
    got = _RELATIONS[found].format(parent=parent)
    if wanted == "linked":
        return f"expected attempt {number} in its own trace linked to the enqueue (linked=True), but it is {got}"
    return f"expected attempt {number} to continue the enqueuing trace (linked=False), but it is {got}"


def job(
    name: object,
    *,
    queue: object = None,
    attempts: int | None = None,
    outcome: str | None = None,
    attributes: Mapping[str, object] | None = None,
    linked: bool | None = None,
    children: object = (),
    count: int | None = None,
) -> ExpectedJob:
    """An expected job, matched at its enqueue site (its publish span) with all its attempts.

    ``name`` matches the full job name, its last dotted component, or a pattern. ``children`` are
    matched under the last attempt's process span. ``count=N`` stands for exactly N sibling jobs.
    """
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome={outcome!r}: use one of {', '.join(OUTCOMES)}")
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0):
        raise ValueError(f"attempts={attempts!r}: expected a whole number of attempts, 0 or more")
    if linked is not None and not isinstance(linked, bool):
        raise TypeError(f"linked={linked!r}: expected True, False or None")
    return ExpectedJob(
        name=name,
        queue=queue,
        attempts=attempts,
        outcome=outcome,
        attributes=None if attributes is None else dict(attributes),
        linked=linked,
        children=tuple(expected_list(children)),
        count=check_count(count),
    )


def _job_from_dict(data: Mapping[str, Any]) -> Expected:
    unknown = [key for key in data if key not in JOB_KEYS]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise ValueError(f"unknown key(s) {names} in an expected job; valid keys: {', '.join(JOB_KEYS)}")
    values = dict(data)
    return job(values.pop("job"), **values)


DICT_BUILDERS["job"] = _job_from_dict
