"""Records and errors of the built-in job runtime, and the messages those errors carry."""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Sequence
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

    @property
    def name(self) -> str:
        """The job's full name (module and qualified class name), as ``job()`` and ``drain(only=)`` match it."""
        return f"{self.job_class.__module__}.{self.job_class.__qualname__}"

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


def display_name(job_class: type[Job]) -> str:
    """The class's qualified name as messages show it: ``Shop.ProcessOrderJob``, without ``f.<locals>.``."""
    return job_class.__qualname__.rpartition("<locals>.")[2]


def check_choice(label: str, value: object, choices: Sequence[object]) -> None:
    """Raise a ValueError naming ``label`` and the valid values unless ``value`` is one of ``choices``."""
    if value not in choices:
        valid = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{label} must be one of {valid}; got {value!r}")
