"""Job assertions that must not pass vacuously, run as users run them."""

from __future__ import annotations

import pytest
from helpers import both_modes
from test_jobs import run_shop


@both_modes
def test_linked_never_passes_without_an_enqueue_or_an_attempt(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_jobtrace import assert_span_tree, job
        from jobshop import AuditJob, checkout

        @pytest.mark.parametrize("linked", [True, False])
        def test_performed_now(job_spans, linked):
            AuditJob.perform_now()
            assert_span_tree(job("AuditJob", linked=linked))

        @pytest.mark.filterwarnings("ignore::pytest_jobtrace.JobtraceWarning")  # left pending on purpose
        @pytest.mark.parametrize("linked", [True, False])
        def test_never_processed(job_spans, builtin_jobs, linked):
            checkout(42)
            assert_span_tree(job("ProcessOrderJob", outcome="pending", linked=linked))

        def test_performed_now_without_linked_passes(job_spans):
            AuditJob.perform_now()
            assert_span_tree(job("AuditJob", outcome="succeeded"))
        """
    )
    result = run_shop(pytester, run)
    result.assert_outcomes(failed=4, passed=1)
    text = result.stdout.str()
    for linked in (True, False):
        assert (
            f"job 'AuditJob': linked={linked} needs an enqueue to relate to, but the job was performed without one"
            in text
        )
        assert f"job 'ProcessOrderJob': linked={linked} needs an attempt to check, but the job was never processed" in (
            text
        )
