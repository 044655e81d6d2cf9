"""RetryAware: a job that fails twice, then succeeds, marking each attempt with its retry count.

What is the same on every system is asserted once, with ``job()``. The shape of the retries is not the
same, and the last test asserts each system's own tree: see "Where the systems differ" in README.md.
"""

from __future__ import annotations

import pytest

from conftest import Post, System
from pytest_jobtrace import JobFailedError, JobSpans, VirtualClock, assert_span_tree, span


@pytest.mark.in_process_only("it reads the virtual clock (job_clock), which live workers do not run on")
def test_fails_twice_then_succeeds(system: System, post: Post, job_spans: JobSpans, job_clock: VirtualClock) -> None:
    post("/partners/acme/sync")
    system.drain()

    assert_span_tree(
        span(
            "POST /partners/<name>/sync",
            children=[
                system.job(
                    "retry_aware",
                    queue="partners",
                    attempts=3,
                    outcome="succeeded",
                    # attributes and children: those of the last attempt
                    attributes={"job.retry_count": 2},
                    children=[span("sync_partner", status="unset", attributes={"partner.name": "acme"})],
                )
            ],
        )
    )
    retry_aware = job_spans.job(system.full_name("retry_aware"))
    assert [info.attempt_outcome for info in retry_aware.attempt_infos] == ["retried", "retried", "succeeded"]
    assert [(a.attributes or {})["job.retry_count"] for a in retry_aware.attempts] == [0, 1, 2]
    retry_events = [[dict(e.attributes or {}) for e in a.events if e.name == "retry"] for a in retry_aware.attempts]
    assert retry_events == [[], [{"retry.attempt": 2}], [{"retry.attempt": 3}]]
    assert job_clock.now == 10.0  # two waits of 5 s, on the virtual clock: nobody slept


def test_retries_run_out(system: System, post: Post, job_spans: JobSpans) -> None:
    post("/partners/offline/sync")
    with pytest.raises(JobFailedError, match=r"(retry_aware|RetryAwareJob).* failed"):
        system.drain()

    assert_span_tree(
        span(
            "POST /partners/<name>/sync",
            children=[
                system.job(
                    "retry_aware",
                    attempts=3,
                    outcome="failed",
                    attributes={"job.retry_count": 2},
                    children=[span("sync_partner", status="error")],
                )
            ],
        )
    )
    last = job_spans.job(system.full_name("retry_aware")).attempts[-1]
    assert last.status.description == "offline did not answer"  # the job's own span is ERROR: it failed for good


# What each system records as the reason for a retry (JobView.retry_reasons).
RETRY_REASONS = {
    "builtin": "storefront.logic.PartnerUnavailable: acme did not answer",  # jobtrace.retry event
    "celery": "Retry in 5s: PartnerUnavailable('acme did not answer')",  # celery.retry.reason, Celery's own text
    "rq": "storefront.logic.PartnerUnavailable: acme did not answer",  # rq.job.retry event
}

# The raw trees. The built-in adapter re-enqueues a retry from the runtime, so the attempts are siblings under
# the one send span. Celery and RQ re-send a retry from inside the failed attempt (Celery's Task.retry,
# RQ's failure handling in the worker), so each retry's send span is a child of the attempt that failed and
# the attempts nest. A retried Celery attempt is not an error: the instrumentation ends it with
# celery.state=RETRY and status UNSET (the reason is an attribute); the built-in adapter and RQ mark a
# failed attempt ERROR with its exception, retried or not.
RETRY_TREES = {
    "builtin": """
        POST /partners/<name>/sync [server]
          send partners [producer]
            process partners [consumer, ERROR "acme did not answer"]
              sync_partner [ERROR "PartnerUnavailable: acme did not answer"]
            process partners [consumer, ERROR "acme did not answer"]
              sync_partner [ERROR "PartnerUnavailable: acme did not answer"]
            process partners [consumer, UNSET]
              sync_partner [UNSET]
        """,
    "celery": """
        POST /partners/<name>/sync [server]
          apply_async/storefront.celery_tasks.retry_aware [producer]
            run/storefront.celery_tasks.retry_aware [consumer, UNSET]
              sync_partner [ERROR "PartnerUnavailable: acme did not answer"]
              apply_async/storefront.celery_tasks.retry_aware [producer]
                run/storefront.celery_tasks.retry_aware [consumer, UNSET]
                  sync_partner [ERROR "PartnerUnavailable: acme did not answer"]
                  apply_async/storefront.celery_tasks.retry_aware [producer]
                    run/storefront.celery_tasks.retry_aware [consumer, UNSET]
                      sync_partner [UNSET]
        """,
    "rq": """
        POST /partners/<name>/sync [server]
          send partners [producer]
            process partners [consumer, ERROR "acme did not answer"]
              sync_partner [ERROR "PartnerUnavailable: acme did not answer"]
              send partners [producer]
                process partners [consumer, ERROR "acme did not answer"]
                  sync_partner [ERROR "PartnerUnavailable: acme did not answer"]
                  send partners [producer]
                    process partners [consumer, UNSET]
                      sync_partner [UNSET]
        """,
}


def test_retry_shape_differs_by_system(system: System, post: Post, job_spans: JobSpans) -> None:
    post("/partners/acme/sync")
    system.drain()

    assert_span_tree(RETRY_TREES[system.name], exact=True, ordered=True)
    assert job_spans.job(system.full_name("retry_aware")).retry_reasons == [RETRY_REASONS[system.name]] * 2
