"""The HTML report in a real headless Chromium (the system's, driven by Playwright's Python package).

Without a Chromium these tests skip, saying why, unless JOBTRACE_REQUIRE_BROWSER=1 (CI sets it): then
they fail. JOBTRACE_CHROMIUM names the browser binary when it is not ``chromium`` on PATH.
JOBTRACE_UPDATE_SCREENSHOTS=1 makes the screenshot test write the picture docs/pictures.md shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags, set_span_in_context
from report_project import CELERY_APP, CELERY_INI, CELERY_TEST, SHOP

from pytest_jobtrace._core.forest import SpanForest
from pytest_jobtrace._report.data import plain_trace_data
from pytest_jobtrace._report.html import page, script_json

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "images" / "html-report.png"
# Debian's Chromium as root in a container: no sandbox, no GPU, and no background traffic to the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAILED_TEST = "section.test[data-outcome=failed]"


def _unavailable(reason: str) -> None:
    if os.environ.get("JOBTRACE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"JOBTRACE_REQUIRE_BROWSER=1, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module", name="browser")
def _browser() -> Iterator[Any]:
    executable = os.environ.get("JOBTRACE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None or not Path(executable).is_file():
        _unavailable("no Chromium found: install Debian's chromium package (or set JOBTRACE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright's Python package is not installed (it is in the test extra)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def make_report(project: Path, source: str, ini: str = "[pytest]\n", **modules: str) -> Path:
    """The HTML report of a session of ``source`` (run in a fresh interpreter, as users run pytest)."""
    (project / "pytest.ini").write_text(ini)
    (project / "test_shop.py").write_text(source)
    for name, text in modules.items():
        (project / f"{name}.py").write_text(text)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "--jobtrace-html=r.html"]
    run = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert (project / "r.html").exists(), f"no report written:\n{run.stdout}\n{run.stderr}"
    return project / "r.html"


@pytest.fixture(scope="module", name="report")
def _report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_report(tmp_path_factory.mktemp("shop", numbered=False), SHOP)


class Page:
    """A page with everything it reported: console messages, uncaught errors, dialogs and requests."""

    def __init__(self, browser: Any, report: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1100, "height": 640})
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(m.text))
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        self.page.on("dialog", lambda dialog: (self.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(report.as_uri())

    def rows(self, section: str) -> list[dict[str, Any]]:
        """Each waterfall row of a test: its label text, classes, and bar position in % of the axis."""
        rows: list[dict[str, Any]] = self.page.eval_on_selector_all(
            f"{section} .row",
            """rows => rows.sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top)).map(row => {
                const bar = row.querySelector('.bar');
                const parts = [...row.querySelector('.label').children].map(part => part.textContent);
                return {label: parts.join(' '),
                        bar: bar.className, left: parseFloat(bar.style.left), width: parseFloat(bar.style.width),
                        span: row.dataset.span === undefined ? null : Number(row.dataset.span)};
            })""",
        )
        return rows


@pytest.fixture(name="page")
def _page(browser: Any, report: Path) -> Iterator[Page]:
    page = Page(browser, report)
    yield page
    page.page.close()


def test_the_page_loads_with_no_errors_and_no_requests(page: Page, report: Path) -> None:
    page.page.wait_for_selector(f"{FAILED_TEST} .row")
    assert page.problems == []
    assert page.requests == [report.as_uri()]  # nothing but the file itself
    summary = page.page.inner_text("#summary")
    assert summary.startswith("7 tests · 1 failed · 1 error · 3 passed · 1 xfailed · 1 skipped · written ")


EXPECTED_ROWS = [
    ("POST /checkout server", "bar"),
    (
        "job test_shop.ChargeJob queue payments · 3 attempts (retried, retried, succeeded) · succeeded",
        "bar job succeeded",
    ),
    ("send payments producer", "bar"),
    ("attempt 1 · retried process payments consumer test_shop.GatewayTimeout: gateway timed out", "bar error"),
    ("charge_card test_shop.GatewayTimeout: gateway timed out", "bar error"),
    ("attempt 2 · retried process payments consumer test_shop.GatewayTimeout: gateway timed out", "bar error"),
    ("charge_card test_shop.GatewayTimeout: gateway timed out", "bar error"),
    ("attempt 3 · succeeded process payments consumer", "bar"),
    ("charge_card", "bar"),
    ("audit", "bar"),
]


def test_a_failing_tests_waterfall_has_the_expected_bars(page: Page) -> None:
    rows = page.rows(FAILED_TEST)  # a failing test is open from the start
    assert [(row["label"], row["bar"]) for row in rows] == EXPECTED_ROWS
    by_label = [row for row in rows if row["span"] is not None]
    root, audit = by_label[0], by_label[-1]
    assert root["left"] == 0
    assert audit["left"] + audit["width"] == pytest.approx(100, abs=0.01)  # the last span ends the axis
    for parent, child in [(0, 1), (2, 3), (4, 5), (6, 7)]:  # send inside the request, charge_card in attempts
        outer, inner = by_label[parent], by_label[child]
        assert outer["left"] <= inner["left"] <= inner["left"] + inner["width"] <= outer["left"] + outer["width"]
    attempts = [by_label[i] for i in (2, 4, 6)]
    assert attempts[0]["left"] + attempts[0]["width"] <= attempts[1]["left"] <= attempts[2]["left"]
    # The link from "audit" (another trace) back to "POST /checkout", drawn across the traces.
    links = page.page.eval_on_selector_all(
        f"{FAILED_TEST} svg.links line", "ls => ls.map(l => [l.dataset.from, l.dataset.to])"
    )
    assert links == [[str(audit["span"]), str(root["span"])]]


def test_a_click_shows_attributes_and_events_as_text(page: Page) -> None:
    page.page.click(f"{FAILED_TEST} .row[data-span] >> text=POST /checkout")
    details = page.page.locator(f"{FAILED_TEST} .details")
    cells = details.locator("td").all_inner_texts()
    assert cells[cells.index("note") + 1] == "<script>alert(1)</script>"
    assert "\ncart.loaded at " in details.inner_text()
    assert cells[cells.index("items") + 1] == "2"
    assert page.page.eval_on_selector_all("script", "s => s.length") == 2  # the page's own two, no more
    assert page.problems == []


def test_a_click_on_a_job_lists_its_attempts(page: Page) -> None:
    page.page.click(f"{FAILED_TEST} .row.jobrow")
    details = page.page.locator(f"{FAILED_TEST} .details")
    assert details.locator("h3").inner_text() == "job test_shop.ChargeJob"
    cells = details.locator("td").all_inner_texts()
    assert cells[:6] == ["outcome", "succeeded", "queue", "payments", "enqueued by", "send payments"]
    attempts = [cells[i + 1].split(" (")[0] for i in range(6, len(cells), 2)]
    assert attempts == [
        "retried: test_shop.GatewayTimeout: gateway timed out",
        "retried: test_shop.GatewayTimeout: gateway timed out",
        "succeeded",
    ]
    assert page.problems == []


def test_hostile_names_and_values_stay_text(page: Page) -> None:
    hostile = page.page.locator("section.test", has_text="test_hostile_names")
    hostile.locator("button.head").click()
    hostile.locator(".row[data-span]").click()
    assert hostile.locator(".row .name").inner_text() == "evil \\x1b[2J\\x1b[31mname\\x0asecond line"
    cells = hostile.locator(".details td").all_inner_texts()
    assert cells[cells.index("payload") + 1] == "\\x1b]0;pwned\\x07<img src=x onerror=alert(2)>"
    assert page.page.eval_on_selector_all("img", "images => images.length") == 0
    assert page.problems == []


def test_filter_by_outcome_and_search_by_span_name(page: Page) -> None:
    visible = "section.test:not(.hidden) .nodeid"
    page.page.uncheck("input[data-outcome=passed]")
    assert [name.split("::")[1] for name in page.page.locator(visible).all_inner_texts()] == [
        "test_checkout_fails",
        "test_skipped",
        "test_xfailed",
        "test_setup_error",
    ]
    page.page.check("input[data-outcome=passed]")
    page.page.fill("#search", "CHARGE_c")
    assert [name.split("::")[1] for name in page.page.locator(visible).all_inner_texts()] == [
        "test_checkout_fails",
        "test_checkout_passes",
    ]
    assert page.page.locator(f"{FAILED_TEST} .row.match .name").all_inner_texts() == ["charge_card"] * 3


LARGE = """
from opentelemetry import trace

tracer = trace.get_tracer("big")


def test_large(job_spans):
    with tracer.start_as_current_span("import"):
        for n in range(2999):
            with tracer.start_as_current_span(f"row {n}"):
                pass
"""


def test_a_large_test_has_only_the_rows_in_view(browser: Any, tmp_path: Path) -> None:
    page = Page(browser, make_report(tmp_path, LARGE))
    page.page.click("section.test button.head")
    count = page.page.locator(".row").count()
    assert 0 < count < 400  # the viewport's rows and a margin, not 3,000
    assert page.page.locator(".rows").evaluate("rows => rows.style.height") == f"{3000 * 22}px"
    page.page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.page.wait_for_selector(".row >> text=row 2998")
    assert page.page.locator(".row").count() < 400  # rows scrolled away were removed
    assert page.page.locator(".row >> text=row 0").count() == 0
    page.page.click(".row >> text=row 2998")
    assert page.page.locator(".details h3").inner_text() == "row 2998"
    assert page.problems == []


@pytest.fixture(scope="module", name="celery_report")
def _celery_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("celery", numbered=False)
    return make_report(project, CELERY_TEST, CELERY_INI, shop_app=CELERY_APP)


def test_the_job_timeline_is_on_the_virtual_clock_in_order(browser: Any, celery_report: Path) -> None:
    page = Page(browser, celery_report)
    test = page.page.locator(FAILED_TEST)
    time = test.locator(".jobtime")
    assert time.locator("h4").first.inner_text().startswith("Job time on the virtual clock (+0s is 20")
    rows = time.locator("tr").evaluate_all("rows => rows.map(row => [...row.children].map(cell => cell.textContent))")
    job_id = rows[0][1].split(" ")[1]
    assert len(job_id) == 8
    assert rows == [
        ["+0s", f"charge {job_id}", "enqueued, due +1h"],
        ["+1h", f"charge {job_id}", "attempt 1 retried: ConnectionError: gateway timed out"],
        ["+1h", f"charge {job_id}", "retry: attempt 2 due +1h0m10s (wait 10s)"],
        ["+1h0m10s", f"charge {job_id}", "attempt 2 retried: ConnectionError: gateway timed out"],
        ["+1h0m10s", f"charge {job_id}", "retry: attempt 3 due +1h0m40s (wait 30s)"],
        ["+1h0m40s", f"charge {job_id}", "attempt 3 retried: ConnectionError: gateway timed out"],
        ["+1h0m40s", f"charge {job_id}", "retry: attempt 4 due +1h1m40s (wait 1m)"],
        ["+1h1m40s", f"charge {job_id}", "attempt 4 succeeded"],
    ]
    assert time.locator(".end").inner_text() == "clock at the end: +1h1m40s"
    assert "3600" not in time.inner_text()  # readable, never seconds
    # Next to the waterfall, which stays in real time: the whole retry chain takes milliseconds there.
    assert test.locator("h4.realtime").inner_text() == "Spans in real time"
    assert test.locator(".axis .scale span").last.inner_text().endswith("s")
    assert test.locator(".failure pre.message").inner_text().startswith("pytest_jobtrace.SpanTreeMismatch: ")
    assert test.locator(".row.differs .name").all_inner_texts() == ["apply_async/shop_app.charge"]
    assert page.problems == []


def test_screenshot_for_the_docs(browser: Any, celery_report: Path, tmp_path: Path) -> None:
    """The picture docs/pictures.md shows: a failing Celery retry with a countdown, message and job time."""
    page = Page(browser, celery_report)
    page.page.wait_for_selector(f"{FAILED_TEST} .row")
    target = SCREENSHOT if os.environ.get("JOBTRACE_UPDATE_SCREENSHOTS") == "1" else tmp_path / "report.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.page.set_viewport_size({"width": 1100, "height": 1200})
    page.page.evaluate("window.scrollTo(0, 0)")
    page.page.screenshot(path=str(target), full_page=True)
    assert target.read_bytes().startswith(b"\x89PNG")
    assert page.problems == []


@pytest.mark.parametrize("required", [False, True], ids=["skips", "fails-when-required"])
def test_without_a_browser(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: bool) -> None:
    for module in ("test_report_browser.py", "report_project.py"):
        (pytester.path / module).write_text((Path(__file__).parent / module).read_text())
    monkeypatch.setenv("JOBTRACE_CHROMIUM", str(pytester.path / "no-such-browser"))
    monkeypatch.setenv("JOBTRACE_REQUIRE_BROWSER", "1" if required else "0")
    result = pytester.runpytest_subprocess("test_report_browser.py", "-k", "loads", "-rs")
    if required:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*JOBTRACE_REQUIRE_BROWSER=1, but no Chromium found: install Debian's chromium*"])
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED * no Chromium found: install Debian's chromium package*"])


class _FixedIds(IdGenerator):
    """Span ids 1, 2, 3... in one trace: a test can give a span a parent whose ids come later."""

    def __init__(self) -> None:
        self.last = 0

    def generate_span_id(self) -> int:
        self.last += 1
        return self.last

    def generate_trace_id(self) -> int:
        return 7


def _loop_spans() -> list[ReadableSpan]:
    """Spans whose parent ids loop (a -> b -> c -> a), under a root, next to a lone root."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=_FixedIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("loops")
    later = SpanContext(7, 3, is_remote=False, trace_flags=TraceFlags(1))  # the third span's ids
    a = tracer.start_span("a", context=set_span_in_context(NonRecordingSpan(later)), start_time=5)  # id 1
    b = tracer.start_span("b", context=set_span_in_context(a), start_time=6)  # id 2
    c = tracer.start_span("c", context=set_span_in_context(b), start_time=7)  # id 3: a's parent
    lone = tracer.start_span("lone", start_time=1)
    for span in (c, b, lone, a):
        span.end(end_time=10)
    return list(exporter.get_finished_spans())


def _layout_cases(make_span: Any) -> list[list[Any]]:
    root = make_span("root", at=5, kind=SpanKind.SERVER)
    other = make_span("other trace", at=1)
    shapes = [
        root,
        make_span("b", root, at=6, status=(StatusCode.ERROR, "boom")),
        make_span("a", root, at=6, events=["cache.miss"]),  # same start: by name
        make_span("a", root, at=6),  # same start and name: by capture order
        other,
        make_span("linked", other, at=2, links=[root]),
        make_span("z root", at=1),  # another root of its own trace, same start as "other trace"
    ]
    orphan = make_span("orphan's child", make_span("not captured", at=0), at=3)
    return [shapes, shapes[::-1], shapes[3:] + shapes[:3], [orphan, *shapes[:2]], _loop_spans(), []]


def test_the_page_lays_spans_out_as_the_forest_does(browser: Any, make_span: Any, tmp_path: Path) -> None:
    """The page builds the waterfall from parents and sibling order (no rows in the data): the forest's
    display order, depths and trace numbers, for ties, several traces, a parent not captured, looping ids."""
    cases = _layout_cases(make_span)
    datas = [plain_trace_data(spans) for spans in cases]
    assert all(data is not None and "rows" not in data for data in datas)
    tests = [{"id": f"case {n}", "o": "passed", "d": 0.0, "trace": data} for n, data in enumerate(datas)]
    (tmp_path / "r.html").write_text(page(script_json({"title": "layout", "created": "now", "tests": tests})))
    shown = Page(browser, tmp_path / "r.html")
    for n, spans in enumerate(cases):
        forest = SpanForest(spans)
        trace_of = {node.index: t for t, roots in enumerate(forest.traces) for root in roots for node in root.walk()}
        expected = [[node.name, len(node.path()) - 1, trace_of[node.index]] for node in forest.display_order]
        laid_out = shown.page.evaluate(
            "n => { const trace = window.jobtrace.trace(n);"
            " return trace.rows.map(([i, depth]) => [trace.spans[i].n, depth, trace.spans[i].t]); }",
            n,
        )
        assert laid_out == expected, f"case {n}"
        ids = [f"{roots[0].span.context.trace_id:032x}" for roots in forest.traces]
        assert shown.page.evaluate("n => window.jobtrace.trace(n).traces", n) == ids
    assert shown.problems == []
