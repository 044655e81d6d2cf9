"""Benchmarks of the reports (--jobtrace-show, --jobtrace-html): each figure against an anchor of the same run.

    python benchmarks/report.py            # all figures (the browser one needs Chromium)
    python benchmarks/report.py --quick    # fewer repetitions

Like run.py, it prints each figure with its target and exits 1 if one misses; it is not part of the tests.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from run import RESULTS, report

# Times are the process's CPU time (time.process_time): on a shared machine it is far steadier than the wall
# clock, and everything measured here runs on the test process's one thread.
_TIMER_PLUGIN = """
import statistics
import time

import pytest

START = time.process_time()  # when pytest loads this plugin (-p), before any plugin is configured
DURATIONS = []
SPENT = {"collect": 0.0, "write": 0.0}


def _timed(module, name, key):
    original = getattr(module, name)

    def timed(*args, **kwargs):
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[key] += time.process_time() - start

    setattr(module, name, timed)


def pytest_configure(config):
    if not config.getoption("jobtrace_html"):
        return  # nothing imported or wrapped that the session without the report would not have
    from pytest_jobtrace._report import hooks, html

    # Each test's part (its data, built when it ends, and kept as JSON text), then the file at the end.
    _timed(hooks.ReportPlugin, "_finish_test", "collect")
    _timed(html.SessionLog, "add", "collect")
    _timed(html.SessionLog, "write", "write")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    start = time.process_time()
    result = yield
    DURATIONS.append(time.process_time() - start)
    return result


def pytest_unconfigure(config):
    elapsed = time.process_time() - START
    with open("elapsed.txt", "w") as f:
        f.write(repr({"median": statistics.median(DURATIONS), "session": elapsed, **SPENT}))
"""

_TESTS = """
import pytest
from opentelemetry import trace

tracer = trace.get_tracer("bench")


@pytest.mark.parametrize("i", range({tests}))
def test_it(job_spans, i):
    with tracer.start_as_current_span("request", attributes={{"http.route": "/orders", "i": i}}):
        for n in range({spans} - 1):
            with tracer.start_as_current_span("step", attributes={{"step": n}}):
                pass
    assert i % {every} != {every} - 1, f"test {{i}} fails on purpose"
"""


def _command(*args: str) -> list[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    return [*command, "-p", "bench_timer", *args, "test_generated.py"]


def _env(root: Path) -> dict[str, str]:
    # The project first, then the caller's path: PYTHONPATH=$PWD python benchmarks/report.py measures $PWD's code.
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}


def run_session(root: Path, *args: str) -> dict[str, float]:
    subprocess.run(_command(*args), cwd=root, check=True, capture_output=True, env=_env(root))
    result: dict[str, float] = ast.literal_eval((root / "elapsed.txt").read_text())
    return result


def project(root: Path, tests: int, spans: int, failing: int = 0) -> None:
    """``tests`` tests of ``spans`` spans each; ``failing`` of them, spread out, fail."""
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "bench_timer.py").write_text(_TIMER_PLUGIN)
    every = tests // failing if failing else tests + 1
    (root / "test_generated.py").write_text(_TESTS.format(tests=tests, spans=spans, every=every))


def bench_hooks_off(repeats: int) -> None:
    """Per-test time with the report options off, side by side with the report hooks blocked outright."""
    variants = {
        "options off": (),
        "no report hooks": ("-p", "no:jobtrace-report"),
        "--jobtrace-show=failed": ("--jobtrace-show=failed",),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project(root, 2000, 5)
        runs: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeats):  # rounds of A, B, C: a busy moment of the machine hits all three alike
            for name, args in variants.items():
                runs[name].append(run_session(root, *args)["median"])
        best = {name: min(times) for name, times in runs.items()}
    print("  median test, 2,000 tests of 5 spans: " + ", ".join(f"{k} {v * 1e6:.0f}us" for k, v in best.items()))
    report("reports off: per-test time vs no report hooks", best["options off"] / best["no report hooks"], 1.05, "x")
    show = best["--jobtrace-show=failed"] / best["no report hooks"]
    print(f"  (for information: --jobtrace-show=failed with every test passing: {show:.3f}x)")


def bench_html_session(repeats: int) -> None:
    """--jobtrace-html on 1,000 tests of 20 spans (span-only tests): what it adds to the session's time."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project(root, 1000, 20)
        plain, html = [], []
        for _ in range(repeats):  # side by side, in rounds: a busy moment of the machine hits both alike
            plain.append(run_session(root))
            html.append(run_session(root, "--jobtrace-html=r.html"))
        size = (root / "r.html").stat().st_size
    base = min(run["session"] for run in plain)
    best = min(html, key=lambda run: run["session"])
    print(
        f"  CPU time of the session: without the report {base:.2f}s, with it {best['session']:.2f}s; "
        f"writing the file {best['write'] * 1e3:.0f}ms ({size / 1e6:.1f} MB), "
        f"each test's data {best['collect'] / 1000 * 1e6:.0f}us a test"
    )
    report("--jobtrace-html: added to a span-only session's time", best["session"] / base - 1, 0.10, "x")
    timed = (best["collect"] + best["write"]) / base
    print(f"  (for information: the report's own timers, data and file, vs the session without it: {timed:.1%};")
    print(f"  writing the file vs the session: {best['write'] / best['session']:.1%})")


def _chromium() -> str | None:
    chromium = os.environ.get("JOBTRACE_CHROMIUM") or shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None:
        print("  skipped: no Chromium or no Playwright (install Debian's chromium and the test extra)")
    return chromium


def bench_browser_open(repeats: int) -> None:
    """Opening the report of 1,000 tests of 20 spans in Chromium, 10 of them failing (open from the start)."""
    chromium = _chromium()
    if chromium is None:
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project(root, 1000, 20, failing=10)
        subprocess.run(_command("--jobtrace-html=r.html"), cwd=root, capture_output=True, env=_env(root))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            times = []
            for _ in range(repeats):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto((root / "r.html").as_uri())
                page.wait_for_selector("section.test[data-outcome=failed] > .body", state="attached")
                times.append(float(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")))
                page.close()
            browser.close()
        size = (root / "r.html").stat().st_size
    print(f"  1,000 tests ({size / 1e6:.1f} MB), 10 failing open from the start: loaded in {min(times):.0f}ms")
    report("opening a 1,000-test report in Chromium", min(times), 1000, "ms")


def bench_browser_render(repeats: int) -> None:
    """Time to first render of a 10,000-span test, measured in Chromium (absolute, in milliseconds)."""
    chromium = _chromium()
    if chromium is None:
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project(root, 1, 10_000)
        run_session(root, "--jobtrace-html=r.html")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            times = [_render_once(browser, root / "r.html") for _ in range(repeats)]
            browser.close()
    load, render = min(t[0] for t in times), min(t[1] for t in times)
    print(f"  page load (10,000 spans of data) {load:.0f}ms; opening the test's waterfall {render:.0f}ms")
    report("opening a 10,000-span test's waterfall in Chromium", render, 1000, "ms")


_MEASURE_RENDER = """() => new Promise(resolve => {
    const start = performance.now();
    window.jobtrace.open(0);
    // After the next frame has been laid out and painted.
    requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - start), 0));
})"""


def _render_once(browser: object, path: Path) -> tuple[float, float]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(path.as_uri())
    load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    render = page.evaluate(_MEASURE_RENDER)
    assert page.locator(".rows").evaluate("rows => rows.style.height") == f"{10_000 * 22}px"  # all 10,000 rows
    assert page.locator(".row").count() > 0
    page.close()
    return float(load), float(render)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    bench_hooks_off(repeats)
    bench_html_session(repeats)
    bench_browser_open(repeats)
    bench_browser_render(repeats)
    missed = [name for name, value, limit, _ in RESULTS if value > limit]
    print(f"\n{len(RESULTS) - len(missed)} of {len(RESULTS)} figures within target")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
