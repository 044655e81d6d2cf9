"""Jobs for the fault tests (tests/test_live_faults.py), importable by the live worker processes.

A job that is to be killed says it started by writing its process id to a file (the test kills that
process), after a span of its own has been exported, as a real job's first spans leave before it dies.
A second attempt finds the file and finishes: a redelivered message completes.

The tasks are not shared (``shared=False``): Celery would otherwise add them to every app made after this
module is imported, and other tests list an app's tasks. They ignore their results: a Redis result backend
subscribes the publishing process to each task's result, a connection these tests have no use for.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery
from opentelemetry import trace

tracer = trace.get_tracer("faults")
app = Celery("faults", broker="memory://", set_as_current=False)
# On Redis, a message the worker had fetched when its connection dropped waits in the broker's unacked set
# for this long (default: an hour) before it is delivered again: short, so a cut test sees it come back.
app.conf.broker_transport_options = {"visibility_timeout": 5}


def _charge(marker: str, seconds: float) -> str:
    path = Path(marker)
    if path.exists():  # the attempt before this one was killed: finish now
        with tracer.start_as_current_span("charge card"):
            return "charged"
    with tracer.start_as_current_span("charge started"):
        pass
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    path.write_text(str(os.getpid()))
    time.sleep(seconds)  # killed in here
    return "not killed"


@app.task(name="faults.charge", shared=False, ignore_result=True)
def charge(marker: str, seconds: float = 60) -> str:
    return _charge(marker, seconds)


@app.task(name="faults.charge_late", shared=False, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def charge_late(marker: str, seconds: float = 60) -> str:
    return _charge(marker, seconds)


@app.task(name="faults.nap", shared=False, ignore_result=True)
def nap(seconds: float) -> float:
    with tracer.start_as_current_span("nap"):
        time.sleep(seconds)
    return seconds


def rq_charge(marker: str, seconds: float = 60) -> str:
    return _charge(marker, seconds)


def rq_nap(seconds: float) -> float:
    with tracer.start_as_current_span("nap"):
        time.sleep(seconds)
    return seconds


@app.task(name="faults.tick", shared=False, ignore_result=True)
def tick(n: int) -> int:
    with tracer.start_as_current_span("tick"):
        return n


def rq_tick(n: int) -> int:
    with tracer.start_as_current_span("tick"):
        return n
