"""The virtual clock of one test, shared by every job adapter active in it."""

from __future__ import annotations

import math


class VirtualClock:
    """Seconds of virtual time, 0.0 when the test starts; it only moves forward.

    Adapters order due jobs (countdowns, ETAs, retry waits, scheduled jobs) on it and move it to each job's
    due time as they perform it, so a test that mixes job systems has one notion of time and never sleeps.
    The ``job_clock`` fixture is this test's clock; ``job_clock.advance(60)`` makes later jobs due sooner.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = _check_moment("VirtualClock()", start)

    @property
    def now(self) -> float:
        """The current virtual time in seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0); returns the new time."""
        seconds = _check_moment("VirtualClock.advance()", seconds)
        self._now += seconds
        return self._now

    def advance_to(self, moment: float) -> float:
        """Move the clock to ``moment`` unless it is already past it (a job that was due earlier runs now)."""
        if type(moment) is float and moment <= self._now:  # a drain's hot path: already due, nothing to check
            return self._now
        self._now = max(self._now, _check_moment("VirtualClock.advance_to()", moment))
        return self._now

    def __repr__(self) -> str:
        return f"<VirtualClock now={self._now}>"


def _check_moment(owner: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: expected a finite number of seconds >= 0, got {value!r}")
    return float(value)
