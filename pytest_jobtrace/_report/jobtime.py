"""The job time block of ``--jobtrace-show``: a test's job timeline on its virtual clock, as text.

Every line starts with ``#``, which the text-tree notation reads as a comment: the section pasted whole
into ``assert_span_tree`` still reads as the folded tree above the block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_jobtrace._core.clock import TimelineEvent, VirtualClock, readable_date, readable_duration
from pytest_jobtrace._jobs.runner import due_of
from pytest_jobtrace._report.safe import neutral

SHOWN_EVENTS = 60  # a drain of thousands of jobs keeps its first and last events
SHOWN_PENDING = 10
_ID = 8


def job_time_text(clock: VirtualClock, pending: Sequence[Any] = ()) -> str:
    """The timeline, the jobs still pending with their due times, and the clock at the end; empty when the
    test ran no job on the clock and moved it by no step."""
    events = list(clock.timeline)
    if not events and not pending:
        return ""
    several = len({event.runner for event in events if event.runner}) > 1
    rows = [(_moment(clock, event), _what(clock, event, several)) for event in _kept(events)]
    width = max((len(moment) for moment, _ in rows), default=0)
    lines = [f"# job time on the virtual clock (+0s is {_date(clock.origin)}):"]
    lines += [f"#   {moment:<{width}}  {what}" for moment, what in rows]
    lines.append(f"# clock at the end: {clock.show()}")
    if pending:
        lines.append("# still pending:")
        lines += [f"#   {_pending(clock, item)}" for item in pending[:SHOWN_PENDING]]
    if len(pending) > SHOWN_PENDING:
        lines.append(f"#   ... and {len(pending) - SHOWN_PENDING} more")
    return "\n".join(neutral(line) for line in lines)


def _kept(events: list[TimelineEvent]) -> list[TimelineEvent | None]:
    if len(events) <= SHOWN_EVENTS:
        return list(events)
    half = SHOWN_EVENTS // 2
    return [*events[:half], None, *events[-half:]]


def _moment(clock: VirtualClock, event: TimelineEvent | None) -> str:
    return "" if event is None else clock.show(event.moment)


def _what(clock: VirtualClock, event: TimelineEvent | None, several: bool) -> str:
    if event is None:
        return "..."
    if event.kind == "advanced":
        return f"clock advanced {event.detail} (job_clock.advance)"
    who = f"{event.job} {event.job_id[:_ID]}" + (f" ({event.runner})" if several and event.runner else "")
    if event.kind == "enqueued":
        later = event.due is not None and event.due > event.moment
        return f"{who}  enqueued" + (f", due {clock.show(event.due)}" if later and event.due is not None else "")
    if event.kind == "retry":
        attempt = f"attempt {event.attempt}" if event.attempt is not None else "next attempt"
        if event.due is None:
            return f"{who}  retry: {attempt}"
        wait = readable_duration(max(0.0, event.due - event.moment))
        return f"{who}  retry: {attempt} due {clock.show(event.due)} (wait {wait})"
    if event.kind == "attempt":
        number = f"attempt {event.attempt}" if event.attempt is not None else "attempt"
        return f"{who}  {number} {event.outcome}" + (f": {event.detail}" if event.detail else "")
    return f"{who}  {event.kind} {event.detail}".rstrip()


def _pending(clock: VirtualClock, item: Any) -> str:
    try:
        shown = str(item.describe())
    except Exception:  # a report must not fail on a job it cannot describe
        shown = type(item).__name__
    due = due_of(item)
    return f"{shown}  due {'now' if due is None or due <= clock.now else clock.show(due)}"


def _date(epoch: float) -> str:
    return readable_date(epoch) or f"epoch {epoch}"
