"""What each job system calls its spans and its jobs: the one difference ``job()`` hides on purpose.

The built-in adapter and RQ name spans after the queue, as the messaging semantic conventions say
(``send {queue}``, ``process {queue}``). opentelemetry-instrumentation-celery names them after the task
(``apply_async/{task}``, ``run/{task}``) and follows an older schema. A job's name is its class for the
built-in adapter, the task's registered name for Celery and the function's dotted name for RQ. A text tree
states raw span names, so it is written per system; ``system.job(...)`` in the other tests is not.
"""

from __future__ import annotations

from conftest import Post, System
from pytest_jobtrace import JobSpans, assert_span_tree

TREES = {
    "builtin": """
        POST /batches [server]
          send batches [producer]
            process batches [consumer]
              process_chunk_0
        """,
    "celery": """
        POST /batches [server]
          apply_async/storefront.celery_tasks.batch_process [producer]
            run/storefront.celery_tasks.batch_process [consumer]
              process_chunk_0
        """,
    "rq": """
        POST /batches [server]
          send batches [producer]
            process batches [consumer]
              process_chunk_0
        """,
}
JOB_NAMES = {
    "builtin": "storefront.builtin_jobs.BatchProcessorJob",
    "celery": "storefront.celery_tasks.batch_process",
    "rq": "storefront.rq_jobs.batch_process",
}
# The attribute naming the queue: the current semconv key, or Celery's older one (its routing key).
QUEUE_ATTRIBUTE = {
    "builtin": "messaging.destination.name",
    "celery": "messaging.destination",
    "rq": "messaging.destination.name",
}


def test_span_and_job_names(system: System, post: Post, job_spans: JobSpans) -> None:
    post("/batches", json={"item_ids": [1, 2, 3]})
    system.drain()

    assert_span_tree(TREES[system.name], exact=True)
    (batch,) = job_spans.jobs()
    assert (batch.name, batch.queue) == (JOB_NAMES[system.name], "batches")
    assert batch.publish is not None
    assert (batch.publish.attributes or {})[QUEUE_ATTRIBUTE[system.name]] == "batches"
