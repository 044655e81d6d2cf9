"""The virtual clock: one per test, shared by every adapter, only forward, and loud about bad input."""

from __future__ import annotations

import math

import pytest

from pytest_jobtrace import VirtualClock


def test_it_moves_forward_only() -> None:
    clock = VirtualClock()
    assert clock.now == 0.0
    assert clock.advance_to(5) == 5.0
    assert clock.advance_to(3.0) == 5.0  # a job that was due earlier runs now; time does not go back
    assert clock.advance(2) == 7.0
    assert repr(clock) == "<VirtualClock now=7.0>"


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
