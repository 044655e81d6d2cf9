"""The virtual clock: one per test, shared by every adapter, only forward, and loud about bad input."""

from __future__ import annotations

import datetime
import math
import time

import pytest

from pytest_jobtrace import VirtualClock
from pytest_jobtrace._core.clock import DATE_AFTER, readable_time


def test_it_moves_forward_only() -> None:
    clock = VirtualClock()
    assert clock.now == 0.0
    assert clock.advance_to(5) == 5.0
    assert clock.advance_to(3.0) == 5.0  # a job that was due earlier runs now; time does not go back
    assert clock.advance(2) == 7.0
    assert repr(clock) == "<VirtualClock now=7.0 (+7s)>"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1, "5", True, None])
def test_bad_moments_are_refused(bad: object) -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match=r"VirtualClock.advance\(\): expected a finite number of seconds >= 0, got"):
        clock.advance(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"VirtualClock.advance_to\(\): expected a finite number of seconds >= 0"):
        clock.advance_to(bad)  # type: ignore[arg-type]
    assert clock.now == 0.0


def test_each_test_has_its_own_clock(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(2))
        def test_clock(job_clock, builtin_jobs, i):
            assert job_clock.now == 0.0 and builtin_jobs.clock is job_clock
            job_clock.advance(10)
            assert builtin_jobs.now == 10.0
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "+0s"),
        (0.25, "+0.25s"),
        (0.0004, "+0s"),
        (0.001, "+0.001s"),
        (1.5, "+1.5s"),
        (10, "+10s"),
        (59.9999, "+60s"),
        (60, "+1m"),
        (90, "+1m30s"),
        (3600, "+1h"),
        (3605, "+1h0m5s"),
        (5400, "+1h30m"),
        (86400 + 3 * 3600, "+1d3h"),
        (29 * 86400, "+29d"),
        (400 * 86400, "+400d"),  # no origin: no date
    ],
)
def test_readable_time_reads_as_a_duration(seconds: float, shown: str) -> None:
    assert readable_time(seconds) == shown


def test_readable_time_is_a_date_from_a_month_away_when_the_origin_is_known() -> None:
    origin = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc).timestamp()
    far = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc).timestamp() - origin
    assert readable_time(far, origin) == "2030-01-01T00:00:00Z"
    assert readable_time(far - 0.4, origin) == "2030-01-01T00:00:00Z"  # to the second
    assert readable_time(29 * 86400, origin) == "+29d"  # under a month: still an offset
    assert readable_time(1e300, origin).startswith("+")  # beyond year 9999: no crash


def test_the_clock_shows_its_moments_against_its_origin() -> None:
    clock = VirtualClock(origin=0.0)
    assert clock.show() == "+0s"
    clock.advance(3600)
    assert clock.show() == "+1h"
    assert clock.show(DATE_AFTER) == "1970-01-31T00:00:00Z"
    assert abs(VirtualClock().origin - time.time()) < 60
