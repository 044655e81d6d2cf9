"""Reports of what tests traced: the trace in pytest's report (show), an HTML waterfall, OTLP JSON files.

Nothing here runs unless one of the options is given: ``configure`` registers the hooks only then.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_jobtrace._report.hooks import PLUGIN_NAME, ReportPlugin, Settings

SHOW_CHOICES = ("failed", "all")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("jobtrace")
    group.addoption(
        "--jobtrace-show",
        choices=SHOW_CHOICES,
        default=None,
        help="add each failing (or every) test's spans, jobs folded, to its report (ini: jobtrace_show)",
    )
    group.addoption(
        "--jobtrace-html",
        metavar="PATH",
        default=None,
        help="write one self-contained HTML file with a waterfall of every test's spans",
    )
    group.addoption(
        "--jobtrace-export",
        metavar="DIR",
        default=None,
        help="write each test's spans to DIR as OTLP JSON, one file per test",
    )
    group.addoption(
        "--jobtrace-tb",
        choices=("short", "full"),
        default=None,
        help="short (default): a failed job's traceback in a test's report holds the frames of your code, without"
        " the job system's worker frames and log records; full: all of them (ini: jobtrace_tb)",
    )
    parser.addini("jobtrace_show", "failed or all: add tests' spans to their reports (off when empty)", default="")
    parser.addini("jobtrace_tb", "short or full: the job system's frames in a failed job's traceback", default="")


def configure(config: pytest.Config) -> None:
    """Register the report hooks when an option asks for a report (their cost is then zero when off)."""
    settings = _settings(config)
    if settings.export is not None:
        _check_encoder()
    if settings.active and not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(ReportPlugin(config, settings), PLUGIN_NAME)


def _settings(config: pytest.Config) -> Settings:
    show = config.getoption("jobtrace_show", None) or config.getini("jobtrace_show") or None
    if show is not None and show not in SHOW_CHOICES:
        raise pytest.UsageError(f"jobtrace_show = {show!r}: use one of {', '.join(SHOW_CHOICES)} (or leave it empty)")
    root = config.invocation_params.dir
    html, export = config.getoption("jobtrace_html", None), config.getoption("jobtrace_export", None)
    return Settings(
        show=show,
        html=root / Path(html) if html else None,
        export=root / Path(export) if export else None,
    )


def _check_encoder() -> None:
    try:
        import opentelemetry.exporter.otlp.proto.common.trace_encoder  # noqa: F401
        from google.protobuf import json_format  # noqa: F401
    except ImportError as error:
        raise pytest.UsageError(
            f'--jobtrace-export needs OpenTelemetry\'s OTLP encoder ({error}): pip install "pytest-jobtrace[report]"'
        ) from None
