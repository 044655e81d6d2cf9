"""The adapter protocol, held to account through a third-party adapter defined here (``tinyq``).

It registers like a package would (a ``-p`` plugin that calls ``register_adapter`` on import), declares an
option, runs its jobs on the test's shared clock and raises the common errors.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from helpers import both_modes, run_pytest

from pytest_jobtrace import adapters
from pytest_jobtrace._jobs import registry

TINYQ = """
import dataclasses
import uuid

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from pytest_jobtrace.adapters import (
    EXPECT_FAILURES, AdapterOption, AdapterUnavailable, JobFailedError, JobSpanInfo, failures_message,
    job_name_matches, register_adapter,
)

tracer = trace.get_tracer("tinyq")
TASKS = {}
ACTIVE = []


def task(function):
    name = f"{function.__module__}.{function.__qualname__}"
    TASKS[name] = function

    def delay(*args, countdown=0):
        job_id = uuid.uuid4().hex
        attributes = _attrs("send", name, job_id)
        with tracer.start_as_current_span(f"send {name}", kind=SpanKind.PRODUCER, attributes=attributes):
            carrier = {}
            propagate.inject(carrier)
        ACTIVE[-1].queue.append(Pending(name, job_id, args, carrier, ACTIVE[-1].clock.now + countdown))

    function.delay = delay
    return function


def _attrs(role, name, job_id):
    return {"messaging.system": "tinyq", "tinyq.role": role, "tinyq.task": name, "messaging.message.id": job_id}


@dataclasses.dataclass
class Pending:
    name: str
    job_id: str
    args: tuple
    carrier: dict
    due: float
    attempts: int = 1
    exception: BaseException | None = None

    def describe(self):
        return f"{self.name.rpartition('.')[2]}{self.args!r}"


class Active:
    chain_error = None  # tinyq never raises JobChainError

    def __init__(self, context):
        self.clock, self.options, self.queue, self.done = context.clock, context.options, [], []
        self.label = context.options["tinyq_label"]
        ACTIVE.append(self)

    @property
    def pending(self):
        return sorted(self.queue, key=lambda p: p.due)

    def drain(self, max_jobs=None, *, only=None, expect_failures=None):
        ran = []
        for item in self.pending:
            if only is None or job_name_matches(only, item.name):
                self.queue.remove(item)
                ran.append(self._perform(item))
        failed = [item for item in ran if item.exception is not None]
        expected = self.options["expect_failures"] if expect_failures is None else expect_failures
        if failed and not expected:
            text = failures_message(failed, "tinyq_jobs.drain()", "pass drain(expect_failures=True)")
            raise JobFailedError(text, failed)
        return ran

    def perform_one(self, *, expect_failures=None):
        raise LookupError("tinyq: not supported")

    @property
    def failed(self):
        return [item for item in self.done if item.exception is not None]

    def close(self):
        ACTIVE.remove(self)

    def _perform(self, item):
        self.clock.advance_to(item.due)
        with tracer.start_as_current_span(
            f"process {item.name}", context=propagate.extract(item.carrier), kind=SpanKind.CONSUMER,
            attributes={**_attrs("process", item.name, item.job_id), "tinyq.label": self.label},
        ) as span:
            try:
                TASKS[item.name](*item.args)
            except Exception as error:
                item.exception = error
                span.set_status(StatusCode.ERROR)
        self.done.append(item)
        return item


class TinyqAdapter:
    name = "tinyq"
    fixture_name = "tinyq_jobs"
    extra = "tinyq"
    options = (
        AdapterOption(name="tinyq_label", help="a label tinyq puts on its process spans", default="plain", flag=True),
        EXPECT_FAILURES,
    )
    volatile_attributes = ()
    undrained_hint = None

    def recognise(self, span):
        attributes = span.attributes or {}
        if attributes.get("messaging.system") != "tinyq":
            return None
        job_id = attributes["messaging.message.id"]
        info = JobSpanInfo("tinyq", attributes["tinyq.role"], attributes["tinyq.task"], job_id, "q")
        if info.role == "send":
            return info
        failed = span.status.status_code is StatusCode.ERROR
        return dataclasses.replace(info, attempt=1, attempt_outcome="failed" if failed else "succeeded")

    def activate(self, context):
        if context.options["tinyq_label"] == "missing":
            try:
                import tinyq_system_that_is_not_installed  # noqa: F401
            except ImportError as error:
                raise AdapterUnavailable.missing(self, error) from error
        return Active(context)


register_adapter(TinyqAdapter())
"""


@pytest.fixture(autouse=True)
def _registry_restored() -> Iterator[None]:
    """In-process runs import tinyq_plugin, which registers an adapter for the whole process: undo it."""
    saved = dict(adapters.adapters())
    yield
    registry._registry.clear()
    registry._registry.update(saved)
    sys.modules.pop("tinyq_plugin", None)


def tinyq_project(pytester: pytest.Pytester, test: str) -> None:
    pytester.makepyfile(tinyq_plugin=TINYQ)
    pytester.syspathinsert()  # for `-p tinyq_plugin` in an in-process run
    pytester.makeini("[pytest]\naddopts = -p tinyq_plugin\nfilterwarnings =\n    always\n")
    pytester.makepyfile(test)


def test_adapter_option_is_in_help(pytester: pytest.Pytester) -> None:
    tinyq_project(pytester, "")
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--jobtrace-tinyq-label=TINYQ_LABEL*", "*a label tinyq puts on its process*"])
    result.stdout.fnmatch_lines(
        ["  jobtrace_tinyq_label (string):", "*a label tinyq puts on its process spans [[]tinyq]"]
    )
    markers = pytester.runpytest_subprocess("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.jobtrace(*, exact=False, *tinyq_label='plain'*"])


SHOP = """
    import pytest
    from opentelemetry import trace

    import tinyq_plugin
    from pytest_jobtrace import JobFailedError, assert_span_tree, job, span
    from pytest_jobtrace.builtin import Job

    tracer = trace.get_tracer(__name__)

    @tinyq_plugin.task
    def invoice(order_id):
        pass

    @tinyq_plugin.task
    def charge(order_id):
        raise ConnectionError("gateway down")

    class AuditJob(Job):
        wait = 10
        def perform(self, order_id):
            pass
"""


@both_modes
def test_option_from_flag_ini_and_marker_reaches_the_adapter(pytester: pytest.Pytester, run: str) -> None:
    tinyq_project(
        pytester,
        SHOP
        + """
    def test_default(job_spans, tinyq_jobs):
        invoice.delay(1)
        tinyq_jobs.drain()
        assert job_spans.find("process test_default.invoice")[0].attributes["tinyq.label"] == "from-flag"

    @pytest.mark.jobtrace(tinyq_label="from-marker")
    def test_marker(job_spans, tinyq_jobs):
        invoice.delay(1)
        tinyq_jobs.drain()
        assert job_spans.find("process test_marker.invoice")[0].attributes["tinyq.label"] == "from-marker"
    """.replace("test_default.", "test_option_from_flag_ini_and_marker_reaches_the_adapter.").replace(
            "test_marker.", "test_option_from_flag_ini_and_marker_reaches_the_adapter."
        ),
    )
    result = run_pytest(pytester, run, "--jobtrace-tinyq-label=from-flag")
    result.assert_outcomes(passed=2)


def test_bad_marker_value_names_the_keyword(pytester: pytest.Pytester) -> None:
    tinyq_project(
        pytester,
        SHOP
        + """
    @pytest.mark.jobtrace(tinyq_label=3)
    def test_number(tinyq_jobs):
        pass

    @pytest.mark.jobtrace(tinyq_lable="x")
    def test_typo(tinyq_jobs):
        pass

    @pytest.mark.jobtrace(expect_failures="false")
    def test_string_bool(tinyq_jobs):
        pass
    """,
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(
        [
            "*TypeError: @pytest.mark.jobtrace: tinyq_label takes a string, got 3",
            "*TypeError: @pytest.mark.jobtrace: unknown option(s) tinyq_lable; valid options: exact, ordered,"
            " unfinished, mode, propagation, span_naming, expect_failures, *tinyq_label",  # other adapters' between
            "*TypeError: @pytest.mark.jobtrace: expect_failures takes True or False, got 'false'",
        ]
    )


def test_bad_ini_value_is_reported_once_at_startup(pytester: pytest.Pytester) -> None:
    tinyq_project(pytester, SHOP + "\n    def test_x(tinyq_jobs):\n        pass\n")
    pytester.makeini("[pytest]\naddopts = -p tinyq_plugin\njobtrace_expect_failures = maybe\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: pytest-jobtrace: ini key jobtrace_expect_failures in *tox.ini: expect_failures takes True or False,"
            " got 'maybe'"
        ]
    )


def test_two_systems_share_the_clock_and_the_error(pytester: pytest.Pytester) -> None:
    tinyq_project(
        pytester,
        SHOP
        + """
    def test_mixed(job_spans, tinyq_jobs, builtin_jobs, job_clock):
        with tracer.start_as_current_span("POST /orders"):
            invoice.delay(1, countdown=30)
            AuditJob.perform_later(1)
        assert builtin_jobs.now == 0 and job_clock.now == 0
        tinyq_jobs.drain()
        assert job_clock.now == 30 and builtin_jobs.now == 30  # one clock for every adapter
        job_clock.advance(5)
        builtin_jobs.drain()
        assert builtin_jobs.now == 35
        assert_span_tree(span("POST /orders", children=[job("invoice", outcome="succeeded"), job("AuditJob")]))

    def test_common_error(tinyq_jobs):
        charge.delay(7)
        with pytest.raises(JobFailedError) as excinfo:
            tinyq_jobs.drain()
        assert str(excinfo.value).startswith("tinyq_jobs.drain(): 1 job failed:")
        assert "charge(7,) id=" in str(excinfo.value)
        assert isinstance(excinfo.value, AssertionError)

    def test_builtin_raises_the_same_class(builtin_jobs):
        from pytest_jobtrace.builtin import JobFailedError as BuiltinJobFailedError
        assert BuiltinJobFailedError is JobFailedError
    """,
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)


def test_hints_name_each_system_s_fixture(pytester: pytest.Pytester) -> None:
    tinyq_project(
        pytester,
        SHOP
        + """
    def test_undrained(job_spans, tinyq_jobs, builtin_jobs):
        with tracer.start_as_current_span("POST /orders"):
            invoice.delay(1)
            AuditJob.perform_later(1)
        assert_span_tree(span("POST /orders", children=[job("invoice")]))
    """,
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*note: enqueued but never processed: 'invoice'; drain the queue first (tinyq_jobs.drain())",
            "*note: enqueued but never processed: 'AuditJob'; drain the queue first (builtin_jobs.drain())",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*1 job(s) were enqueued but never performed: invoice(1,). Call tinyq_jobs.drain() before asserting."]
    )
    result.stdout.fnmatch_lines(
        [
            "*1 job(s) were enqueued but never performed: AuditJob(1). Call builtin_jobs.drain() before asserting,"
            " or use @pytest.mark.jobtrace(mode='inline')."
        ]
    )


def test_drain_only_leaves_the_others_pending(pytester: pytest.Pytester) -> None:
    tinyq_project(
        pytester,
        SHOP
        + """
    class ReceiptJob(Job):
        def perform(self, order_id):
            pass

    def test_only(builtin_jobs):
        AuditJob.perform_later(1)
        ReceiptJob.perform_later(2)
        AuditJob.perform_later(3)
        runs = builtin_jobs.drain(only=AuditJob)
        assert [run.describe() for run in runs] == ["AuditJob(1)", "AuditJob(3)"]
        assert [p.describe() for p in builtin_jobs.pending] == ["ReceiptJob(2)"]
        assert [p.name for p in builtin_jobs.pending] == [f"{__name__}.ReceiptJob"]
        builtin_jobs.drain(only=["ReceiptJob"])
        assert builtin_jobs.pending == []

    def test_only_names_nothing_pending(builtin_jobs):
        AuditJob.perform_later(1)
        builtin_jobs.drain(only="AuditJobs")
    """,
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    result.stdout.fnmatch_lines(
        ["E*ValueError: builtin_jobs.drain(only='AuditJobs'): no pending job matches; pending: AuditJob(1)"]
    )


def test_missing_job_system_names_the_extra(pytester: pytest.Pytester) -> None:
    tinyq_project(
        pytester,
        SHOP
        + """
    @pytest.mark.jobtrace(tinyq_label="missing")
    def test_x(tinyq_jobs):
        pass
    """,
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*AdapterUnavailable: the tinyq_jobs fixture needs tinyq_system_that_is_not_installed, which is not"
            ' installed: pip install "pytest-jobtrace[[]tinyq]"'
        ]
    )


def test_conflicting_option_declarations_are_refused(pytester: pytest.Pytester) -> None:
    tinyq_project(pytester, "def test_x():\n    pass\n")
    pytester.makepyfile(
        clash_plugin="""
        import tinyq_plugin
        from pytest_jobtrace.adapters import AdapterOption, register_adapter

        class Clash(tinyq_plugin.TinyqAdapter):
            name = "clash"
            fixture_name = "clash_jobs"
            options = (AdapterOption(name="mode", help="not the built-in one", default="fast"),)

        register_adapter(Clash())
        """
    )
    result = pytester.runpytest_subprocess("-p", "clash_plugin")
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        ["*the clash adapter declares an option 'mode' that differs from the one builtin declares; rename one*"]
    )


class _Volatile:
    """An adapter declaring volatile keys, exact and as a glob; it recognises and runs nothing."""

    name = "volatileq"
    fixture_name = "volatileq_jobs"
    extra = None
    options = ()
    volatile_attributes = ("volatileq.ticket", "volatileq.host.*")
    undrained_hint = None

    def recognise(self, span: object) -> None:
        return None

    def activate(self, context: object) -> object:
        raise NotImplementedError


def test_an_adapter_s_volatile_attributes_are_written_as_stars() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pytest_jobtrace import render

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    attributes = {"volatileq.ticket": "t-81", "volatileq.host.name": "w7", "volatileq.tickets": 2}
    provider.get_tracer("shop").start_span("work", attributes=attributes).end()
    before = render(exporter, details=True)
    assert before == 'work {volatileq.host.name="w7", volatileq.ticket="t-81", volatileq.tickets=2}'
    adapters.register_adapter(_Volatile())  # type: ignore[arg-type]
    after = render(exporter, details=True)
    assert after == "work {volatileq.host.name=*, volatileq.ticket=*, volatileq.tickets=2}"


def test_an_adapter_lacking_a_protocol_member_is_refused_naming_it() -> None:
    class NoHint:  # an adapter written before undrained_hint and volatile_attributes were declared
        name = "nohint"
        fixture_name = "nohint_jobs"
        extra = None
        options = ()
        recognise = _Volatile.recognise
        activate = _Volatile.activate

    with pytest.raises(
        TypeError,
        match=r"it lacks volatile_attributes, undrained_hint \(an adapter has name, .*, volatile_attributes and "
        r"undrained_hint; volatile_attributes = \(\) and undrained_hint = None when there are none\)",
    ):
        adapters.register_adapter(NoHint())  # type: ignore[arg-type]
    assert "nohint" not in adapters.adapters()


def test_an_active_adapter_lacking_chain_error_is_refused_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        nochain_plugin="""
        from pytest_jobtrace.adapters import register_adapter

        class Active:
            pending = ()
            failed = ()

            def drain(self, max_jobs=None, *, only=None, expect_failures=None):
                return []

            def perform_one(self, *, expect_failures=None):
                raise LookupError

            def close(self):
                pass

        class NoChain:
            name = "nochain"
            fixture_name = "nochain_jobs"
            extra = None
            options = ()
            volatile_attributes = ()
            undrained_hint = None

            def recognise(self, span):
                return None

            def activate(self, context):
                return Active()

        register_adapter(NoChain())
        """
    )
    pytester.syspathinsert()
    pytester.makepyfile("def test_x(nochain_jobs):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "nochain_plugin")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*TypeError: the nochain adapter's activate() returned <nochain_plugin.Active object at *>, which lacks"
            " chain_error (an active adapter has pending, drain(), perform_one(), failed, chain_error and close();"
            " set chain_error = None until a drain raises JobChainError)"
        ]
    )
