"""A test's job time for the HTML report: its job timeline on the virtual clock, as the page's data.

The clock's timeline (``VirtualClock.timeline``: enqueues with due times, attempts with outcomes, retries
with their due times, ``advance()`` steps) is written with the times already readable (``+1h``,
``2030-01-01T00:00:00Z``, from :func:`readable_time`), so the page and the terminal say the same; the
moment in seconds comes along for the page's lanes. Built on the worker when the test ends, only for a
test whose clock has something on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_jobtrace._core.clock import VirtualClock, readable_date, readable_duration
from pytest_jobtrace._report.safe import neutral

SHOWN_EVENTS = 500  # a drain of thousands of jobs keeps its first and last events
SHOWN_PENDING = 50
_MAX_TEXT = 300


def job_time_data(clock: VirtualClock, pending: Sequence[Any] = ()) -> dict[str, Any] | None:
    """``{"o": origin date, "end": clock at the end, "ev": [event...], "pe": [[job, due]...]}``; None when the
    test ran no job on the clock and moved it by no step.

    An event is ``[at, kind, job, job id, attempt, due, wait, outcome, detail, runner, seconds]``: ``at``,
    ``due`` readable times, ``wait`` the time from ``at`` to ``due`` where it is later (a countdown, a retry
    wait), ``seconds`` the moment as a number. A ``null`` event stands for those left out of a long timeline.
    """
    events = list(getattr(clock, "timeline", ()))
    if not events and not pending:
        return None
    if len(events) > SHOWN_EVENTS:
        half = SHOWN_EVENTS // 2
        kept: list[Any] = [*events[:half], None, *events[-half:]]
    else:
        kept = events
    return {
        "o": _date(clock.origin),
        "end": clock.show(),
        "ev": [None if event is None else _event(clock, event) for event in kept],
        "left": max(0, len(events) - SHOWN_EVENTS),
        "pe": [_pending(clock, item) for item in pending[:SHOWN_PENDING]],
        "pmore": max(0, len(pending) - SHOWN_PENDING),
    }


def _event(clock: VirtualClock, event: Any) -> list[Any]:
    moment, due = float(event.moment), event.due
    later = due is not None and due > moment
    return [
        clock.show(moment),
        _text(event.kind),
        _text(event.job),
        _text(event.job_id),
        event.attempt,
        clock.show(due) if due is not None else "",
        readable_duration(due - moment) if later else "",
        _text(event.outcome),
        _text(event.detail),
        _text(event.runner),
        moment,
    ]


def _pending(clock: VirtualClock, item: Any) -> list[str]:
    try:
        shown = str(item.describe())
    except Exception:  # a report must not fail on a job it cannot describe
        shown = type(item).__name__
    due: Any = getattr(item, "due", None)
    later = isinstance(due, (int, float)) and not isinstance(due, bool) and due > clock.now
    return [_text(shown), clock.show(float(due)) if later else "now"]


def _text(value: object) -> str:
    text = neutral(str(value)) if value is not None else ""
    return text if len(text) <= _MAX_TEXT else f"{text[:_MAX_TEXT]}... ({len(text) - _MAX_TEXT} more characters)"


def _date(epoch: float) -> str:
    return readable_date(epoch) or f"epoch {epoch}"
