"""The live RQ worker: ``python -m pytest_jobtrace.rq._live_worker [rq worker options] QUEUE...``.

Started by the ``live_rq_worker`` fixture. It sets tracing up (``RQInstrumentor`` on a provider that
exports to the test's receiver), then hands over to RQ's own command line (``rq worker``): the forking
``Worker``, whose work horse runs each job in a forked child. The provider's exporter is made anew in
each forked process (``live_tracing``), and the instrumentation flushes the horse's spans when the job ends,
before the horse leaves with ``os._exit``.
"""

from __future__ import annotations

import sys
from typing import Any


def main(argv: list[str]) -> None:
    from rq.cli.cli import main as rq_main
    from wrapt import wrap_function_wrapper

    from pytest_jobtrace.adapters import live_tracing
    from pytest_jobtrace.rq.instrumentation import RQInstrumentor

    live_tracing.install("rq-worker")
    RQInstrumentor().instrument(**live_tracing.instrumentation_options())  # as the test process does
    wrap_function_wrapper("rq.worker.base", "BaseWorker.bootstrap", _ready_after)
    # RQ's command channel (``rq`` stop/kill commands over pub/sub) is left out: nobody sends it commands, and
    # with rq 3.0 and redis-py 8 its thread can miss the wake-up RQ's shutdown waits for and hold the worker
    # 60 s after SIGTERM (tests/rq_fidelity.py's worker leaves it out for the same reason).
    wrap_function_wrapper("rq.worker.base", "BaseWorker.subscribe", _no_command_channel)
    rq_main(["worker", *argv], prog_name="rq")


def _ready_after(wrapped: Any, worker: Any, args: Any, kwargs: Any) -> Any:
    from pytest_jobtrace.adapters import live_tracing

    result = wrapped(*args, **kwargs)
    live_tracing.ready()  # registered and subscribed: it takes jobs from here on
    return result


def _no_command_channel(wrapped: Any, worker: Any, args: Any, kwargs: Any) -> None:
    return None


if __name__ == "__main__":
    main(sys.argv[1:])
