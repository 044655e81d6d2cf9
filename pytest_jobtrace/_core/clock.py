"""The virtual clock of one test, shared by every job adapter active in it."""

from __future__ import annotations

import datetime
import math
import time
from typing import Any, NamedTuple


class TimelineEvent(NamedTuple):
    """One moment of job time on a test's virtual clock: plain data, the same for every job system.

    ``kind`` is ``"enqueued"`` (the job entered a queue; ``due`` says when it may run), ``"retry"`` (the
    job was queued again for ``attempt``, due at ``due``: ``due - moment`` is the retry wait),
    ``"attempt"`` (``attempt`` ran at ``moment`` and ended with ``outcome``; ``detail`` is its exception,
    ``"ValueError: boom"``) or ``"advanced"`` (``job_clock.advance()`` moved the clock from ``moment``
    to ``due``; ``detail`` is the step, ``"1h"``). Moments and due times are virtual seconds;
    :func:`readable_time` shows them.
    """

    moment: float
    kind: str
    job: str = ""
    """How messages name the job (``charge``); empty for ``"advanced"``."""
    job_id: str = ""
    attempt: int | None = None
    due: float | None = None
    outcome: str = ""
    """For an attempt: ``succeeded``, ``failed``, ``retried``, or the job system's own word (``revoked``)."""
    detail: str = ""
    runner: str = ""
    """The runner that noted it (``celery_jobs``): a test may run several job systems on one clock."""

    def as_data(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (the HTML report's form)."""
        return self._asdict()


class VirtualClock:
    """Seconds of virtual time, 0.0 when the test starts; it only moves forward.

    Adapters order due jobs (countdowns, ETAs, retry waits, scheduled jobs) on it and move it to each job's
    due time as they perform it, so a test that mixes job systems has one notion of time and never sleeps.
    The ``job_clock`` fixture is this test's clock; ``job_clock.advance(60)`` makes later jobs due sooner.
    """

    __slots__ = ("_now", "origin", "timeline")

    def __init__(self, start: float = 0.0, *, origin: float | None = None) -> None:
        self._now = _check_moment("VirtualClock()", start)
        #: The wall-clock time (epoch seconds) at virtual 0: what a far moment is shown against as a date.
        self.origin = time.time() if origin is None else origin
        #: The job time of the test, in the order it happened: every job runner on this clock notes its
        #: enqueues, retries and attempts here (:class:`TimelineEvent`), and ``advance()`` its moves.
        self.timeline: list[TimelineEvent] = []

    @property
    def now(self) -> float:
        """The current virtual time in seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0); returns the new time."""
        seconds = _check_moment("VirtualClock.advance()", seconds)
        moved = self._now + seconds
        self.timeline.append(TimelineEvent(self._now, "advanced", due=moved, detail=readable_duration(seconds)))
        self._now = moved
        return self._now

    def advance_to(self, moment: float) -> float:
        """Move the clock to ``moment`` unless it is already past it (a job that was due earlier runs now)."""
        if type(moment) is float and moment <= self._now:  # a drain's hot path: already due, nothing to check
            return self._now
        self._now = max(self._now, _check_moment("VirtualClock.advance_to()", moment))
        return self._now

    def show(self, moment: float | None = None) -> str:
        """``moment`` (default: now) as a person reads it: ``+1h30m``, or a date when a month or more away."""
        return readable_time(self._now if moment is None else moment, self.origin)

    def __repr__(self) -> str:
        return f"<VirtualClock now={self._now} ({self.show()})>"


_UNITS = (("d", 86400), ("h", 3600), ("m", 60))
DATE_AFTER = 30 * 86400.0
"""Moments this far (30 days) or further from virtual 0 read as dates (an ``eta`` in 2030), not durations."""


def readable_time(seconds: float, origin: float | None = None) -> str:
    """A moment on a virtual clock as a person reads it at once, the same in every report and message.

    ``+0s``, ``+0.25s``, ``+10s``, ``+2m30s``, ``+1h``, ``+1h0m5s`` are offsets from virtual 0 (the test's
    start); from :data:`DATE_AFTER` on, with the wall-clock ``origin`` of virtual 0 known, the moment is an
    ISO 8601 date in UTC to the second, ``2030-01-01T00:00:00Z``, and without it whole days, ``+400d``.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds >= DATE_AFTER and origin is not None:
        date = readable_date(origin + seconds)
        if date is not None:
            return date
    return ("-" if seconds < 0 else "+") + readable_duration(abs(seconds))


def readable_date(epoch: float) -> str | None:
    """A wall-clock moment as an ISO 8601 date in UTC to the second (``2030-01-01T00:00:00Z``); None when it
    cannot be one (beyond year 9999)."""
    try:
        moment = datetime.datetime.fromtimestamp(round(epoch), tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def readable_duration(seconds: float) -> str:
    """A span of time in its largest units: ``0s``, ``0.25s``, ``90s`` reads ``1m30s``, ``3600`` reads ``1h``.

    Below a minute it keeps up to three decimals (``1.5s``, ``0.001s``); from a minute on it is whole seconds,
    leaving out trailing zero units (``1h``, ``1h0m5s``, ``2d3h``).
    """
    if not math.isfinite(seconds):
        return f"{seconds}s"
    if seconds < 60:
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return f"{text if text not in ('', '-0') else '0'}s"
    left = round(seconds)
    parts: list[str] = []
    for unit, size in _UNITS:
        count, left = divmod(left, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    parts.append(f"{left}s")
    while len(parts) > 1 and parts[-1][0] == "0":  # drop trailing zero units: 1h0m0s reads 1h
        parts.pop()
    return "".join(parts)


def _check_moment(owner: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: expected a finite number of seconds >= 0, got {value!r}")
    return float(value)
