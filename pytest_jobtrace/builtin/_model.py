"""Records and errors of the built-in job runtime, and the messages those errors carry."""

from __future__ import annotations

import reprlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from pytest_jobtrace.builtin._job import Job

Propagation = Literal["child", "link", "none"]
Mode = Literal["queue", "inline"]
SpanNaming = Literal["queue", "job_class"]
Outcome = Literal["succeeded", "failed", "discarded"]
Wait: TypeAlias = "float | str | Callable[[int], float]"

PROPAGATIONS: tuple[Propagation, ...] = ("child", "link", "none")
MODES: tuple[Mode, ...] = ("queue", "inline")
SPAN_NAMINGS: tuple[SpanNaming, ...] = ("queue", "job_class")
_SHORT_ID = 8
_arg_repr = reprlib.Repr()
_arg_repr.maxstring = _arg_repr.maxother = 40


@dataclass(frozen=True)
class JobHandle:
    """An enqueued job, as returned by ``perform_later``. ``args`` and ``kwargs`` are after the JSON round trip."""

    job_id: str
    job_class: type[Job]
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def describe(self) -> str:
        """``ProcessOrderJob(42, note='x')``: how messages name this job."""
        parts = [_arg_repr.repr(a) for a in self.args]
        parts += [f"{k}={_arg_repr.repr(v)}" for k, v in self.kwargs.items()]
        return f"{display_name(self.job_class)}({', '.join(parts)})"


@dataclass(frozen=True)
class PendingJob(JobHandle):
    """A job waiting in a runtime: its next ``attempt`` becomes due at ``due`` on the virtual clock."""

    due: float
    attempt: int
    enqueued_by: str | None


@dataclass(frozen=True)
class JobRun(JobHandle):
    """A job that reached its final outcome; ``exception`` is the one raised by its last attempt."""

    attempts: int
    outcome: Outcome
    exception: BaseException | None
    enqueued_by: str | None


class JobArgumentError(TypeError):
    """An argument of ``perform_later`` cannot cross the queue's JSON serialisation boundary."""


class JobFailedError(AssertionError):
    """Jobs failed for good; ``runs`` holds their records. The first failure's exception is the ``__cause__``."""

    def __init__(self, message: str, runs: Sequence[JobRun]) -> None:
        super().__init__(message)
        self.runs = list(runs)


class JobChainError(RuntimeError):
    """A drain (or an inline enqueue) kept performing jobs beyond its bound: a chain of jobs does not end."""


def display_name(job_class: type[Job]) -> str:
    """The class's qualified name as messages show it: ``Shop.ProcessOrderJob``, without ``f.<locals>.``."""
    return job_class.__qualname__.rpartition("<locals>.")[2]


def check_choice(label: str, value: object, choices: Sequence[object]) -> None:
    """Raise a ValueError naming ``label`` and the valid values unless ``value`` is one of ``choices``."""
    if value not in choices:
        valid = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{label} must be one of {valid}; got {value!r}")


def failures_message(failed: Sequence[JobRun], where: str, remedy: str) -> str:
    """The text of a JobFailedError: every failed job with its attempts and final exception."""
    lines = [f"{where}: {len(failed)} job{_plural(len(failed))} failed:"]
    for run in failed:
        exc = run.exception
        reason = f"{type(exc).__qualname__}: {exc}" if exc is not None else "no exception"
        attempts = f"{run.attempts} attempt{_plural(run.attempts)}"
        lines.append(f"  {run.describe()} id={run.job_id} failed after {attempts}: {reason}")
    lines.append(f"Their spans were recorded. To let jobs fail without raising, {remedy}, or mark the test")
    lines.append("@pytest.mark.jobtrace(expect_failures=True).")
    return "\n".join(lines)


def chain_message(
    chain: Sequence[tuple[str, str]],
    chain_length: int,
    performed: Iterable[str],
    reason: str,
    hint: str,
    next_attempt: tuple[int, int] = (1, 1),
) -> str:
    """The text of a JobChainError; ``chain`` is (class name, job id) pairs, oldest first, ending at the next job.

    ``next_attempt`` is the next job's (attempt number, attempts allowed).
    """
    counts = Counter(performed)
    lines = [f"{reason}; {_what_runs_on(chain, chain_length, next_attempt)}:"]
    if chain_length > len(chain):
        lines.append(f"  ... {chain_length - len(chain)} earlier job(s) of the chain")
    for index, (name, job_id) in enumerate(chain):
        arrow = "   " if index == 0 and chain_length == len(chain) else "-> "
        lines.append(f"  {arrow}{name}(id={job_id[:_SHORT_ID]})")
    lines[-1] += "  <- next to run"
    lines.append("Attempts performed: " + ", ".join(f"{name} x{n}" for name, n in counts.most_common()))
    lines.append(hint)
    return "\n".join(lines)


def _what_runs_on(chain: Sequence[tuple[str, str]], chain_length: int, next_attempt: tuple[int, int]) -> str:
    if chain_length > 1:
        return "this chain of jobs does not end (each enqueued by the one before it)"
    attempt, allowed = next_attempt
    if attempt > 1:  # one job retried many times is not a chain
        return f"{chain[0][0]} is being retried again and again (attempt {attempt} of {allowed} is next)"
    return "more jobs are pending (not enqueued by other jobs: not a chain)"


def _plural(count: int) -> str:
    return "" if count == 1 else "s"
