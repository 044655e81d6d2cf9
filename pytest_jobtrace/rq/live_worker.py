"""The live RQ worker: ``python -m pytest_jobtrace.rq.live_worker [rq worker options] QUEUE...``.

Started by the ``live_rq_worker`` fixture, and the way to start workers elsewhere (``jobtrace_live_workers =
external``: a compose cluster, another host) so that they tell the test what the fixture's do: give it the
receiver's traces URL in ``$JOBTRACE_LIVE_ENDPOINT`` or the OTLP exporter's own
``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (``docs/live.md``). It sets tracing up (``RQInstrumentor`` on a provider that
exports to the test's receiver), then hands over to RQ's own command line (``rq worker``): the forking
``Worker``, whose work horse runs each job in a forked child, with its command channel (a job stopped with
``send_stop_job_command`` gets its attempt's span from the worker, as a killed horse's does). The
provider's exporter is made anew in each forked process (``live_tracing``), and the instrumentation flushes
the horse's spans when the job ends, before the horse leaves with ``os._exit``. A job that cancels or
deletes another before a worker took it reports that one discarded to the test, and so does a job RQ drops
because its data is gone (its ``ttl`` ran out while it waited) (``_verdicts``).
"""

from __future__ import annotations

import os
import sys
from typing import Any


def main(argv: list[str]) -> None:
    from rq.cli.cli import main as rq_main
    from wrapt import wrap_function_wrapper

    from pytest_jobtrace.adapters import live_tracing
    from pytest_jobtrace.rq import _verdicts
    from pytest_jobtrace.rq.instrumentation import RQInstrumentor

    if live_tracing.adopt_otlp_endpoint() is None:  # a worker started by hand, told nothing
        raise SystemExit(live_tracing.NO_ENDPOINT)
    live_tracing.install("rq-worker")
    endpoint = os.environ.get(live_tracing.ENDPOINT_ENV)
    if endpoint:  # a job canceled, deleted or dropped by RQ (its data gone) before it ran: the test is told
        url = live_tracing.report_url(endpoint, live_tracing.VERDICT_PATH)
        _verdicts.install(lambda verdict: live_tracing.post_report(url, verdict))
        _verdicts.install_dropped(lambda verdict: live_tracing.post_report(url, verdict))
    RQInstrumentor().instrument(**live_tracing.instrumentation_options())  # as the test process does
    wrap_function_wrapper("rq.worker.base", "BaseWorker.subscribe", _subscribe)
    wrap_function_wrapper("rq.worker.base", "BaseWorker.bootstrap", _ready_after)
    rq_main(["worker", *argv], prog_name="rq")


COMMAND_POLL_SECONDS = 0.2
"""How long the command channel's thread waits for a message before it looks whether to stop."""


def _subscribe(wrapped: Any, worker: Any, args: Any, kwargs: Any) -> None:
    """RQ's own ``subscribe`` (its command channel: ``send_stop_job_command``, ``send_kill_horse_command``),
    with the thread polling every 0.2 s instead of 60. With rq 3.0 and redis-py 8 the thread can miss the
    wake-up RQ's shutdown waits for, and a 60 s poll then held the worker 60 s after SIGTERM."""
    worker.pubsub = worker.connection.pubsub()
    worker.pubsub.subscribe(**{worker.pubsub_channel_name: worker.handle_payload})
    handler = getattr(worker, "_pubsub_exception_handler", None)  # rq 3
    options = {"exception_handler": handler} if handler is not None else {}
    worker.pubsub_thread = worker.pubsub.run_in_thread(sleep_time=COMMAND_POLL_SECONDS, daemon=True, **options)


def _ready_after(wrapped: Any, worker: Any, args: Any, kwargs: Any) -> Any:
    from pytest_jobtrace.adapters import live_tracing

    result = wrapped(*args, **kwargs)
    live_tracing.ready()  # registered and subscribed: it takes jobs from here on
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
