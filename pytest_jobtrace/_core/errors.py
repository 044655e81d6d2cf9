"""The errors every job adapter raises, and the messages they carry, whatever the job system."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from pytest_jobtrace._core.exceptions import exception_text
from pytest_jobtrace._core.notation import escape_unprintable
from pytest_jobtrace._core.values import clip

_SHORT_ID = 8


class FailedJob(Protocol):
    """A job that failed for good, as any adapter records it."""

    @property
    def job_id(self) -> str: ...

    @property
    def attempts(self) -> int: ...

    @property
    def exception(self) -> BaseException | None: ...

    def describe(self) -> str: ...


class JobFailedError(AssertionError):
    """Jobs failed for good during a drain; ``runs`` holds the adapter's records of them.

    The first failure's exception is the ``__cause__``. Every adapter raises this one class, so a test
    that mixes job systems catches one error.
    """

    def __init__(self, message: str, runs: Sequence[object]) -> None:
        super().__init__(message)
        self.runs = list(runs)


class JobChainError(RuntimeError):
    """A drain (or an inline enqueue) kept performing jobs beyond its bound: a chain of jobs does not end."""


for _public in (JobFailedError, JobChainError):
    _public.__module__ = "pytest_jobtrace"
del _public


_MAX_FAILED = 20  # failed jobs listed by name
_MAX_LINE = 500  # characters of one of them


def failures_message(
    failed: Sequence[FailedJob], where: str, remedy: str, times: Mapping[str, Sequence[str]] | None = None
) -> str:
    """The text of a JobFailedError: every failed job with its attempts and final exception.

    ``where`` names the call that raised (``"celery_jobs.drain()"``); ``remedy`` says how to let jobs fail
    without raising on that call (``"pass drain(expect_failures=True)"``). ``times`` gives, by job id, the
    virtual times of a job's attempts as they read (``["+0s", "+1h"]``), shown where the clock had moved.
    """
    lines = [f"{where}: {len(failed)} job{_plural(len(failed))} failed:"]
    for run in failed[:_MAX_FAILED]:
        exc = run.exception
        reason = f"{type(exc).__qualname__}: {exception_text(exc)}" if exc is not None else "no exception"
        attempts = f"{run.attempts} attempt{_plural(run.attempts)}" + _at((times or {}).get(run.job_id, ()))
        line = f"  {run.describe()} id={run.job_id} failed after {attempts}: {reason}"
        lines.append(clip(escape_unprintable(line), _MAX_LINE))
    if len(failed) > _MAX_FAILED:  # bounded: thousands of failures would flood the terminal
        lines.append(f"  ... and {len(failed) - _MAX_FAILED} more failed jobs (the fixture's .failed lists them all)")
    lines.append(f"Their spans were recorded. To let jobs fail without raising, {remedy}, or mark the test")
    lines.append("@pytest.mark.jobtrace(expect_failures=True).")
    return "\n".join(lines)


def _at(times: Sequence[str]) -> str:
    """`` at +0s, +1h, +2h``: when the attempts ran, unless they all ran at the test's start."""
    if all(time in ("+0s", "") for time in times):
        return ""
    shown = list(times) if len(times) <= _MAX_TIMES else [*times[:3], "...", *times[-2:]]
    return " at " + ", ".join(shown)


_MAX_TIMES = 6


def chain_message(
    chain: Sequence[tuple[str, str]],
    chain_length: int,
    performed: Iterable[str],
    reason: str,
    hint: str,
    next_attempt: tuple[int, int] = (1, 1),
) -> str:
    """The text of a JobChainError; ``chain`` is (job name, job id) pairs, oldest first, ending at the next job.

    ``next_attempt`` is the next job's (attempt number, attempts allowed; 0 when the job system does not say).
    """
    lines = [f"{reason}; {_what_runs_on(chain, chain_length, next_attempt)}:"]
    if chain_length > len(chain):
        lines.append(f"  ... {chain_length - len(chain)} earlier job(s) of the chain")
    for index, (name, job_id) in enumerate(chain):
        arrow = "   " if index == 0 and chain_length == len(chain) else "-> "
        lines.append(f"  {arrow}{name}(id={job_id[:_SHORT_ID]})")
    lines[-1] += "  <- next to run"
    lines.append(attempts_performed(performed))
    lines.append(hint)
    return "\n".join(lines)


def attempts_performed(performed: Iterable[str]) -> str:
    """``Attempts performed: charge x3, refund x1``: how many attempts each job made, most first."""
    return "Attempts performed: " + ", ".join(f"{name} x{n}" for name, n in Counter(performed).most_common())


def _what_runs_on(chain: Sequence[tuple[str, str]], chain_length: int, next_attempt: tuple[int, int]) -> str:
    if chain_length > 1:
        return "this chain of jobs does not end (each enqueued by the one before it)"
    attempt, allowed = next_attempt
    if attempt > 1:  # one job retried many times is not a chain
        of = f" of {allowed}" if allowed >= attempt else ""  # 0: the job system does not say
        return f"{chain[0][0]} is being retried again and again (attempt {attempt}{of} is next)"
    return "more jobs are pending (not enqueued by other jobs: not a chain)"


def _plural(count: int) -> str:
    return "" if count == 1 else "s"
