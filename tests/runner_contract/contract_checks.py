"""The runner contract (docs/adapters.md, "Running jobs for a test"), checked on every job system.

Written into the pytester project as test_contract.py by tests/test_runner_contract.py: each test takes
`kit` (parametrised over builtin, celery, rq and minique) and checks whole message texts.
"""

import importlib
import re

import pytest

from pytest_jobtrace import JobChainError, JobFailedError

ONLY_MESSAGE = "{L}.drain(): only must be a job name, a job function or class, a pattern, or a list of them; got {got}"
MAX_JOBS_MESSAGE = "{L}.drain(): max_jobs must be a positive int or None; got {got}"
EXPECT_MESSAGE = "{L}.{verb}(): expect_failures must be True, False or None; got {got}"
INSIDE_MESSAGE = (
    "{L}.{verb}() was called from inside a job it is performing ({name}); a worker runs one job at a time:"
    " enqueue from the job and drain from the test"
)


def failed_message(where, remedy, describe, job_id, attempts, reason):
    plural = "" if attempts == 1 else "s"
    return "\n".join(
        [
            f"{where}: 1 job failed:",
            f"  {describe} id={job_id} failed after {attempts} attempt{plural}: {reason}",
            f"Their spans were recorded. To let jobs fail without raising, {remedy}, or mark the test",
            "@pytest.mark.jobtrace(expect_failures=True).",
        ]
    )


# -- sanity: the kit's jobs really enqueue, run, chain and fail on each system (pass today) ----------------


def test_sanity_remind_runs(kit):
    kit.enqueue("remind", 1)
    kit.enqueue("remind", 2)
    assert kit.pending_names() == [kit.full_name("remind")] * 2
    kit.runner.drain()
    assert kit.log() == [("remind", 1), ("remind", 2)]
    assert kit.pending() == []


def test_sanity_chain_enqueues_the_next(kit):
    kit.enqueue("chain", 1, 4)  # chain(n, last) stops at last; chain(n) never does
    kit.runner.drain()
    assert kit.log() == [("chain", 1), ("chain", 2), ("chain", 3), ("chain", 4)]
    assert kit.pending() == []


def test_sanity_boom_fails(kit):
    kit.enqueue("boom")
    with pytest.raises(JobFailedError) as excinfo:
        kit.runner.drain()
    assert kit.log() == [("boom", None)]
    assert type(excinfo.value.__cause__) is ValueError
    assert str(excinfo.value.__cause__) == "boom"
    assert [str(run.exception) for run in kit.runner.failed] == ["boom"]


def test_sanity_flaky_is_retried(retrying_kit):
    kit = retrying_kit
    kit.enqueue("flaky")
    kit.runner.drain(expect_failures=True)
    assert kit.log() == [("flaky", None), ("flaky", None)]
    assert [run.attempts for run in kit.runner.failed] == [2]


# -- the verbs every runner offers ---------------------------------------------------------------------


def test_verb_chain_error_is_none_before_any(kit):
    assert kit.runner.chain_error is None


def test_verb_undrained_hint_is_text_or_none(kit):
    hint = kit.undrained_hint  # the adapter declares it (the protocol's JobAdapter.undrained_hint)
    assert hint is None or isinstance(hint, str)


def test_verb_clock_is_the_tests(kit, job_clock):
    assert kit.runner.clock is job_clock


def test_verb_performed_and_failed_list_records(kit):
    kit.enqueue("remind", 1)
    kit.enqueue("boom")
    ids = [kit.item_id(item) for item in kit.runner.pending]
    records = kit.runner.drain(expect_failures=True)
    assert [record.job_id for record in kit.runner.performed] == ids
    assert list(records) == list(kit.runner.performed)
    assert [record.job_id for record in kit.runner.failed] == ids[1:]


# -- argument checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "got"), [("5", "'5' (str)"), (True, "True (bool)"), (1.5, "1.5 (float)")])
def test_max_jobs_of_a_wrong_type(kit, value, got):
    kit.enqueue("remind", 1)
    with pytest.raises(TypeError) as excinfo:
        kit.runner.drain(max_jobs=value)
    assert str(excinfo.value) == MAX_JOBS_MESSAGE.format(L=kit.label, got=got)
    assert kit.log() == []
    kit.runner.drain()


@pytest.mark.parametrize("value", [0, -1])
def test_max_jobs_not_positive(kit, value):
    kit.enqueue("remind", 1)
    with pytest.raises(ValueError) as excinfo:  # noqa: PT011 (the text is checked whole below)
        kit.runner.drain(max_jobs=value)
    assert str(excinfo.value) == MAX_JOBS_MESSAGE.format(L=kit.label, got=value)
    assert kit.log() == []
    kit.runner.drain()


@pytest.mark.parametrize("verb", ["drain", "perform_one"])
@pytest.mark.parametrize(("value", "got"), [("false", "'false' (str)"), (1, "1 (int)")])
def test_expect_failures_of_a_wrong_type(kit, verb, value, got):
    kit.enqueue("boom")
    with pytest.raises(TypeError) as excinfo:
        getattr(kit.runner, verb)(expect_failures=value)
    assert str(excinfo.value) == EXPECT_MESSAGE.format(L=kit.label, verb=verb, got=got)
    assert kit.log() == []
    kit.runner.drain(expect_failures=True)


@pytest.mark.parametrize(
    ("only", "got"),
    [
        (5, "5 (int)"),
        (1.5, "1.5 (float)"),
        (b"remind", "b'remind' (bytes)"),
        ({}, "{} (dict)"),
        (["remind", None], "None (NoneType)"),
    ],
    ids=["int", "float", "bytes", "dict", "None-in-list"],
)
def test_only_of_a_wrong_type(kit, only, got):
    kit.enqueue("remind", 1)
    with pytest.raises(TypeError) as excinfo:
        kit.runner.drain(only=only)
    assert str(excinfo.value) == ONLY_MESSAGE.format(L=kit.label, got=got)
    assert kit.log() == []
    kit.runner.drain()


def test_only_an_empty_list(kit):
    kit.enqueue("remind", 1)
    with pytest.raises(ValueError) as excinfo:  # noqa: PT011
        kit.runner.drain(only=[])
    assert str(excinfo.value) == f"{kit.label}.drain(only=[]): names no job"
    assert kit.log() == []
    kit.runner.drain()


# -- selection: drain(only=...) -------------------------------------------------------------------------

ONLY_FORMS = {
    "short": lambda kit: "remind",
    "dotted": lambda kit: kit.full_name("remind"),
    "object": lambda kit: kit.job("remind"),
    "regex": lambda kit: re.compile(r"rem.nd"),
    "list": lambda kit: [kit.job("remind"), kit.full_name("remind")],
}


@pytest.mark.parametrize("form", ONLY_FORMS)
def test_only_performs_the_named_jobs_and_leaves_the_others(kit, form, expect_teardown_warnings):
    kit.enqueue("chain", 1)
    kit.enqueue("remind", 1)
    kit.enqueue("remind", 2)
    chain_item = kit.pending()[0]
    kit.runner.drain(only=ONLY_FORMS[form](kit))
    assert kit.log() == [("remind", 1), ("remind", 2)]
    assert kit.pending() == [chain_item]
    expect_teardown_warnings.append(kit.undrained_warning())


def test_only_leaves_the_jobs_they_enqueue_pending(kit, expect_teardown_warnings):
    kit.enqueue("chain", 1, 3)  # it stops at chain(3): a runner that follows it (today's) fails fast
    kit.enqueue("remind", 1)
    kit.runner.drain(only=[re.compile("^chain$"), kit.full_name("chain")])
    assert kit.log() == [("chain", 1)]
    assert kit.pending_names() == [kit.full_name("remind"), kit.full_name("chain")]
    kit.runner.drain(only=[kit.job("remind")])
    assert kit.log() == [("chain", 1), ("remind", 1)]
    assert kit.pending_names() == [kit.full_name("chain")]
    kit.runner.drain(only="chain")
    assert kit.log() == [("chain", 1), ("remind", 1), ("chain", 2)]
    assert kit.pending_names() == [kit.full_name("chain")]
    expect_teardown_warnings.append(kit.undrained_warning())


@pytest.mark.parametrize(
    "name",
    ["nope", " remind", "remind ", "remin", "REMIND", "contract_nowhere.remind", ["nope", " remind"]],
    ids=["nope", "space-before", "space-after", "prefix", "upper-case", "other-module", "list"],
)
def test_only_naming_no_pending_job(kit, name):
    kit.enqueue("remind", 1)
    kit.enqueue("remind", 2)
    pending = kit.pending()
    with pytest.raises(ValueError) as excinfo:  # noqa: PT011
        kit.runner.drain(only=name)
    assert (
        str(excinfo.value) == f"{kit.label}.drain(only={name!r}): no pending job matches; pending: {', '.join(pending)}"
    )
    assert kit.log() == []
    assert kit.pending() == pending
    kit.runner.drain()


def test_only_naming_no_pending_job_shows_10_pending(kit):
    for n in range(1, 13):
        kit.enqueue("remind", n)
    pending = kit.pending()
    with pytest.raises(ValueError) as excinfo:  # noqa: PT011
        kit.runner.drain(only="nope")
    message = str(excinfo.value)
    shown = f"{kit.label}.drain(only='nope'): no pending job matches; pending: {', '.join(pending[:10])}"
    assert message.startswith(shown)  # the spec leaves what follows the 10th open
    assert pending[10] not in message
    assert pending[11] not in message
    kit.runner.drain()


def test_only_with_nothing_pending(kit):
    with pytest.raises(ValueError) as excinfo:  # noqa: PT011
        kit.runner.drain(only="nope")
    assert str(excinfo.value) == f"{kit.label}.drain(only='nope'): no pending job matches; pending: none"


def test_only_runs_the_retries_of_the_named_jobs(retrying_kit):
    kit = retrying_kit
    kit.enqueue("remind", 1)
    kit.enqueue("flaky")
    kit.runner.drain(only="flaky", expect_failures=True)
    assert kit.log() == [("flaky", None), ("flaky", None)]
    assert [(run.attempts, str(run.exception)) for run in kit.runner.failed] == [(2, "flaky")]
    assert kit.pending_names() == [kit.full_name("remind")]
    kit.runner.drain()


def test_only_naming_no_pending_job_says_when_they_are_due(retrying_kit):
    kit = retrying_kit
    kit.enqueue("flaky")
    kit.runner.perform_one()  # attempt 1 fails; attempt 2 is due 10 s later
    [shown] = kit.pending()
    with pytest.raises(ValueError) as excinfo:  # noqa: PT011
        kit.runner.drain(only="nope")
    assert str(excinfo.value) == f"{kit.label}.drain(only='nope'): no pending job matches; pending: {shown} (due +10s)"
    kit.runner.drain(expect_failures=True)


# -- perform_one ----------------------------------------------------------------------------------------


def test_perform_one_with_nothing_pending(kit):
    with pytest.raises(LookupError) as excinfo:
        kit.runner.perform_one()
    assert str(excinfo.value) == f"{kit.label}.perform_one(): no job is pending"


def test_perform_one_runs_the_next_job_only(kit):
    kit.enqueue("remind", 1)
    kit.enqueue("remind", 2)
    first, second = kit.runner.pending
    record = kit.runner.perform_one()
    assert kit.log() == [("remind", 1)]
    assert record.job_id == kit.item_id(first)
    assert [kit.item_id(item) for item in kit.runner.pending] == [kit.item_id(second)]
    kit.runner.drain()


# -- failures -------------------------------------------------------------------------------------------


def test_a_failed_job_fails_the_drain(kit):
    kit.enqueue("boom")
    job_id = kit.item_id(kit.runner.pending[0])
    with pytest.raises(JobFailedError) as excinfo:
        kit.runner.drain()
    [failed] = kit.runner.failed
    assert failed.job_id == job_id
    expected = failed_message(
        f"{kit.label}.drain()", "pass drain(expect_failures=True)", failed.describe(), job_id, 1, "ValueError: boom"
    )
    assert str(excinfo.value) == expected
    assert excinfo.value.__cause__ is failed.exception
    assert type(failed.exception) is ValueError
    assert excinfo.value.runs == [failed]


def test_a_job_whose_exception_cannot_be_printed(kit, job_spans):
    # str() of the exception raises: the runner still reports the job's failure, with the text Python's own
    # traceback prints, and the spans are what the job system's tracing makes of it on a real worker.
    kit.enqueue("mute")
    job_id = kit.item_id(kit.runner.pending[0])
    with pytest.raises(JobFailedError) as excinfo:
        kit.runner.drain()
    [failed] = kit.runner.failed
    # minique's own tracing (the SDK's start_as_current_span) calls str() on the way out and raises in its place
    reason = "RuntimeError: no text" if kit.label == "minique_jobs" else "Unprintable: <exception str() failed>"
    expected = failed_message(
        f"{kit.label}.drain()", "pass drain(expect_failures=True)", failed.describe(), job_id, 1, reason
    )
    assert str(excinfo.value) == expected
    [attempt] = [span for span in job_spans.spans if span.kind.name == "CONSUMER"]
    if kit.label == "celery_jobs":
        # opentelemetry-instrumentation-celery's task_failure handler raises on str(exc) (Celery logs it), as on
        # a real worker: no exception event, status unset, the state attribute still says FAILURE
        assert (attempt.status.status_code.name, attempt.events) == ("UNSET", ())
        assert attempt.attributes["celery.state"] == "FAILURE"
    elif kit.label != "minique_jobs":
        assert attempt.status.status_code.name == "ERROR"
        assert attempt.status.description == "<exception str() failed>"
        [event] = attempt.events
        assert event.name == "exception"
        assert event.attributes["exception.type"] == kit.full_name("Unprintable")
        assert event.attributes["exception.message"] == "<exception str() failed>"
        assert "raise Unprintable()" in event.attributes["exception.stacktrace"]


def test_a_failed_job_fails_perform_one(kit):
    kit.enqueue("boom")
    job_id = kit.item_id(kit.runner.pending[0])
    with pytest.raises(JobFailedError) as excinfo:
        kit.runner.perform_one()
    [failed] = kit.runner.failed
    expected = failed_message(
        f"{kit.label}.perform_one()",
        "pass perform_one(expect_failures=True)",
        failed.describe(),
        job_id,
        1,
        "ValueError: boom",
    )
    assert str(excinfo.value) == expected
    assert excinfo.value.__cause__ is failed.exception


def test_expect_failures_argument(kit):
    kit.enqueue("boom")
    kit.runner.drain(expect_failures=True)
    assert [str(run.exception) for run in kit.runner.failed] == ["boom"]


def test_expect_failures_argument_on_perform_one(kit):
    kit.enqueue("boom")
    kit.runner.perform_one(expect_failures=True)
    assert [str(run.exception) for run in kit.runner.failed] == ["boom"]


@pytest.mark.parametrize("verb", ["drain", "perform_one"])
@pytest.mark.jobtrace(expect_failures=True)
def test_expect_failures_marker(kit, verb):
    kit.enqueue("boom")
    getattr(kit.runner, verb)()
    assert [str(run.exception) for run in kit.runner.failed] == ["boom"]


@pytest.mark.parametrize("verb", ["drain", "perform_one"])
@pytest.mark.jobtrace(expect_failures=True)
def test_expect_failures_false_overrides_the_marker(kit, verb):
    kit.enqueue("boom")
    with pytest.raises(JobFailedError) as excinfo:
        getattr(kit.runner, verb)(expect_failures=False)
    assert str(excinfo.value).startswith(f"{kit.label}.{verb}(): 1 job failed:\n")
    assert [str(run.exception) for run in kit.runner.failed] == ["boom"]


# -- the bound: drain(max_jobs=N) -----------------------------------------------------------------------

CHAIN_LINE = re.compile(r"  (-> |   )chain\(id=(\w{8})\)(  <- next to run)?")


def test_max_jobs_on_a_real_chain(kit):
    kit.enqueue("chain", 1)
    with pytest.raises(JobChainError) as excinfo:
        kit.runner.drain(max_jobs=3)
    error = excinfo.value
    assert kit.log() == [("chain", 1), ("chain", 2), ("chain", 3)]
    [next_item] = kit.runner.pending
    assert next_item.describe() == kit.pending()[0]
    assert kit.runner.chain_error is error
    lines = str(error).splitlines()
    assert lines[0] == (
        f"{kit.label}.drain() performed max_jobs=3 attempts;"
        " this chain of jobs does not end (each enqueued by the one before it):"
    )
    assert lines[-2:] == [
        "Attempts performed: chain x3",
        f"If it does end, raise the bound: {kit.label}.drain(max_jobs=N).",
    ]
    matches = [CHAIN_LINE.fullmatch(line) for line in lines[1:-2]]
    assert all(matches), lines[1:-2]
    assert [m.group(1) for m in matches[1:]] == ["-> "] * 3  # chain(1) may start the chain without an arrow
    assert [m.group(3) is not None for m in matches] == [False, False, False, True]
    performed_ids = kit.logged_ids("chain")
    if None in performed_ids:  # minique's tasks do not see their id: its runner's records have them
        performed_ids = [run.job_id for run in kit.runner.performed]
    ids = [*performed_ids, kit.item_id(next_item)]
    assert [m.group(2) for m in matches] == [job_id[:8] for job_id in ids]


@pytest.mark.parametrize(("count", "left"), [(2, "1 job"), (3, "2 jobs")])
def test_max_jobs_on_independent_jobs(kit, count, left):
    for n in range(1, count + 1):
        kit.enqueue("remind", n)
    with pytest.raises(JobChainError) as excinfo:
        kit.runner.drain(max_jobs=1)
    assert kit.log() == [("remind", 1)]
    assert kit.runner.chain_error is excinfo.value
    pending = kit.pending()
    assert len(pending) == count - 1
    assert [item.name for item in kit.runner.pending] == [kit.full_name("remind")] * (count - 1)
    assert str(excinfo.value) == "\n".join(
        [
            f"{kit.label}.drain(): max_jobs=1 reached with {left} still pending;"
            " call perform_one() to run one job at a time",
            f"  pending: {', '.join(pending)}",
            "Attempts performed: remind x1",
            f"If more jobs are meant to run, raise the bound: {kit.label}.drain(max_jobs=N).",
        ]
    )


def test_max_jobs_the_next_job_stays_first_in_line(kit):
    kit.enqueue("remind", 1)
    kit.enqueue("remind", 2)
    kit.enqueue("remind", 3)
    ids = [kit.item_id(item) for item in kit.runner.pending]
    with pytest.raises(JobChainError):
        kit.runner.drain(max_jobs=1)
    assert [kit.item_id(item) for item in kit.runner.pending] == ids[1:]
    kit.runner.drain()
    assert kit.log() == [("remind", 1), ("remind", 2), ("remind", 3)]


# -- teardown: the "never performed" warning ------------------------------------------------------------


def test_jobs_left_pending_are_reported_at_teardown(kit, expect_teardown_warnings):
    kit.enqueue("remind", 1)
    kit.enqueue("remind", 2)
    expect_teardown_warnings.append(kit.undrained_warning())
    hint = kit.undrained_hint
    assert kit.undrained_warning() == (
        f"2 job(s) were enqueued but never performed: {', '.join(kit.pending())}."
        f" Call {kit.label}.drain() before asserting{', ' + hint if hint else ''}."
    )


def test_jobs_left_pending_say_when_they_are_due(retrying_kit, expect_teardown_warnings):
    kit = retrying_kit
    kit.enqueue("flaky")
    kit.runner.perform_one()  # attempt 1 fails; attempt 2 is due 10 s later
    [shown] = kit.pending()
    hint = kit.undrained_hint
    expect_teardown_warnings.append(
        f"1 job(s) were enqueued but never performed: {shown} (due +10s)."
        f" Call {kit.label}.drain() before asserting{', ' + hint if hint else ''}."
    )


def test_no_teardown_warning_after_a_chain_error(kit, expect_teardown_warnings):
    kit.enqueue("chain", 1)
    with pytest.raises(JobChainError):
        kit.runner.drain(max_jobs=2)
    assert kit.pending_names() == [kit.full_name("chain")]
    # expect_teardown_warnings stays empty: the pending chain job was reported by the JobChainError


# -- draining from inside a job -------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["drain", "perform_one"])
def test_draining_from_inside_a_job_fails_that_job(kit, verb):
    kit.enqueue("drainer", verb)
    kit.enqueue("remind", 1)
    job_id = kit.item_id(kit.runner.pending[0])
    with pytest.raises(JobFailedError) as excinfo:
        kit.runner.drain()
    assert kit.log() == [("drainer", verb), ("remind", 1)]  # the inner call performed nothing
    [failed] = kit.runner.failed
    inner = INSIDE_MESSAGE.format(L=kit.label, verb=verb, name=kit.full_name("drainer"))
    assert type(failed.exception) is RuntimeError
    assert str(failed.exception) == inner
    assert excinfo.value.__cause__ is failed.exception
    expected = failed_message(
        f"{kit.label}.drain()",
        "pass drain(expect_failures=True)",
        failed.describe(),
        job_id,
        1,
        f"RuntimeError: {inner}",
    )
    assert str(excinfo.value) == expected


# -- a runner built by hand: its label is its class name; a context manager; close() twice -----------


@pytest.mark.parametrize("system", ["builtin", "celery", "rq"])
def test_a_runner_built_by_hand(system):
    module = importlib.import_module(f"contract_{system}")
    module.LOG.clear()
    runner = module.by_hand()
    label = type(runner).__name__
    with runner:
        module.RUNNER = runner
        with pytest.raises(LookupError) as excinfo:
            runner.perform_one()
        assert str(excinfo.value) == f"{label}.perform_one(): no job is pending"
        module.enqueue("remind", 1)
        with pytest.raises(TypeError) as excinfo:
            runner.drain(max_jobs="5")
        assert str(excinfo.value) == MAX_JOBS_MESSAGE.format(L=label, got="'5' (str)")
        with pytest.raises(ValueError) as excinfo:  # noqa: PT011
            runner.drain(only="nope")
        expected = f"{label}.drain(only='nope'): no pending job matches; pending: {runner.pending[0].describe()}"
        assert str(excinfo.value) == expected
        runner.drain()
        assert [(name, arg) for name, arg, _ in module.LOG] == [("remind", 1)]
    runner.close()  # idempotent
    runner.close()


# -- job time: the timeline on the test's clock ----------------------------------------------------------


def timeline(clock):
    return [(e.moment, e.kind, e.job, e.attempt, e.due, e.outcome, e.detail) for e in clock.timeline]


def test_timeline_notes_enqueues_and_attempts(kit, job_clock):
    kit.enqueue("remind", 1)
    kit.enqueue("boom")
    ids = [kit.item_id(item) for item in kit.runner.pending]
    kit.runner.drain(expect_failures=True)
    assert timeline(job_clock) == [
        (0.0, "enqueued", "remind", 1, 0.0, "", ""),
        (0.0, "enqueued", "boom", 1, 0.0, "", ""),
        (0.0, "attempt", "remind", 1, None, "succeeded", ""),
        (0.0, "attempt", "boom", 1, None, "failed", "ValueError: boom"),
    ]
    assert [e.job_id for e in job_clock.timeline] == ids + ids
    assert {e.runner for e in job_clock.timeline} == {kit.label}


def test_timeline_notes_retries_and_their_waits(retrying_kit, job_clock):
    kit = retrying_kit
    kit.enqueue("flaky")
    kit.runner.drain(expect_failures=True)
    assert timeline(job_clock) == [
        (0.0, "enqueued", "flaky", 1, 0.0, "", ""),
        (0.0, "attempt", "flaky", 1, None, "retried", "ValueError: flaky"),
        (0.0, "retry", "flaky", 2, 10.0, "", ""),
        (10.0, "attempt", "flaky", 2, None, "failed", "ValueError: flaky"),
    ]
    assert job_clock.now == 10.0
