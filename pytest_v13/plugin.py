"""pytest_v13: run the V13 stack once per sink as a session fixture; each DoD item is a test.

Registered through the ``pytest11`` entry point (``v13``). Use::

    pytest tests/acceptance --v13-minutes=30            # both sinks, the seed's absolute numbers
    pytest tests/acceptance --v13-sink=sqlite --v13-minutes=2 --v13-keep=true

A test asks for ``v13_run`` (a :class:`pytest_v13.run.V13Run`); ``@pytest.mark.v13(sink="jsonl")``
restricts it to one sink. Tests that do not ask for ``v13_run`` never start a stack.
"""

from __future__ import annotations

import base64
import html
import shutil
import signal
import tempfile
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.api import RunOptions, run_stack
from orchestrator.printer import Printer
from pytest_v13.run import V13Run
from pytest_v13.settings import SETTINGS_KEY, Settings, add_options, resolve
from pytest_v13.thresholds import Thresholds
from v13.config import load_config

RUNS_KEY = pytest.StashKey[list[V13Run]]()
DEFAULT_HTML = Path("logs/report/acceptance.html")
LOG_TAIL_LINES = 20
RUN_TIMEOUT_MARGIN_S = 600  # start-up, shutdown and the final report, beyond the run length


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _wants_html(config: pytest.Config) -> bool:
    """True when the session runs the acceptance directory (``tests/acceptance`` or a file in it)."""
    for arg in config.args:
        path = Path(str(arg).split("::")[0])
        if "acceptance" in path.parts[:-1] or path.name == "acceptance":
            return True
    return False


def _sigterm_to_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", 'v13(sink="jsonl"|"sqlite"): needs the V13 stack; optionally one sink only'
    )
    config.stash[SETTINGS_KEY] = resolve(config)
    config.stash[RUNS_KEY] = []
    if (
        config.pluginmanager.hasplugin("html")
        and getattr(config.option, "htmlpath", None) is None
        and _wants_html(config)
    ):
        config.option.htmlpath = str(DEFAULT_HTML.resolve())
        config.option.self_contained_html = True
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)  # so fixture teardown still runs


def _thresholds(settings: Settings) -> Thresholds:
    cfg = load_config(settings.config, environ={})
    return Thresholds.for_run(cfg.acceptance, settings.minutes)


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[SETTINGS_KEY]
    symbols = ",".join(s.symbols) if s.symbols else "(config)"
    return [
        f"v13: sinks={','.join(s.sinks)} minutes={s.minutes:g} enable={','.join(s.enable)} "
        f"symbols={symbols} config={s.config or 'config/defaults.yaml'}",
        f"v13 thresholds: {_thresholds(s).describe()}",
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "v13_run" not in metafunc.fixturenames:
        return
    sinks = list(metafunc.config.stash[SETTINGS_KEY].sinks)
    marker = metafunc.definition.get_closest_marker("v13")
    if marker is not None and "sink" in marker.kwargs:
        sinks = [s for s in sinks if s == marker.kwargs["sink"]]
    metafunc.parametrize("v13_run", sinks, indirect=True, scope="session")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the items of each sink together (stable), so each stack starts exactly once even
    when sink-specific items would interleave them."""
    order = {sink: i for i, sink in enumerate(config.stash[SETTINGS_KEY].sinks)}

    def key(item: pytest.Item) -> int:
        callspec = getattr(item, "callspec", None)
        sink = callspec.params.get("v13_run") if callspec is not None else None
        return -1 if sink is None else order.get(sink, len(order))

    items.sort(key=key)
    if config.pluginmanager.hasplugin("timeout"):
        # the first item of each sink runs the whole stack in its setup: a per-test timeout
        # (pytest-timeout) must cover the run, not cut it
        settings: Settings = config.stash[SETTINGS_KEY]
        seconds = settings.minutes * 60 + RUN_TIMEOUT_MARGIN_S
        for item in items:
            if "v13_run" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.timeout(seconds))


@pytest.fixture(scope="session")
def v13_run(request: pytest.FixtureRequest) -> Iterator[V13Run]:
    """The finished stack run of one sink (``request.param``); run once per sink per session."""
    settings: Settings = request.config.stash[SETTINGS_KEY]
    sink: str = request.param
    # not under pytest's basetemp: pytest deletes all but the last 3 of those when a session
    # starts, which would pull the root from under a long run if another session starts meanwhile
    root = settings.root / sink if settings.root else Path(tempfile.mkdtemp(prefix=f"v13-{sink}-"))
    options = RunOptions(config=settings.config, enable=settings.enable, sink=sink, minutes=settings.minutes,
                         symbols=settings.symbols, root=root)  # fmt: skip
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nv13: starting the {sink} stack for {settings.minutes:g} min in {root}", flush=True)
        result = run_stack(options, printer=Printer(live=False))
    if result.status.startswith("interrupted"):
        pytest.exit(f"v13 stack run interrupted ({result.status})", returncode=2)
    run = V13Run(sink, result, _thresholds(settings))
    request.config.stash[RUNS_KEY].append(run)
    yield run
    _keep_summary(run)
    if not settings.keep and settings.root is None:
        shutil.rmtree(root, ignore_errors=True)
    elif settings.keep:
        print(f"\nv13: kept the {sink} run root {root}")


def _keep_summary(run: V13Run) -> None:
    """Copy the report files and the manifest beside the HTML report before the root goes."""
    dest = DEFAULT_HTML.parent / "acceptance" / run.sink
    dest.mkdir(parents=True, exist_ok=True)
    for path in [*run.result.report_paths.values(), run.result.manifest_path]:
        if Path(path).exists():
            shutil.copy2(path, dest / Path(path).name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    run = getattr(item, "funcargs", {}).get("v13_run")
    if report.when != "call" or not report.failed or not isinstance(run, V13Run):
        return
    for name in ["orchestrator", *run.result.children]:
        report.sections.append(
            (f"v13 {run.sink} {name} log (last {LOG_TAIL_LINES} lines)", run.log_tail(name, LOG_TAIL_LINES))
        )


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    report.title = "V13 acceptance"


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(
    prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
) -> None:
    settings = session.config.stash[SETTINGS_KEY]
    prefix.append(f"<p><b>Thresholds:</b> {html.escape(_thresholds(settings).describe())}</p>")
    for run in session.config.stash[RUNS_KEY]:
        r = run.report_json
        prefix.append(
            f"<h3>{html.escape(run.sink)} run {html.escape(run.run_id)}: {html.escape(run.result.status)}"
            "</h3>"
            f"<p>signal rows {r['rows']}, confirmed {r['total']}, buy ratio {r['buy_ratio']:.3f}, "
            f"strong ratio {r['strong_ratio']:.3f} (last 5 min {r['last_5min']['strong_ratio']:.3f}), "
            f"orders {r['orders']['count']} ({r['orders']['buy']} buy / {r['orders']['sell']} sell), "
            f"dropped {r['dropped']}, warnings {html.escape(', '.join(r['warnings']) or 'none')}</p>"
            f"<p>manifest: {html.escape(str(run.result.manifest_path))}<br>"
            f"report: {html.escape(str(run.result.report_paths.get('json')))}</p>"
        )
        png = run.result.report_paths.get("png")
        if png and Path(png).exists():
            data = base64.b64encode(Path(png).read_bytes()).decode()
            prefix.append(
                f'<img alt="per-minute signals ({run.sink})" src="data:image/png;base64,{data}" width="800">'
            )
