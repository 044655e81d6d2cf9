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

_TIMER_PLUGIN = """
import statistics
import time

import pytest

DURATIONS = []
SESSION = {}
WRITE = []


def pytest_configure(config):
    SESSION["start"] = time.perf_counter()
    try:
        from pytest_jobtrace._report import html
    except ImportError:
        return
    original = html.SessionLog.write

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        original(self, *args, **kwargs)
        WRITE.append(time.perf_counter() - start)

    html.SessionLog.write = timed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    start = time.perf_counter()
    result = yield
    DURATIONS.append(time.perf_counter() - start)
    return result


def pytest_unconfigure(config):
    elapsed = time.perf_counter() - SESSION["start"]
    with open("elapsed.txt", "w") as f:
        f.write(repr({"median": statistics.median(DURATIONS), "session": elapsed, "write": sum(WRITE)}))
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
"""


def run_session(root: Path, *args: str) -> dict[str, float]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    command += ["-p", "bench_timer", *args, "test_generated.py"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run(command, cwd=root, check=True, capture_output=True, env=env)
    result: dict[str, float] = ast.literal_eval((root / "elapsed.txt").read_text())
    return result


def project(root: Path, tests: int, spans: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "bench_timer.py").write_text(_TIMER_PLUGIN)
    (root / "test_generated.py").write_text(_TESTS.format(tests=tests, spans=spans))


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
        best = {
            name: min(run_session(root, *args)["median"] for _ in range(repeats)) for name, args in variants.items()
        }
    print("  median test, 2,000 tests of 5 spans: " + ", ".join(f"{k} {v * 1e6:.0f}us" for k, v in best.items()))
    report("reports off: per-test time vs no report hooks", best["options off"] / best["no report hooks"], 1.05, "x")
    show = best["--jobtrace-show=failed"] / best["no report hooks"]
    print(f"  (for information: --jobtrace-show=failed with every test passing: {show:.3f}x)")


def bench_html_session(repeats: int) -> None:
    """--jobtrace-html on 1,000 tests of 20 spans: writing the file, and everything it adds, vs the session."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project(root, 1000, 20)
        plain = min((run_session(root) for _ in range(repeats)), key=lambda r: r["session"])
        html = min((run_session(root, "--jobtrace-html=r.html") for _ in range(repeats)), key=lambda r: r["session"])
        size = (root / "r.html").stat().st_size
    print(
        f"  session without the report {plain['session']:.2f}s, with it {html['session']:.2f}s, "
        f"of which writing the file {html['write'] * 1e3:.0f}ms ({size / 1e6:.1f} MB)"
    )
    report("--jobtrace-html: writing the file vs the session's run time", html["write"] / html["session"], 0.10, "x")
    added = (html["session"] - plain["session"]) / plain["session"]
    print(f"  (for information: all that --jobtrace-html adds to the session, data per test included: {added:+.1%})")


def bench_browser_render(repeats: int) -> None:
    """Time to first render of a 10,000-span test, measured in Chromium (absolute, in milliseconds)."""
    chromium = os.environ.get("JOBTRACE_CHROMIUM") or shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        print("  skipped: no Chromium or no Playwright (install Debian's chromium and the test extra)")
        return
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
    assert page.locator(".row").count() == 10_000
    page.close()
    return float(load), float(render)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    bench_hooks_off(repeats)
    bench_html_session(repeats)
    bench_browser_render(repeats)
    missed = [name for name, value, limit, _ in RESULTS if value > limit]
    print(f"\n{len(RESULTS) - len(missed)} of {len(RESULTS)} figures within target")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
