"""pytest_v13: run the V13 stack once per sink as a session fixture; each DoD item is a test.

Registered through the ``pytest11`` entry point (``v13``). Use::

    pytest tests/acceptance --v13-minutes=30            # both sinks, the seed's absolute numbers
    pytest tests/acceptance --v13-sink=sqlite --v13-minutes=2 --v13-keep

A test asks for ``v13_run`` (a :class:`pytest_v13.run.V13Run`); ``@pytest.mark.v13(sink="jsonl")``
restricts it to one sink. The stack runs as ``python -m orchestrator.run`` in a subprocess, and
the plugin samples its stage processes itself.

Inert unless asked: a session that collects no test using ``v13_run`` loads no config, installs
no signal handler and writes no file. With v13 tests, the HTML report goes where ``--html``
says, else under ``--v13-root`` when given, else ``logs/report/`` of the current directory.
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

from pytest_v13.run import V13Run
from pytest_v13.settings import SETTINGS_KEY, Settings, add_options, resolve
from pytest_v13.stack import run_stack_process
from pytest_v13.thresholds import Thresholds
from v13.config import Config, default_config_path, load_config
from v13.errors import ConfigError

SINKS = ("jsonl", "sqlite")
RUNS_KEY = pytest.StashKey[list[V13Run]]()
HTML_KEY = pytest.StashKey[Path | None]()
HTML_NAME = "acceptance.html"
DEFAULT_HTML_DIR = Path("logs/report")
LOG_TAIL_LINES = 20
RUN_TIMEOUT_MARGIN_S = 600  # start-up, shutdown and the final report, beyond the run length


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", 'v13(sink="jsonl"|"sqlite"): needs the V13 stack; optionally one sink only'
    )
    config.stash[SETTINGS_KEY] = resolve(config)
    config.stash[RUNS_KEY] = []
    config.stash[HTML_KEY] = None


def _config(settings: Settings) -> Config:
    try:
        return load_config(settings.config or default_config_path(), environ={})
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _thresholds(settings: Settings) -> Thresholds:
    return Thresholds.for_run(_config(settings).acceptance, settings.minutes)


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[SETTINGS_KEY]
    symbols = ",".join(s.symbols) if s.symbols else "(config)"
    return [
        f"v13: sinks={','.join(s.sinks)} minutes={s.minutes:g} enable={','.join(s.enable)} "
        f"symbols={symbols} config={s.config or 'config/defaults.yaml'} keep={'yes' if s.keep else 'no'}"
    ]


def _sink_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    sink = callspec.params.get("v13_run") if callspec is not None else None
    return str(sink) if sink is not None else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "v13_run" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("v13")
    only = marker.kwargs.get("sink") if marker is not None else None
    sinks = [s for s in SINKS if only is None or s == only]
    metafunc.parametrize("v13_run", sinks, indirect=True, scope="session")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Deselect the sinks not asked for; group each sink's items (one stack start each); give
    them a timeout that covers the run; and, when v13 items remain, set up the HTML report."""
    settings: Settings = config.stash[SETTINGS_KEY]
    unwanted = [item for item in items if _sink_of(item) not in (None, *settings.sinks)]
    if unwanted:
        config.hook.pytest_deselected(items=unwanted)
        items[:] = [item for item in items if item not in unwanted]
    order = {sink: i for i, sink in enumerate(settings.sinks)}
    items.sort(key=lambda item: -1 if _sink_of(item) is None else order[str(_sink_of(item))])
    v13_items = [item for item in items if _sink_of(item) is not None]
    if not v13_items:
        return
    if config.pluginmanager.hasplugin("timeout"):
        # the first item of each sink runs the whole stack in its setup: a per-test timeout
        # (pytest-timeout) must cover the run, not cut it
        for item in v13_items:
            item.add_marker(pytest.mark.timeout(settings.minutes * 60 + RUN_TIMEOUT_MARGIN_S))
    _catch_sigterm(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    config.stash[HTML_KEY] = _enable_html(config, session, settings)
    if reporter is not None:
        reporter.write_line(f"v13 thresholds: {_thresholds(settings).describe()}")
        if config.stash[HTML_KEY] is not None:
            reporter.write_line(f"v13 HTML report: {config.stash[HTML_KEY]}")


def _enable_html(config: pytest.Config, session: pytest.Session, settings: Settings) -> Path | None:
    """The HTML report's path: ``--html`` if given; else start pytest-html's report now (it is
    only wanted once v13 items are known to run) under ``--v13-root`` or ``logs/report/``."""
    if not config.pluginmanager.hasplugin("html"):
        return None
    given = getattr(config.option, "htmlpath", None)
    if given:
        return Path(given).resolve()
    path = ((settings.root or DEFAULT_HTML_DIR) / HTML_NAME).resolve()
    config.option.htmlpath = str(path)
    config.option.self_contained_html = True
    import pytest_html.plugin

    before = set(config.pluginmanager.get_plugins())
    pytest_html.plugin.pytest_configure(config)
    for plugin in set(config.pluginmanager.get_plugins()) - before:
        start = getattr(plugin, "pytest_sessionstart", None)
        if start is not None:
            start(session)  # the session started before this report existed
    return path


def _sigterm_to_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def _catch_sigterm(config: pytest.Config) -> None:
    """Turn SIGTERM into KeyboardInterrupt in a session with v13 items, so the stack is stopped
    and the fixture torn down (pytest would otherwise die at once); restored at the end."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    config.add_cleanup(restore)


@pytest.fixture(scope="session")
def v13_run(request: pytest.FixtureRequest) -> Iterator[V13Run]:
    """The finished stack run of one sink (``request.param``); run once per sink per session."""
    config = request.config
    settings: Settings = config.stash[SETTINGS_KEY]
    sink: str = request.param
    # not under pytest's basetemp: pytest deletes all but the last 3 of those when a session
    # starts, which would pull the root from under a long run if another session starts meanwhile
    container = settings.root / sink if settings.root else Path(tempfile.mkdtemp(prefix=f"v13-{sink}-"))
    root, output = container / "root", container / "orchestrator.out"
    cfg = _config(settings)
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nv13: starting the {sink} stack for {settings.minutes:g} min in {root}", flush=True)
    process = run_stack_process(settings, sink, root, output, settings.minutes * 60 + RUN_TIMEOUT_MARGIN_S)
    if process.exit_code in (129, 130, 143):
        pytest.exit(f"v13 stack run interrupted (exit {process.exit_code})", returncode=2)
    run = V13Run(sink, process, cfg, Thresholds.for_run(cfg.acceptance, settings.minutes), config.rootpath)
    config.stash[RUNS_KEY].append(run)
    yield run
    _keep_summary(run, config.stash[HTML_KEY])
    if settings.keep:
        print(f"\nv13: kept the {sink} run in {container}")
    elif settings.root is None:
        shutil.rmtree(container, ignore_errors=True)


def _keep_summary(run: V13Run, html_path: Path | None) -> None:
    """Copy the report files and the manifest beside the HTML report before the root goes."""
    if html_path is None:
        return
    dest = html_path.parent / "acceptance" / run.sink
    dest.mkdir(parents=True, exist_ok=True)
    try:
        paths = [*run.report_paths.values(), run.manifest_path]
    except AssertionError:  # no run id or manifest: nothing to keep
        return
    for path in paths:
        if path.exists():
            shutil.copy2(path, dest / path.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    run = getattr(item, "funcargs", {}).get("v13_run")
    if report.when != "call" or not report.failed or not isinstance(run, V13Run):
        return
    for name in ["orchestrator", "events", *run.process.stages]:
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
    runs = session.config.stash[RUNS_KEY]
    if not runs:
        return
    prefix.append(f"<p><b>Thresholds:</b> {html.escape(runs[0].thresholds.describe())}</p>")
    for run in runs:
        prefix += _run_summary_html(run)


def _markout_line(r: dict[str, Any]) -> str:
    mk = r.get("markouts") or {}
    parts = []
    for h in mk.get("all", []):
        if h["hit_rate"] is not None:
            parts.append(f"{h['horizon_s']} s hit rate {h['hit_rate']:.3f}, mean {h['mean_bps']:+.3f} bps")
    paying = [f"{e['horizon_s']} s" for e in mk.get("edge", []) if e["exceeds_cost"]]
    cost = mk.get("cost", {})
    total = cost.get("round_trip_bps", 0.0) + cost.get("mean_half_spread_bps", 0.0)
    return "; ".join(parts) + f"; cost {total:.2f} bps; pays at {', '.join(paying) or 'no horizon'}"


def _run_summary_html(run: V13Run) -> list[str]:
    head = f"<h3>{html.escape(run.sink)} run: exit code {run.process.exit_code}</h3>"
    try:
        r = run.report_json
    except (AssertionError, OSError, ValueError) as exc:
        return [head, f"<p>no report: {html.escape(str(exc))}</p>"]
    warnings = html.escape(", ".join(r["warnings"]) or "none")
    peaks = ", ".join(
        f"{n} {s.peak_rss_bytes / 2**20:.1f} MB / {s.peak_open_files}" for n, s in run.process.stages.items()
    )
    manifest, report = html.escape(str(run.manifest_path)), html.escape(str(run.report_paths["json"]))
    out = [
        head,
        f"<p>run {html.escape(run.run_id)}: signal rows {r['rows']}, confirmed {r['total']}, "
        f"buy ratio {r['buy_ratio']:.3f}, strong ratio {r['strong_ratio']:.3f} "
        f"(last 5 min {r['last_5min']['strong_ratio']:.3f}), orders {r['orders']['count']} "
        f"({r['orders']['buy']} buy / {r['orders']['sell']} sell), dropped {r['dropped']}, "
        f"unprocessed tail {r['unprocessed_tail']}, warnings {warnings}</p>",
        f"<p>peak RSS / open files sampled by the plugin: {html.escape(peaks)}</p>",
        f"<p>markouts: {html.escape(_markout_line(r))}</p>",
        f"<p>manifest: {manifest}<br>report: {report}</p>",
    ]
    png = run.report_paths.get("png")
    if png is not None and png.exists():
        data = base64.b64encode(png.read_bytes()).decode()
        out.append(
            f'<img alt="per-minute signals ({run.sink})" src="data:image/png;base64,{data}" width="800">'
        )
    return out
