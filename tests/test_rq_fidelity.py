"""Fidelity: rq_jobs' drain on fakeredis makes the same tree as RQ's own worker on a real Redis.

Each scenario runs twice with the same instrumentation: through ``RQRuntime.drain()`` on fakeredis, and
through ``SimpleWorker.work(burst=True, with_scheduler=True)`` on the real Redis (a leased database of its
own, so parallel runs do not meet), waiting in real time for scheduled jobs. The normalised trees must be
equal. Without a Redis these tests skip, unless JOBTRACE_REQUIRE_REDIS=1 (CI) makes that a failure.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("rq")
pytest.importorskip("fakeredis")

import rq_fidelity
import rq_tasks
from rq import Queue

from pytest_jobtrace import JobSpans
from pytest_jobtrace.rq._connection import open_connection
from pytest_jobtrace.rq._drain import RQRuntime
from pytest_jobtrace.rq.instrumentation import RQInstrumentor


def _drained(job_spans: JobSpans, scenario: Callable[[Queue], None]) -> str:
    rq_tasks.CALLS.clear()
    job_spans.clear()
    with RQRuntime() as runtime:
        with rq_fidelity.tracer.start_as_current_span("test"):
            scenario(runtime.queue())
        runtime.drain(expect_failures=True)
    return rq_fidelity.normalised(job_spans.spans)


def _by_rq_worker(job_spans: JobSpans, scenario: Callable[[Queue], None], url: str) -> str:
    rq_tasks.CALLS.clear()
    job_spans.clear()
    lease = open_connection(url)
    instrumentor = RQInstrumentor()
    instrumentor.instrument()
    try:
        rq_fidelity.run_with_rq_worker(lease.connection, scenario)
    finally:
        instrumentor.uninstrument()
        lease.close()
    return rq_fidelity.normalised(job_spans.spans)


@pytest.mark.parametrize("scenario", rq_fidelity.SCENARIOS, ids=lambda s: s.__name__)
def test_drain_makes_the_tree_rqs_worker_makes(job_spans: JobSpans, scenario: Callable[[Queue], None]) -> None:
    url = rq_fidelity.require_redis()
    reference = _by_rq_worker(job_spans, scenario, url)
    drained = _drained(job_spans, scenario)
    assert drained == reference
    assert "CONSUMER" in reference  # the scenario ran jobs at all


def test_the_normalised_tree_tells_a_different_tree_apart(job_spans: JobSpans) -> None:
    """The comparison above can fail: one retry more is a different tree."""
    once = _drained(job_spans, rq_fidelity.retries_then_success)
    twice = _drained(job_spans, rq_fidelity.retries_exhausted)
    assert once != twice
    assert "rq.job.retries_exhausted" in twice
    assert "rq.job.retries_exhausted" not in once


def test_a_real_redis_is_used_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Redis answers on this machine: still, without JOBTRACE_REQUIRE_REDIS=1 or a URL, the tests skip.
    monkeypatch.delenv("JOBTRACE_REQUIRE_REDIS", raising=False)
    monkeypatch.delenv("JOBTRACE_TEST_REDIS_URL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="only when JOBTRACE_REQUIRE_REDIS=1 or JOBTRACE_TEST_REDIS_URL"):
        rq_fidelity.require_redis()
    monkeypatch.setattr(rq_fidelity, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    for name, value in (("JOBTRACE_REQUIRE_REDIS", "1"), ("JOBTRACE_TEST_REDIS_URL", "redis://127.0.0.1:1/0")):
        with monkeypatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(pytest.fail.Exception, match=r"no Redis answers at redis://127\.0\.0\.1:1/0"):
                rq_fidelity.require_redis()
