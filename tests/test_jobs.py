"""Job-level assertions on built-in jobs, run as users run them (pytester, in-process and subprocess)."""

from __future__ import annotations

import pytest
from helpers import assert_in_order, both_modes, run_pytest

SHOP = """
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pytest_jobtrace.builtin import Job

tracer = trace.get_tracer("shop")


class PaymentError(Exception):
    pass


class RecordGone(Exception):
    pass


class SendConfirmationJob(Job):
    queue = "mail"

    def perform(self, order_id):
        with tracer.start_as_current_span("render_email"):
            pass


class ProcessOrderJob(Job):
    queue = "orders"
    retry_on = (PaymentError,)
    attempts = 3
    wait = "exponential"
    discard_on = (RecordGone,)

    def perform(self, order_id, declines=1):
        with tracer.start_as_current_span("charge") as span:
            span.set_attribute("order.id", order_id)
            if order_id < 0:
                raise RecordGone(f"order {order_id} is gone")
            if self.executions <= declines:
                raise PaymentError("card declined")
        SendConfirmationJob.perform_later(order_id)


class AuditJob(Job):
    queue = "audit"
    propagation = "link"

    def perform(self):
        with tracer.start_as_current_span("write_audit"):
            pass


def checkout(order_id, declines=1):
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
        ProcessOrderJob.perform_later(order_id, declines=declines)
        AuditJob.perform_later()
"""


def run_shop(pytester: pytest.Pytester, run: str, *args: str) -> pytest.RunResult:
    """Run the test project with the shop module beside it."""
    pytester.makepyfile(jobshop=SHOP)
    return run_pytest(pytester, run, *args)


@both_modes
def test_job_matches_enqueue_attempts_and_children(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job, span
        from jobshop import checkout

        def test_passes(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()
            assert_span_tree(
                span("POST /orders", kind="server", children=[
                    job("ProcessOrderJob", queue="orders", attempts=2, outcome="succeeded", linked=False,
                        attributes={"order.id": None},
                        children=[
                            span("charge", attributes={"order.id": 42}),
                            job("SendConfirmationJob", attempts=1, children=["render_email"]),
                        ]),
                    job("jobshop.AuditJob", linked=True, outcome="succeeded", children=["write_audit"]),
                ])
            )
            assert_span_tree({"job": "ProcessOrderJob", "attempts": 2})
            assert_span_tree('''
                POST /orders [server]
                └── send orders [producer]
                    ├── process orders [consumer, ERROR "card declined"]
                    │   └── charge [ERROR "PaymentError: card declined"]
                    └── process orders [consumer]
            ''')
        """
    )
    result = run_shop(pytester, run)
    result.assert_outcomes(passed=1)


@both_modes
def test_wrong_attempt_count_speaks_in_jobs(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job, span
        from jobshop import checkout

        def test_fails(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()
            assert_span_tree(span("POST /orders", children=[job("ProcessOrderJob", attempts=3)]))
        """
    )
    result = run_shop(pytester, run)
    result.assert_outcomes(failed=1)
    assert_in_order(
        result,
        "span tree does not match: at 'POST /orders' > 'send orders': job 'ProcessOrderJob': "
        "expected 3 attempts, found 2 (attempt 1 retried, attempt 2 succeeded)",
        "expected:",
        "POST /orders",
        "└── job ProcessOrderJob [attempts 3]",
        "captured (",
        "── send orders [producer]    <-- job 'ProcessOrderJob': expected 3 attempts, found 2",
    )


@both_modes
def test_never_processed_job(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_jobtrace import assert_span_tree, job, span
        from jobshop import SendConfirmationJob

        def test_fails(job_spans, builtin_jobs):
            with trace.get_tracer("t").start_as_current_span("user_onboarding"):
                SendConfirmationJob.perform_later(1)
            assert [j.outcome for j in job_spans.jobs()] == ["pending"]
            assert_span_tree(span("user_onboarding", children=[job("SendConfirmationJob")]))

        def test_pending_is_fine_when_expected(job_spans, builtin_jobs):
            SendConfirmationJob.perform_later(1)
            assert_span_tree(job("SendConfirmationJob", outcome="pending", attempts=0))
            builtin_jobs.drain()
        """
    )
    result = run_shop(pytester, run, "-W", "default")
    result.assert_outcomes(failed=1, passed=1)
    assert_in_order(
        result,
        "job 'SendConfirmationJob' was enqueued under 'user_onboarding' but never processed",
        "1 job(s) were enqueued but never performed: SendConfirmationJob(1). Call builtin_jobs.drain()",
    )


@both_modes
def test_outcome_linked_queue_and_attribute_mismatches(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_jobtrace import assert_span_tree, job
        from jobshop import checkout

        @pytest.fixture(autouse=True)
        def ran(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()

        def test_outcome():
            assert_span_tree(job("ProcessOrderJob", outcome="failed"))

        def test_linked():
            assert_span_tree(job("ProcessOrderJob", linked=True))

        def test_not_linked():
            assert_span_tree(job("AuditJob", linked=False))

        def test_queue():
            assert_span_tree(job("ProcessOrderJob", queue="payments"))

        def test_attributes():
            assert_span_tree(job("ProcessOrderJob", attributes={"messaging.destination.name": "mail"}))

        def test_no_such_job():
            assert_span_tree(job("RefundJob"))
        """
    )
    result = run_shop(pytester, run)
    result.assert_outcomes(failed=6)
    text = result.stdout.str()
    for message in (
        "job 'ProcessOrderJob': expected outcome 'failed', got 'succeeded' (attempt 1 retried, attempt 2 succeeded)",
        "job 'ProcessOrderJob': expected attempt 1 in its own trace linked to the enqueue (linked=True), "
        "but it is a child of 'send orders' in the enqueuing trace",
        "job 'AuditJob': expected attempt 1 to continue the enqueuing trace (linked=False), "
        "but it is in a new trace linked to the enqueue",
        "job 'ProcessOrderJob': expected queue 'payments', got 'orders'",
        "job 'ProcessOrderJob': attributes['messaging.destination.name']: expected 'mail', got 'orders' "
        "(on 'process orders')",
        "no job 'RefundJob' was enqueued; jobs captured: 'jobshop.ProcessOrderJob' (succeeded), "
        "'jobshop.AuditJob' (succeeded), 'jobshop.SendConfirmationJob' (succeeded)",
    ):
        assert message in text, message


@both_modes
def test_missing_child_job(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job
        from jobshop import checkout

        def test_fails(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()
            assert_span_tree(job("ProcessOrderJob", children=[job("SendInvoiceJob")]))
        """
    )
    result = run_shop(pytester, run)
    result.assert_outcomes(failed=1)
    assert "missing child matching job 'SendInvoiceJob' under job 'ProcessOrderJob'" in (result.stdout.str())


@both_modes
def test_jobs_views_and_job_lookup(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_jobtrace import JobView
        from jobshop import checkout, ProcessOrderJob

        def test_views(job_spans, builtin_jobs):
            checkout(42)
            ProcessOrderJob.perform_later(-1)
            builtin_jobs.drain()
            jobs = job_spans.jobs()
            assert [j.name for j in jobs] == [
                "jobshop.ProcessOrderJob", "jobshop.AuditJob", "jobshop.ProcessOrderJob", "jobshop.SendConfirmationJob"
            ]
            order = jobs[0]
            assert isinstance(order, JobView)
            assert order.queue == "orders"
            assert order.publish.name == "send orders"
            assert [s.name for s in order.attempts] == ["process orders", "process orders"]
            assert order.outcome == "succeeded"
            assert order.retry_reasons == ["jobshop.PaymentError: card declined"]
            assert [j.name for j in order.enqueued] == ["jobshop.SendConfirmationJob"]
            assert order.id == order.attempts[0].attributes["messaging.message.id"]
            assert jobs[2].outcome == "discarded"
            assert job_spans.job("SendConfirmationJob").queue == "mail"
            with pytest.raises(AssertionError, match="expected exactly one job matching 'ProcessOrderJob', "
                               "found 2 jobs; jobs captured: 'jobshop.ProcessOrderJob' .succeeded."):
                job_spans.job("ProcessOrderJob")
            with pytest.raises(AssertionError, match="found no job"):
                job_spans.job("Nope")
        """
    )
    result = run_shop(pytester, run)
    result.assert_outcomes(passed=1)


@both_modes
def test_failed_job_is_reported_by_drain_and_visible_as_a_job(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job, span
        from jobshop import checkout

        def test_unexpected_failure(job_spans, builtin_jobs):
            checkout(7, declines=5)
            builtin_jobs.drain()

        def test_expected_failure(job_spans, builtin_jobs):
            checkout(7, declines=5)
            builtin_jobs.drain(expect_failures=True)
            assert_span_tree(job("ProcessOrderJob", attempts=3, outcome="failed", children=[
                span("charge", status="error", exception={"type": "PaymentError", "message": "card declined"}),
            ]))
            [order] = [j for j in job_spans.jobs() if j.short_name == "ProcessOrderJob"]
            events = [e.name for e in order.attempts[-1].events]
            assert events == ["exception", "jobtrace.retries_exhausted"]
        """
    )
    result = run_shop(pytester, run)
    result.assert_outcomes(failed=1, passed=1)
    assert_in_order(result, "builtin_jobs.drain(): 1 job failed:", "ProcessOrderJob(7, declines=5)")


@both_modes
def test_marker_selects_inline_mode_and_propagation(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_jobtrace import assert_span_tree, job
        from jobshop import checkout

        @pytest.mark.jobtrace(mode="inline", propagation="link")
        def test_inline_linked(job_spans, builtin_jobs):
            checkout(42)
            assert builtin_jobs.pending == []
            assert_span_tree(job("ProcessOrderJob", linked=True, attempts=2, children=[
                job("SendConfirmationJob", linked=True),
            ]))

        @pytest.mark.jobtrace(propagation="none")
        def test_detached(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()
            assert_span_tree(job("ProcessOrderJob", linked=False))

        @pytest.mark.jobtrace(span_naming="job_class")
        def test_named_by_class(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()
            assert_span_tree("send ProcessOrderJob\\n  process ProcessOrderJob")
        """
    )
    result = run_shop(pytester, run)
    result.assert_outcomes(passed=2, failed=1)
    assert (
        "job 'ProcessOrderJob': expected attempt 1 to continue the enqueuing trace (linked=False), "
        "but it is in a new trace with no link to the enqueue"
    ) in result.stdout.str()


@both_modes
def test_folded_render(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        from jobshop import checkout

        def test_folded(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()
            assert job_spans.render("jobs") == '''\\
        POST /orders [server]
        ├── job jobshop.ProcessOrderJob [queue "orders", attempts 2, outcome "succeeded"]
        │   ├── charge [ERROR "PaymentError: card declined"]
        │   ├── charge
        │   └── job jobshop.SendConfirmationJob [queue "mail", attempts 1, outcome "succeeded"]
        │       └── render_email
        └── job jobshop.AuditJob [queue "audit", attempts 1, outcome "succeeded"]
            └── write_audit'''
        """
    )
    result = run_shop(pytester, run)
    result.assert_outcomes(passed=1)


def test_job_arguments_are_validated() -> None:
    from pytest_jobtrace import assert_span_tree, job

    with pytest.raises(ValueError, match=r"outcome='done': use one of succeeded, failed, discarded, pending"):
        job("X", outcome="done")
    with pytest.raises(ValueError, match=r"attempts=-1: expected a whole number of attempts"):
        job("X", attempts=-1)
    with pytest.raises(ValueError, match=r"unknown key\(s\) 'attempt' in an expected job; valid keys: job, queue"):
        assert_span_tree({"job": "X", "attempt": 2}, spans=[])


@both_modes
def test_jobs_under_xdist(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_jobtrace import assert_span_tree, job
        from jobshop import checkout

        @pytest.mark.parametrize("i", range(10))
        def test_each(job_spans, builtin_jobs, i):
            checkout(i)
            builtin_jobs.drain()
            assert len(job_spans.jobs()) == 3
            assert_span_tree(job("ProcessOrderJob", attempts=2, attributes={"messaging.destination.name": "orders"}))
        """
    )
    result = run_shop(pytester, run, "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=10)


def test_fixture_switches_to_inline_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_jobtrace import assert_span_tree, job
        from jobshop import checkout

        def test_switch(job_spans, builtin_jobs):
            assert builtin_jobs.mode == "queue"
            builtin_jobs.mode = "inline"
            checkout(42)
            assert builtin_jobs.pending == []
            assert_span_tree(job("ProcessOrderJob", attempts=2, outcome="succeeded"))

        def test_bad_mode(builtin_jobs):
            with pytest.raises(ValueError, match="JobRuntime.mode"):
                builtin_jobs.mode = "eager"
        """
    )
    result = run_shop(pytester, "inprocess")
    result.assert_outcomes(passed=2)


def test_ini_and_command_line_configure_builtin_jobs(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\njobtrace_span_naming = job_class\njobtrace_expect_failures = true\n")
    pytester.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job
        from jobshop import checkout

        def test_configured(job_spans, builtin_jobs, jobtrace_options):
            assert (jobtrace_options.mode, jobtrace_options.span_naming) == ("inline", "job_class")
            checkout(7, declines=5)  # fails for good, inline: expect_failures keeps it from raising
            assert_span_tree("send ProcessOrderJob\\n  process ProcessOrderJob")
            assert_span_tree(job("ProcessOrderJob", outcome="failed", attempts=3))
        """
    )
    result = run_shop(pytester, "inprocess", "--jobtrace-mode=inline")
    result.assert_outcomes(passed=1)


def test_bad_ini_value_names_the_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\njobtrace_mode = eager\n")
    pytester.makepyfile("def test_x(job_spans):\n    pass\n")
    result = run_shop(pytester, "inprocess")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # once, at startup: no test runs with a wrong setting
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-jobtrace: ini key jobtrace_mode in *tox.ini: mode='eager'; use one of 'queue', 'inline'"]
    )


def test_endless_chain_is_reported_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace.builtin import Job

        class PingJob(Job):
            def perform(self):
                PongJob.perform_later()

        class PongJob(Job):
            def perform(self):
                PingJob.perform_later()

        def test_chain(job_spans, builtin_jobs):
            PingJob.perform_later()
            builtin_jobs.drain(max_jobs=20)
        """
    )
    result = run_shop(pytester, "inprocess", "-W", "error::pytest_jobtrace.JobtraceWarning")
    result.assert_outcomes(failed=1)
    assert_in_order(result, "JobChainError: builtin_jobs.drain() performed max_jobs=20 attempts", "-> PingJob(id=")
    assert "never performed" not in result.stdout.str()


def test_job_count(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from pytest_jobtrace import assert_span_tree, job, span
        from jobshop import SendConfirmationJob

        def test_counts(job_spans, builtin_jobs):
            with trace.get_tracer("t").start_as_current_span("newsletter"):
                for order_id in range(3):
                    SendConfirmationJob.perform_later(order_id)
            builtin_jobs.drain()
            assert_span_tree(
                span("newsletter", children=[job("SendConfirmationJob", count=3, children=["render_email"])]),
                exact=True,
            )
            assert_span_tree({"name": "newsletter", "children": [{"job": "SendConfirmationJob", "count": 3}]})
            assert_span_tree(span("newsletter", children=[job("SendConfirmationJob", count=4)]))
        """
    )
    result = run_shop(pytester, "inprocess")
    result.assert_outcomes(failed=1)
    assert "expected 4 jobs matching 'SendConfirmationJob' under 'newsletter', found 3" in result.stdout.str()


def test_forgotten_drain_and_open_span_are_named_in_the_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from pytest_jobtrace import assert_span_tree
        from jobshop import checkout

        def test_forgot_drain(job_spans, builtin_jobs):
            checkout(1)
            assert_span_tree("POST /orders\\n  send orders\\n    process orders")

        def test_still_inside(job_spans):
            with trace.get_tracer("t").start_as_current_span("POST /refunds"):
                assert_span_tree("POST /refunds")
        """
    )
    result = run_shop(pytester, "inprocess", "-W", "ignore::pytest_jobtrace.JobtraceWarning")
    result.assert_outcomes(failed=2)
    assert_in_order(
        result,
        "span tree does not match: missing child matching 'process orders' under 'POST /orders' > 'send orders'",
        "note: enqueued but never processed: 'ProcessOrderJob', 'AuditJob'; drain the queue first "
        "(builtin_jobs.drain())",
        "span tree does not match: no captured span matches 'POST /refunds'",
        "note: not ended yet, so not captured yet: 'POST /refunds'; assert after the `with` block ends",
    )


def test_a_job_expected_at_the_wrong_level_says_where_it_was_enqueued(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job, span
        from jobshop import checkout

        def test_wrong_level(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()
            assert_span_tree(span("POST /orders", children=[job("SendConfirmationJob")]))
        """
    )
    result = run_shop(pytester, "inprocess")
    result.assert_outcomes(failed=1)
    assert (
        "missing child matching job 'SendConfirmationJob' under 'POST /orders'; the jobs enqueued there: "
        "'ProcessOrderJob', 'AuditJob'; job 'SendConfirmationJob' was enqueued under job "
        "'ProcessOrderJob'"
    ) in result.stdout.str()


def test_exact_accounts_for_a_jobs_linked_attempts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace import assert_span_tree, job, span

        from jobshop import checkout

        def test_exact(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()
            confirmation = job("SendConfirmationJob", children=["render_email"])
            order = job("ProcessOrderJob", children=[span("charge", count=2), confirmation])
            audit = job("AuditJob", linked=True, children=["write_audit"])
            assert_span_tree(span("POST /orders", children=[order, audit]), exact=True)
            assert_span_tree(job_spans.render(), exact=True)  # the linked attempt listed as a root works too
            assert_span_tree(span("POST /orders", children=[order, job("AuditJob")]), exact=True)
        """
    )
    result = run_shop(pytester, "inprocess")
    result.assert_outcomes(failed=1)
    assert (
        "unexpected child 'write_audit' under job 'AuditJob' (exact=True: every span must be expected)"
    ) in result.stdout.str()


def test_perform_one_steps_through_retries(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_jobtrace import assert_span_tree, job
        from pytest_jobtrace.builtin import JobRun, PendingJob
        from jobshop import ProcessOrderJob

        def test_steps(job_spans, builtin_jobs):
            ProcessOrderJob.perform_later(5, declines=1)
            retry = builtin_jobs.perform_one()
            assert isinstance(retry, PendingJob)
            assert (retry.attempt, retry.due) == (2, 1.0)  # exponential: 1 second after attempt 1
            assert_span_tree(job("ProcessOrderJob", attempts=1, outcome="pending"))
            run = builtin_jobs.perform_one()
            assert isinstance(run, JobRun) and (run.outcome, run.attempts) == ("succeeded", 2)
            assert builtin_jobs.now == 1.0
            confirmation = builtin_jobs.perform_one()
            assert confirmation.job_class.__name__ == "SendConfirmationJob"
            with pytest.raises(LookupError, match="no job is pending"):
                builtin_jobs.perform_one()

        def test_failure_is_raised_and_listed(job_spans, builtin_jobs):
            ProcessOrderJob.perform_later(5, declines=9)
            builtin_jobs.perform_one()
            builtin_jobs.perform_one()
            with pytest.raises(AssertionError, match=r"builtin_jobs.perform_one\\(\\): 1 job failed"):
                builtin_jobs.perform_one()
            assert [run.attempts for run in builtin_jobs.failed] == [3]
        """
    )
    result = run_shop(pytester, "inprocess")
    result.assert_outcomes(passed=2)


def test_folded_render_separates_traces(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from jobshop import SendConfirmationJob, checkout

        def test_two_requests(job_spans, builtin_jobs):
            SendConfirmationJob.perform_later(1)
            SendConfirmationJob.perform_later(2)
            builtin_jobs.drain()
            assert job_spans.render("jobs") == (
                'job jobshop.SendConfirmationJob [queue "mail", attempts 1, outcome "succeeded"]\\n'
                "└── render_email\\n"
                "\\n"
                'job jobshop.SendConfirmationJob [queue "mail", attempts 1, outcome "succeeded"]\\n'
                "└── render_email"
            )
        """
    )
    run_shop(pytester, "inprocess").assert_outcomes(passed=1)


def test_folded_render_lists_a_directly_performed_job_s_spans_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace
        from pytest_jobtrace.builtin import Job

        tracer = trace.get_tracer(__name__)

        class SumJob(Job):
            def perform(self, n):
                with tracer.start_as_current_span("sum"):
                    return n

        def test_perform_now(job_spans, builtin_jobs):
            SumJob.perform_now(3)  # no send span: the job's site is its only attempt
            assert job_spans.render("jobs") == (
                "job test_folded_render_lists_a_directly_performed_job_s_spans_once.SumJob"
                ' [queue "default", attempts 1, outcome "succeeded"]\\n'
                "└── sum"
            )
        """
    )
    run_shop(pytester, "inprocess").assert_outcomes(passed=1)


def test_a_job_named_by_its_class_reads_as_its_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from jobshop import ProcessOrderJob, checkout
        from pytest_jobtrace import assert_span_tree, job

        def test_by_class(job_spans, builtin_jobs):
            checkout(42)
            builtin_jobs.drain()
            assert_span_tree(job(ProcessOrderJob, attempts=2))  # passes: named by its class
            assert_span_tree(job(ProcessOrderJob, attempts=5))
        """
    )
    result = run_shop(pytester, "inprocess")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*job 'ProcessOrderJob'*expected 5 attempts, found 2*", "*job 'ProcessOrderJob'*"])
    assert "<class" not in result.stdout.str()


def test_job_children_are_every_attempt_s_spans_as_render_shows_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        from pytest_jobtrace import SpanTreeMismatch, assert_span_tree, job, span
        from pytest_jobtrace.builtin import Job

        tracer = trace.get_tracer(__name__)

        class Flaky(Exception):
            pass

        class ChargeJob(Job):
            retry_on = (Flaky,)
            attempts = 3
            wait = 1

            def perform(self):
                with tracer.start_as_current_span("charge_card"):
                    if self.executions < 2:
                        raise Flaky("timeout")

        def test_children(job_spans, builtin_jobs):
            ChargeJob.perform_later()
            builtin_jobs.drain()
            assert job_spans.render("jobs").splitlines()[1:] == [
                '├── charge_card [ERROR "Flaky: timeout"]',
                "└── charge_card",
            ]
            failed_try = span("charge_card", status="ERROR")
            assert_span_tree(job("ChargeJob", exact=True, children=[failed_try, "charge_card"]))
            assert_span_tree(job("ChargeJob", exact=True, children=[span("charge_card", count=2)]))
            with pytest.raises(SpanTreeMismatch, match="unexpected child 'charge_card'"):
                assert_span_tree(job("ChargeJob", exact=True, children=["charge_card"]))
        """
    )
    run_shop(pytester, "inprocess").assert_outcomes(passed=1)
