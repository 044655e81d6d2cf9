"""Live mode as users run it: a worker process continues the test's trace and sends its spans over OTLP."""

from __future__ import annotations

import pytest

WORKER = r"""
import json, sys
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

endpoint, carrier, task, task_id, fail = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
provider = TracerProvider(resource=Resource({"service.name": "worker"}))
exporter = OTLPSpanExporter(endpoint=endpoint, compression=Compression.Gzip)
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("worker")
attributes = {"celery.action": "run", "celery.task_name": task, "messaging.message.id": task_id}
attributes["celery.state"] = "FAILURE" if fail == "fail" else "SUCCESS"
context = TraceContextTextMapPropagator().extract(carrier)
with tracer.start_as_current_span(f"run/{task}", context=context, kind=SpanKind.CONSUMER, attributes=attributes):
    with tracer.start_as_current_span("charge card") as span:
        if fail == "fail":
            span.set_status(Status(StatusCode.ERROR, "card declined"))
provider.shutdown()  # exports what is left and returns once it is sent
"""

TESTS = '''
import json, subprocess, sys, uuid

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

WORKER = {worker!r}
tracer = trace.get_tracer("shop")


def publish(receiver, task, fail="ok"):
    """Publish a Celery-shaped job and start a worker process that runs it, continuing the trace."""
    task_id = uuid.uuid4().hex
    attributes = {{"celery.action": "apply_async", "celery.task_name": task, "messaging.message.id": task_id}}
    with tracer.start_as_current_span(f"apply_async/{{task}}", kind=SpanKind.PRODUCER, attributes=attributes):
        carrier = {{}}
        TraceContextTextMapPropagator().inject(carrier)
    args = [receiver.endpoint + "/v1/traces", json.dumps(carrier), task, task_id, fail]
    return subprocess.Popen([sys.executable, "-c", WORKER, *args])


EXPECTED = """
checkout
└── apply_async/shop.{{name}}
    └── run/shop.{{name}}
        └── charge card
"""


@pytest.mark.parametrize("name", ["charge", "refund"])
def test_the_joined_tree(job_spans, jobtrace_receiver, name):
    with tracer.start_as_current_span("checkout"):
        worker = publish(jobtrace_receiver, f"shop.{{name}}")
    job_spans.wait(timeout=60)
    job_spans.assert_span_tree(EXPECTED.format(name=name), exact=True)
    assert job_spans.job(f"shop.{{name}}").outcome == "succeeded"
    assert worker.wait(timeout=60) == 0


def test_a_wrong_expectation(job_spans, jobtrace_receiver):
    with tracer.start_as_current_span("checkout"):
        worker = publish(jobtrace_receiver, "shop.charge", fail="fail")
    job_spans.wait(timeout=60)
    worker.wait(timeout=60)
    job_spans.assert_span_tree(
        """
        checkout
        └── apply_async/shop.charge
            └── run/shop.charge
                └── charge card [OK]
        """
    )
'''


@pytest.fixture(name="project")
def _project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_live=TESTS.format(worker=WORKER))
    return pytester


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_worker_process_continues_the_tests_trace(project: pytest.Pytester, xdist: list[str]) -> None:
    result = project.runpytest_subprocess(*xdist)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_a_wrong_expectation*"])
    result.stdout.no_fnmatch_line("*JobtraceWarning*")


def test_the_wrong_expectation_fails_saying_where(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-k", "wrong")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(
        [
            "E   *SpanTreeMismatch: span tree does not match: at job 'charge' > 'charge card': status: expected OK,"
            " got ERROR ('card declined')",
            "E   *captured (4 spans in 1 trace):",
            "E   *  checkout",
            "E   *  └── apply_async/shop.charge [[]producer]",
            "E   *      └── run/shop.charge [[]consumer]",
            'E   *          └── charge card [[]ERROR "card declined"]    <-- status: expected OK, got ERROR'
            " ('card declined')",
        ]
    )


LATE = """
import json, subprocess, sys

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

WORKER = {worker!r}
tracer = trace.get_tracer("shop")
workers = []


def test_forgets_to_wait(job_spans, jobtrace_receiver):
    with tracer.start_as_current_span("apply_async/shop.charge"):
        carrier = {{}}
        TraceContextTextMapPropagator().inject(carrier)
    args = [jobtrace_receiver.endpoint + "/v1/traces", json.dumps(carrier), "shop.charge", "t1", "ok"]
    workers.append(subprocess.Popen([sys.executable, "-c", WORKER, *args]))


def test_next(job_spans):
    assert workers[0].wait(timeout=60) == 0  # its spans were received (the worker exits once they are sent)
    assert job_spans.spans == []
"""


def test_a_span_for_a_finished_test_is_reported_naming_it_and_given_to_no_other(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_late=LATE.format(worker=WORKER))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*JobtraceWarning: span 'charge card' of test_late.py::test_forgets_to_wait was received over OTLP during"
            " test_late.py::test_next, after that test had finished; it is in no test's capture. Call"
            " job_spans.wait() in the test so that it waits for its jobs' spans.",
        ]
    )


STRAY = """
import json, urllib.request


def test_a_stray_span(jobtrace_receiver, pytestconfig):
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "heartbeat"}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    request = urllib.request.Request(
        jobtrace_receiver.endpoint + "/v1/traces", body, {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    # not PYTEST_XDIST_WORKER: this run inherits it from an outer run under -n 2
    worker = getattr(pytestconfig, "workerinput", {}).get("workerid", "main")
    with open(f"endpoint-{worker}.txt", "w") as file:
        file.write(jobtrace_receiver.endpoint)


def test_another(jobtrace_receiver, pytestconfig):
    test_a_stray_span(jobtrace_receiver, pytestconfig)
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_spans_of_no_tests_trace_are_listed_at_the_end(pytester: pytest.Pytester, xdist: list[str]) -> None:
    pytester.makepyfile(test_stray=STRAY)
    result = pytester.runpytest_subprocess(*xdist, "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*= jobtrace: spans that ended after their test =*",
            "'heartbeat' was received over OTLP but belongs to no test's trace",
            "'heartbeat' was received over OTLP but belongs to no test's trace",
        ]
    )
    files = sorted(pytester.path.glob("endpoint-*.txt"))
    assert [path.name.startswith("endpoint-gw") for path in files] == [bool(xdist)] * len(files)
    assert len({path.read_text() for path in files}) == len(files)  # each xdist worker has a receiver of its own
