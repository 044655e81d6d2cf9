"""live_celery_worker and live_rq_worker: real worker processes, started once, their spans in the test's capture.

Run as users run them (pytester, in subprocesses: each inner session starts and stops its own workers).
They need the Redis at 127.0.0.1:6379 (a database of 1-15 leased per session): without one they skip, unless
JOBTRACE_REQUIRE_REDIS=1 (CI) makes that a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("celery")
pytest.importorskip("rq")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from live_helpers import make_project, require_rabbitmq, require_redis


@pytest.fixture(autouse=True)
def _redis() -> None:
    require_redis()


REUSE = textwrap.dedent(
    """
    import os
    import shop_jobs

    PIDS = []


    def _publish(worker, system, value):
        if system == "rq":
            worker.queue().enqueue(shop_jobs.hello, value)
        else:
            shop_jobs.add.delay(value, 1)


    TREES = {{
        "rq": "send default\\n└── process default\\n    └── hello.work",
        "celery": "apply_async/shop.add\\n└── run/shop.add\\n    └── add.work",
    }}


    def test_first(job_spans, {fixture}):
        _publish({fixture}, "{system}", 1)
        {fixture}.settle()
        job_spans.assert_span_tree(TREES["{system}"], exact=True)
        PIDS.append({fixture}.pid)
        open("pid", "w").write(str({fixture}.pid))


    def test_second_reuses_the_worker(job_spans, {fixture}):
        _publish({fixture}, "{system}", 2)
        {fixture}.settle()
        job_spans.assert_span_tree(TREES["{system}"], exact=True)
        assert {fixture}.pid == PIDS[0]
    """
)

SYSTEMS = {"rq": "live_rq_worker", "celery": "live_celery_worker"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("system", SYSTEMS)
def test_one_worker_serves_every_test_and_is_reaped_at_the_end(pytester: pytest.Pytester, system: str) -> None:
    make_project(pytester, test_reuse=REUSE.format(fixture=SYSTEMS[system], system=system))
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    pid = int((pytester.path / "pid").read_text())
    assert not _alive(pid), f"the {system} worker {pid} still runs after the session"


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_celery_prefork_and_solo_pools_trace_every_task(pytester: pytest.Pytester, pool: str) -> None:
    make_project(pytester, test_reuse=REUSE.format(fixture="live_celery_worker", system="celery"))
    result = pytester.runpytest_subprocess("-p", "no:randomly", f"--jobtrace-celery-live-pool={pool}")
    result.assert_outcomes(passed=2)


FOLLOWS = textwrap.dedent(
    """
    import pytest
    import shop_jobs
    from pytest_jobtrace.rq.instrumentation import RQInstrumentor

    PIDS = []


    @pytest.fixture
    def links():
        RQInstrumentor().instrument(use_span_links=True)
        yield
        RQInstrumentor().uninstrument()


    def _run(job_spans, worker):
        worker.queue().enqueue(shop_jobs.hello, 1)
        worker.settle()
        PIDS.append(worker.pid)
        (process,) = job_spans.find("process default")
        return process


    def test_default(job_spans, live_rq_worker):
        assert _run(job_spans, live_rq_worker).parent is not None


    def test_links(links, job_spans, live_rq_worker):
        process = _run(job_spans, live_rq_worker)
        assert process.parent is None and len(process.links) == 1


    def test_links_again(links, job_spans, live_rq_worker):
        assert _run(job_spans, live_rq_worker).parent is None


    def test_default_again(job_spans, live_rq_worker):
        assert _run(job_spans, live_rq_worker).parent is not None
        assert PIDS[0] != PIDS[1] == PIDS[2] != PIDS[3], PIDS
    """
)


def test_the_worker_instruments_as_the_test_process_does_and_restarts_when_that_changes(
    pytester: pytest.Pytester,
) -> None:
    make_project(pytester, test_follows=FOLLOWS)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)


LOGS = textwrap.dedent(
    """
    import shop_jobs


    def test_it(live_celery_worker):
        shop_jobs.add.delay(1, 2)
        live_celery_worker.settle()
        open("output", "w").write(live_celery_worker.output())
    """
)


@pytest.mark.parametrize("level", [None, "INFO"])
def test_the_celery_worker_logs_warnings_unless_told_otherwise(pytester: pytest.Pytester, level: str | None) -> None:
    make_project(pytester, test_logs=LOGS)
    flags = [] if level is None else [f"--jobtrace-celery-live-loglevel={level}"]
    result = pytester.runpytest_subprocess("-p", "no:randomly", *flags)
    result.assert_outcomes(passed=1)
    output = (pytester.path / "output").read_text()
    assert "pytest-jobtrace live worker ready" in output
    assert ("Task shop.add[" in output and "] received" in output) is (level == "INFO")


def test_an_unknown_celery_log_level_is_an_error_naming_the_levels(pytester: pytest.Pytester) -> None:
    make_project(pytester, test_logs=LOGS)
    result = pytester.runpytest_subprocess("--jobtrace-celery-live-loglevel=info")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--jobtrace-celery-live-loglevel: invalid choice: 'info' (choose from 'DEBUG', *"])
    result = pytester.runpytest_subprocess("-o", "jobtrace_celery_live_loglevel=info")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-jobtrace: ini key jobtrace_celery_live_loglevel *: celery_live_loglevel='info'; use one of *"]
    )


WRONG = textwrap.dedent(
    """
    import shop_jobs


    def test_wrong_child(job_spans, live_rq_worker):
        live_rq_worker.queue().enqueue(shop_jobs.hello, 1)
        live_rq_worker.settle()
        job_spans.assert_span_tree('''
        send default
        └── process default
            └── charge card
        ''')


    def test_never_delivered(job_spans, live_rq_worker):
        live_rq_worker.queue("nobody_listens").enqueue(shop_jobs.hello, 1)
        live_rq_worker.settle(timeout=1)
    """
)


def test_a_wrong_expectation_on_live_spans_fails_saying_what_differs(pytester: pytest.Pytester) -> None:
    make_project(pytester, test_wrong=WRONG)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_wrong_child*",
            "*charge card*",
            "*hello.work*",
            "*job_spans.wait(timeout=1) gave up after *: 1 of 1 job(s) have not finished; missing:",
            "*job 'shop_jobs.hello' (id *): never delivered: published at *, no attempt has arrived",
        ]
    )


START_FAILS = textwrap.dedent(
    """
    import os

    from celery import Celery

    if "JOBTRACE_LIVE_ENDPOINT" in os.environ:  # only in the worker process
        raise RuntimeError("the worker cannot reach the payments vault")
    app = Celery("broken", broker="memory://", set_as_current=False)
    """
)


def test_a_worker_that_fails_to_start_fails_the_test_with_its_output(pytester: pytest.Pytester) -> None:
    make_project(pytester, broken_app=START_FAILS, test_start="def test_it(live_celery_worker):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-o", "jobtrace_celery_live_app=broken_app:app")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*live_celery_worker: celery worker exited with code 1 before it was ready",
            "*its output (last * lines, *output.log):",
            "*RuntimeError: the worker cannot reach the payments vault",
        ]
    )


DIES = textwrap.dedent(
    """
    import shop_jobs


    def test_the_job_kills_its_worker(job_spans, {fixture}):
        {publish}
        {fixture}.settle(timeout=20)


    def test_the_next_test_gets_a_new_worker(job_spans, {fixture}):
        assert {fixture}.pid is not None
        {publish_ok}
        {fixture}.settle()
        assert len(job_spans.jobs()) == 1
    """
)


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_worker_that_dies_fails_the_test_with_its_output(pytester: pytest.Pytester, system: str) -> None:
    if system == "rq":
        publish = "live_rq_worker.queue().enqueue(shop_jobs.kill_the_worker)"
        publish_ok = "live_rq_worker.queue().enqueue(shop_jobs.hello, 1)"
    else:
        publish = "shop_jobs.kill_celery_worker.delay()"
        publish_ok = "shop_jobs.add.delay(1, 2)"
    source = DIES.format(fixture=SYSTEMS[system], publish=publish, publish_ok=publish_ok)
    make_project(pytester, test_dies=source)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    label = "rq worker" if system == "rq" else "celery worker"
    result.stdout.fnmatch_lines(
        [
            f"*job_spans.wait(): {SYSTEMS[system]}: {label} died (exit code -9)",
            "*its output (last * lines, *output.log):",
            "*when it stopped, 1 of 1 job(s) have not finished; missing:",
        ]
    )


XDIST = textwrap.dedent(
    """
    import pytest
    import shop_jobs


    @pytest.mark.parametrize("value", range(4))
    def test_each_sees_its_own_jobs(job_spans, live_rq_worker, live_celery_worker, value):
        for _ in range(value + 1):
            live_rq_worker.queue().enqueue(shop_jobs.hello, value)
            shop_jobs.add.delay(value, value)
        job_spans.wait(timeout=30)
        assert len(job_spans.jobs()) == 2 * (value + 1)
        assert {span.attributes.get("rq.job.args", "") for span in job_spans.find("process default")} is not None
    """
)


def test_under_xdist_each_worker_process_has_its_own_workers(pytester: pytest.Pytester) -> None:
    make_project(pytester, test_xdist=XDIST)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=4)


ISOLATION = textwrap.dedent(
    """
    import shop_jobs


    def test_only_my_jobs(job_spans, live_rq_worker, live_celery_worker):
        for n in range(20):
            live_rq_worker.queue().enqueue(shop_jobs.hello, n)
            shop_jobs.add.delay(n, n)
        job_spans.wait(timeout=60)
        processed = job_spans.find("process default") + job_spans.find("run/shop.add")
        assert len(processed) == 40
        assert len(live_rq_worker.queue()) == 0
    """
)


def test_two_sessions_at_once_never_take_each_others_jobs(pytester: pytest.Pytester) -> None:
    make_project(pytester, test_isolation=ISOLATION)
    env = {**os.environ, "PYTEST_ADDOPTS": "-p no:randomly -p no:cacheprovider"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", str(pytester.path / "test_isolation.py")],
            cwd=pytester.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=180)[0].decode() for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output
        assert "1 passed" in output


def test_live_modules_are_importable_without_pytest_in_the_worker() -> None:
    # The worker bootstraps import the toolkit's live_tracing, which must not need pytest's plugin state.
    code = "import pytest_jobtrace.adapters as a; print(a.live_tracing.ENDPOINT_ENV)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=Path.cwd())
    assert done.stdout.strip() == "JOBTRACE_LIVE_ENDPOINT", done.stderr


DIES_AFTER = textwrap.dedent(
    """
    import os
    import signal
    import time

    import shop_jobs


    def test_the_worker_dies_after_the_job(job_spans, live_rq_worker):
        live_rq_worker.queue().enqueue(shop_jobs.hello, 1)
        live_rq_worker.settle()
        os.kill(live_rq_worker.pid, signal.SIGKILL)  # after the wait: only the teardown can tell
        time.sleep(0.5)
    """
)


def test_a_worker_that_dies_between_waits_fails_the_test_at_teardown(pytester: pytest.Pytester) -> None:
    make_project(pytester, test_after=DIES_AFTER)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_the_worker_dies_after_the_job*",
            "live_rq_worker: rq worker died (exit code -9)",
            "  (it was running the jobs of this test; the next test starts a new one)",
        ]
    )


MODES = textwrap.dedent(
    """
    import pytest
    import shop_jobs

    from pytest_jobtrace import JobFailedError


    @pytest.mark.jobtrace_modes("in_process", "live")
    def test_one_body(job_spans, rq_runner, jobtrace_mode):
        rq_runner.queue().enqueue(shop_jobs.hello, 1)
        rq_runner.settle()
        job_spans.assert_span_tree("send default\\n└── process default\\n    └── hello.work", exact=True)
        print("MODE", jobtrace_mode, type(rq_runner.target).__name__)


    @pytest.mark.jobtrace_modes()
    def test_wrong(job_spans, celery_runner):
        shop_jobs.add.delay(1, 2)
        celery_runner.settle()
        job_spans.assert_span_tree("apply_async/shop.add\\n└── run/shop.add\\n    └── refund.work")


    @pytest.mark.jobtrace_modes()
    def test_a_failed_job(job_spans, rq_runner):
        rq_runner.queue().enqueue(shop_jobs.charge, 8)
        rq_runner.settle()


    @pytest.mark.jobtrace_modes()
    @pytest.mark.jobtrace(expect_failures=True)
    def test_an_expected_failure(job_spans, rq_runner):
        rq_runner.queue().enqueue(shop_jobs.charge, 9)
        rq_runner.settle()
        job_spans.assert_span_tree('job shop_jobs.charge [attempts 1, outcome "failed"]')
    """
)


def test_one_body_runs_in_both_modes_and_fails_alike(pytester: pytest.Pytester) -> None:
    make_project(pytester, test_modes=MODES)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-rA", "-v")
    result.stdout.fnmatch_lines(
        [
            "*test_one_body?in_process? PASSED*",
            "*test_one_body?live? PASSED*",
            "*test_wrong?in_process? FAILED*",
            "*test_wrong?live? FAILED*",
            "*test_a_failed_job?in_process? FAILED*",
            "*test_a_failed_job?live? FAILED*",
            "*test_an_expected_failure?in_process? PASSED*",
            "*test_an_expected_failure?live? PASSED*",
        ]
    )
    result.assert_outcomes(passed=4, failed=4)
    output = result.stdout.str()
    assert "MODE in_process RQRuntime" in output
    assert "MODE live LiveRQWorker" in output
    result.stdout.fnmatch_lines(
        [
            "*span tree does not match*refund.work*",
            "*live_rq_worker.settle(): 1 job failed:",
            "*  shop_jobs.charge id=* failed after 1 attempt: shop_jobs.PaymentError: card declined for order 8",
            "*To let jobs fail without raising, pass live_rq_worker.settle(expect_failures=True),*",
        ]
    )
    # once per mode in the failures' own sections (the short summary repeats it, in full where CI is set)
    raised = [line for line in output.splitlines() if line.startswith("E ") and "span tree does not match" in line]
    assert len(raised) == 2


def test_an_unknown_mode_is_an_error_naming_the_modes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.jobtrace_modes("live", "elsewhere")
        def test_it(rq_runner):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.jobtrace_modes('live', 'elsewhere'): give each of in_process, live*"])


RABBIT = textwrap.dedent(
    """
    import shop_jobs


    def test_on_rabbitmq(job_spans, live_celery_worker):
        assert live_celery_worker.broker_url.startswith("amqp://")
        shop_jobs.add.delay(1, 2)
        live_celery_worker.settle()
        (run,) = job_spans.find("run/shop.add")
        destination = run.attributes["messaging.destination"]
        assert destination.startswith("celery-") and len(destination) == len("celery-") + 8, destination
        open("queue", "w").write(destination)
    """
)


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_on_rabbitmq_each_run_consumes_queues_of_its_own_and_deletes_them(pytester: pytest.Pytester, pool: str) -> None:
    url = require_rabbitmq()
    make_project(pytester, test_rabbit=RABBIT)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", f"--jobtrace-celery-live-broker-url={url}", f"--jobtrace-celery-live-pool={pool}"
    )
    result.assert_outcomes(passed=1)
    from kombu.connection import Connection

    queue = (pytester.path / "queue").read_text()
    with Connection(url, connect_timeout=5) as connection, pytest.raises(Exception, match="NOT_FOUND"):
        connection.default_channel.queue_declare(queue, passive=True)  # deleted at the end of the session


EXTERNAL = textwrap.dedent(
    """
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import timedelta

    import shop_jobs

    URL = "{url}"


    def _elsewhere(module, *options, **env):
        # "elsewhere": a worker this test starts itself through pytest-jobtrace's bootstrap, told only the OTLP
        # exporter's own variable (the receiver's fixed address), as a compose file would tell it
        env = {{**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:{port}/v1/traces", **env}}
        env.pop("JOBTRACE_LIVE_ENDPOINT", None)
        return subprocess.Popen(
            [sys.executable, "-m", module, *options],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )


    def _stop(worker):
        # the worker and what it forked (RQ's scheduler process outlives a worker killed alone, and goes on
        # polling the test's database): stopped as a whole, and checked gone
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)
        deadline = time.monotonic() + 30
        while _group_alive(worker.pid):
            assert time.monotonic() < deadline, f"the worker elsewhere left processes behind (group {{worker.pid}})"
            time.sleep(0.05)


    def _group_alive(group):
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True


    def test_rq_workers_elsewhere(job_spans, jobtrace_receiver, live_rq_worker):
        assert live_rq_worker.pid is None  # nothing started
        assert jobtrace_receiver.endpoint == "http://127.0.0.1:{port}"
        queue = live_rq_worker.queue()
        queue.enqueue(shop_jobs.hello, 7)
        # dropped by RQ's scheduler, its data gone before it was due: only the worker can tell wait()
        expired = queue.enqueue_in(timedelta(seconds=2), shop_jobs.hello, 8, ttl=1)
        worker = _elsewhere("pytest_jobtrace.rq.live_worker", "--url", URL, "--with-scheduler", "default")
        try:
            live_rq_worker.settle(timeout=120)  # the worker starts within it, on a loaded machine too
        finally:
            _stop(worker)
        outcomes = {{job.id: job.outcome for job in job_spans.jobs()}}
        assert outcomes.pop(expired.id) == "pending"
        assert list(outcomes.values()) == ["succeeded"]
        job_spans.assert_span_tree(
            "send default\\n└── process default\\n    └── hello.work\\nsend default", exact=True
        )


    def test_celery_workers_elsewhere(job_spans, live_celery_worker):
        assert live_celery_worker.pid is None
        shop_jobs.app.conf.update(broker_url=URL, result_backend=URL)  # the app as the user configures it
        shop_jobs.add.delay(1, 1)
        # expired before it is due: the worker discards it, and only the worker can tell wait()
        expired = shop_jobs.add.apply_async((2, 2), countdown=1, expires=0.5)
        worker = _elsewhere(
            "pytest_jobtrace.celery.live_worker", "external_app:app", "--pool=solo", "--without-mingle",
            "--without-gossip", "--without-heartbeat", "--loglevel=WARNING", EXTERNAL_BROKER=URL,
        )
        try:
            live_celery_worker.settle(timeout=120)
        finally:
            _stop(worker)
        outcomes = {{job.id: job.outcome for job in job_spans.jobs()}}
        assert outcomes.pop(expired.id) == "pending"
        assert list(outcomes.values()) == ["succeeded"]
    """
)

EXTERNAL_APP = textwrap.dedent(
    """
    import os

    from shop_jobs import app

    app.conf.update(broker_url=os.environ["EXTERNAL_BROKER"], result_backend=os.environ["EXTERNAL_BROKER"])
    """
)


@pytest.mark.parametrize("system", ["rq", "celery"])
def test_workers_elsewhere_started_with_the_bootstrap_trace_and_report_what_no_span_shows(
    pytester: pytest.Pytester, system: str
) -> None:
    """jobtrace_live_workers = external: nothing starts, the receiver listens where told, and workers started
    through ``python -m pytest_jobtrace.<system>.live_worker`` with only the OTLP exporter's variable send
    their spans and their verdicts (a job dropped unrun: without the verdict, a timeout)."""
    import socket

    from pytest_jobtrace.adapters import SessionLease

    with socket.socket() as probe:  # a port free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lease = SessionLease("redis://127.0.0.1:6379/1-15", "test")
    try:
        make_project(pytester, test_external=EXTERNAL.format(port=port, url=lease.url), external_app=EXTERNAL_APP)
        result = pytester.runpytest_subprocess(
            "-p",
            "no:randomly",
            "-k",
            system,
            "--jobtrace-live-workers=external",
            f"--jobtrace-live-receiver=127.0.0.1:{port}",
            f"--jobtrace-rq-live-redis-url={lease.url}",
        )
        result.assert_outcomes(passed=1)
    finally:
        lease.release()


def test_a_fixed_receiver_address_shifts_by_the_xdist_worker_number() -> None:
    from pytest_jobtrace._live.options import receiver_address

    assert receiver_address("", None) == ("127.0.0.1", 0)
    assert receiver_address("0.0.0.0:4318", None) == ("0.0.0.0", 4318)
    assert receiver_address("0.0.0.0:4318", "gw1") == ("0.0.0.0", 4319)
    with pytest.raises(ValueError, match=r"jobtrace_live_receiver = '4318': write host:port, e.g. 0.0.0.0:4318"):
        receiver_address("4318", None)
