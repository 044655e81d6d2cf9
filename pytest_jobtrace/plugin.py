"""pytest entry point: options, the jobtrace marker, the job_spans fixture and span hygiene checks."""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.trace import TracerProvider

from pytest_jobtrace import adapters as _adapters
from pytest_jobtrace._core import capture as _capture
from pytest_jobtrace._core import options as _options
from pytest_jobtrace._core.capture import ROUTER, CaptureSink
from pytest_jobtrace._core.clock import VirtualClock
from pytest_jobtrace._core.hygiene import report_leaks, report_unfinished, warn_at
from pytest_jobtrace._core.options import JobtraceOptions, OptionSet, options_for
from pytest_jobtrace._jobs import registry as _registry
from pytest_jobtrace._jobs.failures import TB_CHOICES, WorkerFailureLogs, internal_packages, trim_job_failures
from pytest_jobtrace._jobs.jobspans import JobSpans, _current
from pytest_jobtrace._jobs.registry import checked_activation
from pytest_jobtrace._jobs.runner import pending_line
from pytest_jobtrace._live.modes import MARKER as MODES_MARKER
from pytest_jobtrace._live.modes import MARKER_HELP as MODES_MARKER_HELP
from pytest_jobtrace._report import add_options as add_report_options
from pytest_jobtrace._report import configure as configure_report

if TYPE_CHECKING:
    from pytest_jobtrace._live.receiver import OTLPReceiver


def _option_set() -> OptionSet:
    """The core's options and those of every adapter known when pytest starts."""
    return OptionSet((adapter.name, adapter.options) for adapter in _adapters.adapters().values())


def pytest_addoption(parser: pytest.Parser) -> None:
    _options.add_options(parser, _option_set())
    add_report_options(parser)  # reports (issue 11): --jobtrace-show, --jobtrace-html, --jobtrace-export


_INSTALLED = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before conftests are imported, so a TracerProvider a conftest builds is attached too.
    _install(early_config)


@pytest.hookimpl(trylast=True)  # after conftests' pytest_configure, which may register adapters
def pytest_configure(config: pytest.Config) -> None:
    options = _option_set()
    config.addinivalue_line("markers", _options.marker_help(options))
    config.addinivalue_line("markers", MODES_MARKER_HELP)
    _options.configure(config, options)
    _install(config)  # when the initial-conftest hook did not run (a plugin registered late)
    config.pluginmanager.register(_adapter_fixtures(), "jobtrace-adapter-fixtures")
    configure_report(config)  # registers the report hooks (pytest_jobtrace/_report/hooks.py) only when asked for
    _configure_failures(config)


# The packages whose frames and log records a failed job's report leaves out (None: --jobtrace-tb=full).
_TRIMMED = pytest.StashKey[tuple[str, ...] | None]()


def _configure_failures(config: pytest.Config) -> None:
    tb = config.getoption("jobtrace_tb", None) or config.getini("jobtrace_tb") or "short"
    if tb not in TB_CHOICES:
        raise pytest.UsageError(f"jobtrace_tb = {tb!r}: use one of {', '.join(TB_CHOICES)}")
    packages = internal_packages() if tb == "short" else None
    config.stash[_TRIMMED] = packages
    logging_plugin = config.pluginmanager.get_plugin("logging-plugin")
    report_handler = getattr(logging_plugin, "report_handler", None)  # not caplog's: caplog sees every record
    if packages is not None and report_handler is not None:
        report_handler.addFilter(WorkerFailureLogs(packages))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    packages = item.config.stash.get(_TRIMMED, None)
    if packages is not None and call.excinfo is not None:
        trim_job_failures(call.excinfo.value, packages)  # before pytest renders the failure
    return (yield)


def _install(config: pytest.Config) -> None:
    if not config.stash.get(_INSTALLED, False):
        config.stash[_INSTALLED] = True
        _capture.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_INSTALLED, False):
        config.stash[_INSTALLED] = False
        _capture.uninstall()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.jobtrace_modes(...)``: the test once per mode, as ``jobtrace_mode``'s parameter."""
    marker = metafunc.definition.get_closest_marker(MODES_MARKER)
    if marker is None:
        return
    from pytest_jobtrace._live.modes import modes_of

    modes = modes_of(marker)
    if "jobtrace_mode" not in metafunc.fixturenames:
        metafunc.fixturenames.append("jobtrace_mode")
    metafunc.parametrize("jobtrace_mode", modes, indirect=True, ids=modes)


@pytest.fixture(name="jobtrace_mode")
def _jobtrace_mode(request: pytest.FixtureRequest) -> str:
    """``"in_process"`` or ``"live"``: the mode ``@pytest.mark.jobtrace_modes`` runs this test in
    (``"in_process"`` without the marker)."""
    return str(getattr(request, "param", "in_process"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixturenames = getattr(item, "fixturenames", None)
        if fixturenames is None:
            continue
        if "job_spans" in fixturenames:
            # Set up first and torn down last, so that whatever order the test lists its fixtures in,
            # every span its function fixtures start and end is captured.
            fixturenames.remove("job_spans")
            fixturenames.insert(0, "job_spans")
        elif item.get_closest_marker("jobtrace"):
            fixturenames.insert(0, "job_spans")


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> Generator[None, object, object]:
    # Spans a class, module or session fixture starts belong to no test (see _capture.SpanRouter.on_start).
    __tracebackhide__ = True  # errors in any fixture's setup pass through here
    if fixturedef.scope == "function":
        return (yield)
    ROUTER.shared_setup += 1
    try:
        return (yield)
    finally:
        ROUTER.shared_setup -= 1


@pytest.fixture(name="jobtrace_options")
def _jobtrace_options(request: pytest.FixtureRequest) -> JobtraceOptions:
    """The pytest-jobtrace options in force for this test (ini, command line, then the marker)."""
    return options_for(request.node)


# The test being run. job_spans reads it here rather than asking for `request`, and its options
# directly rather than through the jobtrace_options fixture: each of those costs pytest 20-30
# microseconds a test, more than the capture itself (see benchmarks/run.py).
_running: list[pytest.Item] = []


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    _running.append(item)
    previous, ROUTER.test_label = ROUTER.test_label, item.nodeid
    try:
        return (yield)
    finally:
        _running.pop()
        ROUTER.test_label = previous


@pytest.fixture(name="job_spans")
def _job_spans() -> Iterator[JobSpans]:
    """Capture every span that ends during this test; assert on them with ``assert_span_tree``."""
    __tracebackhide__ = True
    item = _running[-1]
    options = options_for(item)
    _capture.ensure_global_provider()
    sink = CaptureSink(item.nodeid)
    capture = JobSpans(sink, exact=options.exact, ordered=options.ordered)
    ROUTER.open(sink)
    _current.append(capture)
    # Also when asked for through request.getfixturevalue(): report hooks find the capture in funcargs.
    getattr(item, "funcargs", {}).setdefault("job_spans", capture)
    try:
        yield capture
    finally:
        _current.remove(capture)
        ROUTER.close(sink)
    report_unfinished(item, sink, options.unfinished)


@pytest.fixture(name="jobtrace_receiver", scope="session")
def _jobtrace_receiver(pytestconfig: pytest.Config) -> OTLPReceiver:
    """The OTLP/HTTP receiver of this process (started on first use): point workers' exporters at
    ``jobtrace_receiver.endpoint``; their spans join the capture of the test whose trace they continue."""
    from pytest_jobtrace._live.receiver import session_receiver  # on first use: http.server takes a while to import

    return session_receiver(pytestconfig)


@pytest.fixture(name="job_clock")
def _job_clock() -> VirtualClock:
    """This test's virtual clock, shared by every job adapter: countdowns, retries and schedules run on it."""
    clock = VirtualClock()
    if _running:  # also when asked for through request.getfixturevalue(): --jobtrace-show reads its timeline
        getattr(_running[-1], "funcargs", {}).setdefault("job_clock", clock)
    return clock


@pytest.fixture(name="jobtrace_tracer_provider")
def _jobtrace_tracer_provider() -> TracerProvider | None:
    """The tracer provider job adapters send their own spans to: None, the global one.

    Override it (in a conftest or a test module) to run a test's jobs under the application's provider,
    with its sampler and resource, as production would.
    """
    return None


def _adapter_fixtures() -> ModuleType:
    """A plugin module holding one fixture per known adapter, named as the adapter says."""
    module = ModuleType("pytest_jobtrace.adapter_fixtures")
    for adapter in _adapters.adapters().values():
        setattr(module, f"_fixture_{adapter.name}", _adapter_fixture(adapter))
        if callable(getattr(adapter, "live_workers", None)):
            setattr(module, f"_live_fixture_{adapter.name}", _live_fixture(adapter))
            setattr(module, f"_runner_fixture_{adapter.name}", _runner_fixture(adapter))
    return module


def _runner_fixture(adapter: _adapters.JobAdapter) -> Callable[..., Any]:
    live_name: str = adapter.live_fixture_name  # type: ignore[attr-defined]

    def fixture(request: pytest.FixtureRequest, jobtrace_mode: str) -> Any:
        from pytest_jobtrace._live.modes import ModeRunner

        name = live_name if jobtrace_mode == "live" else adapter.fixture_name
        return ModeRunner(jobtrace_mode, request.getfixturevalue(name))

    fixture.__doc__ = (
        f"{adapter.fixture_name} or {live_name}, as the test's jobtrace_mode says (see "
        "@pytest.mark.jobtrace_modes); settle() drains in-process and waits live."
    )
    return pytest.fixture(name=f"{adapter.name}_runner")(fixture)


def _live_fixture(adapter: _adapters.JobAdapter) -> Callable[..., Any]:
    make: Callable[[pytest.Config], Any] = adapter.live_workers  # type: ignore[attr-defined]
    name: str = adapter.live_fixture_name  # type: ignore[attr-defined]

    def fixture(request: pytest.FixtureRequest, job_spans: JobSpans) -> Iterator[Any]:
        __tracebackhide__ = True
        from pytest_jobtrace._live.workers import live_fixture, session_workers

        yield from live_fixture(request, session_workers(request.config, adapter.name, make))

    fixture.__doc__ = (
        f"A live {adapter.name} worker process (started once per test process, reused by every test): publish "
        "through the real app, then job_spans.wait() for the workers' spans. See docs/live.md."
    )
    return pytest.fixture(name=name)(fixture)


def _adapter_fixture(adapter: _adapters.JobAdapter) -> Callable[..., Any]:
    def fixture(
        request: pytest.FixtureRequest,
        job_spans: JobSpans,
        job_clock: VirtualClock,
        jobtrace_options: JobtraceOptions,
        jobtrace_tracer_provider: TracerProvider | None,
    ) -> Iterator[_adapters.ActiveAdapter]:
        __tracebackhide__ = True
        context = _adapters.AdapterContext(jobtrace_options, job_clock, request, jobtrace_tracer_provider)
        active = checked_activation(adapter, adapter.activate(context))
        _registry.activated(adapter.name, active)  # failure notes ask it where a job went
        try:
            yield active
        finally:
            _registry.activated(adapter.name, None)
            active.close()
        if active.chain_error is None:  # after a JobChainError, what is pending was reported
            report_undrained(request.node, adapter, active.pending, job_clock)

    fixture.__doc__ = (
        f"Run {adapter.name} jobs in-process for this test; drain them with {adapter.fixture_name}.drain()."
    )
    return pytest.fixture(name=adapter.fixture_name)(fixture)


def report_undrained(
    item: pytest.Item,
    adapter: _adapters.JobAdapter,
    pending: Sequence[_adapters.PendingItem],
    clock: VirtualClock,
) -> None:
    """Warn about the jobs an adapter still holds at teardown, naming its fixture's drain() (and when each
    is due, on the test's clock)."""
    if pending:
        shown = ", ".join(pending_line(p, clock) for p in pending[:10])
        more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
        extra = adapter.undrained_hint
        warn_at(
            item,
            f"{len(pending)} job(s) were enqueued but never performed: {shown}{more}. "
            f"Call {adapter.fixture_name}.drain() before asserting{', ' + extra if extra else ''}.",
        )


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    report_leaks(item, ROUTER.take_leaks())


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # After other plugins' session teardown (executors shut down there end spans too). An xdist worker
    # has no terminal: hand what leaked after its last test to the controller.
    workers = sys.modules.get("pytest_jobtrace._live.workers")
    if workers is not None:  # stopped and reaped before the receiver stops: their last spans still arrive
        workers.stop_session_workers(session.config)
    live = sys.modules.get("pytest_jobtrace._live.receiver")
    if live is not None:  # spans no test owned are reported now, before the summary
        live.stop_session_receiver(session.config)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["jobtrace_leaks"] = [(leak.name, leak.started_in, leak.received) for leak in ROUTER.take_leaks()]


# Spans xdist workers saw end after their last test, gathered on the controller for its summary.
_late_leaks: list[tuple[str, str, bool]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    _late_leaks.extend(getattr(node, "workeroutput", {}).get("jobtrace_leaks", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    late = [(leak.name, leak.started_in, leak.received) for leak in ROUTER.take_leaks()] + _late_leaks
    _late_leaks.clear()
    if late:
        terminalreporter.section("jobtrace: spans that ended after their test")
        for name, started_in, received in late:
            if not received:
                terminalreporter.line(f"{name!r} started in {started_in} but ended after the last test had finished")
            elif started_in:
                terminalreporter.line(
                    f"{name!r} of {started_in} was received over OTLP after the last test had finished"
                )
            else:
                terminalreporter.line(f"{name!r} was received over OTLP but belongs to no test's trace")
