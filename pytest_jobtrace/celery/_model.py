"""Records of ``celery_jobs``: a task message waiting to run, one attempt, a task that reached its end."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_jobtrace.celery._worker import Verdict

FINAL_VERDICTS: frozenset[Verdict] = frozenset({"succeeded", "failed", "ignored", "rejected", "revoked"})


@dataclass(frozen=True)
class PendingTask:
    """A published task message that has not run yet; it becomes due at ``due`` on the virtual clock."""

    name: str
    task_id: str
    attempt: int
    due: float
    argsrepr: str
    kwargsrepr: str

    @property
    def job_id(self) -> str:
        return self.task_id

    def describe(self) -> str:
        """``shop.tasks.process_order(42)``: how messages name this task."""
        return describe_call(self.name, self.argsrepr, self.kwargsrepr)


@dataclass(frozen=True)
class TaskRun:
    """A task that reached its end: ``verdict`` of its last attempt and the exception that attempt raised."""

    name: str
    task_id: str
    attempts: int
    verdict: Verdict
    exception: BaseException | None
    argsrepr: str
    kwargsrepr: str

    @property
    def job_id(self) -> str:
        return self.task_id

    @property
    def final(self) -> bool:
        return self.verdict in FINAL_VERDICTS

    def describe(self) -> str:
        return describe_call(self.name, self.argsrepr, self.kwargsrepr)


def describe_call(name: str, argsrepr: str, kwargsrepr: str) -> str:
    args = argsrepr.strip()
    if args[:1] in "([" and args[-1:] in ")]":
        args = args[1:-1].rstrip().rstrip(",")
    kwargs = kwargsrepr.strip()
    if kwargs not in ("", "{}"):
        pairs = kwargs[1:-1]
        args = f"{args}, **{{{pairs}}}" if args else f"**{{{pairs}}}"
    return f"{name}({args})"
