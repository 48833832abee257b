"""pytest_v13, black-box with pytester: the setup plan, options in CLI and ini form, usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

DOD_LIKE = """
import pytest

pytestmark = pytest.mark.v13

def test_a(v13_run):
    assert v13_run

@pytest.mark.v13(sink="jsonl")
def test_b_jsonl_only(v13_run):
    assert v13_run

@pytest.mark.v13(sink="sqlite")
def test_c_sqlite_only(v13_run):
    assert v13_run

def test_d(v13_run):
    assert v13_run

def test_no_stack():
    assert True
"""


def plan_lines(result: pytest.RunResult) -> list[str]:
    return [
        line.strip()
        for line in result.outlines
        if "v13_run" in line and ("SETUP" in line or "TEARDOWN" in line)
    ]


def test_two_sinks_mean_exactly_two_stack_startups_and_shutdowns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dod=DOD_LIKE)
    result = pytester.runpytest_subprocess("--setup-plan")
    assert result.ret == 0
    lines = plan_lines(result)
    assert [(line.split()[0], line.rsplit("[", 1)[-1]) for line in lines] == [
        ("SETUP", "'jsonl']"),
        ("TEARDOWN", "'jsonl']"),
        ("SETUP", "'sqlite']"),
        ("TEARDOWN", "'sqlite']"),
    ]


@pytest.mark.parametrize("form", ["cli", "ini"])
def test_one_sink_runs_only_its_items(pytester: pytest.Pytester, form: str) -> None:
    pytester.makepyfile(test_dod=DOD_LIKE)
    args = ["--setup-plan"]
    if form == "cli":
        args.append("--v13-sink=sqlite")
    else:
        pytester.makeini("[pytest]\nv13_sink = sqlite\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == 0
    assert [line.split()[0] for line in plan_lines(result)] == ["SETUP", "TEARDOWN"]
    result.stdout.fnmatch_lines(["*v13: sinks=sqlite*", "*test_c_sqlite_only*sqlite*"])
    result.stdout.no_fnmatch_line("*test_b_jsonl_only?jsonl*")


STUB_RUN = """
import pytest

@pytest.fixture(scope="session")
def v13_run(request):
    return request.param
"""


BAD_VALUES = [
    ("minutes", "abc", "expected a number of minutes"),
    ("minutes", "0", "expected a positive number"),
    ("sink", "parquet", "expected jsonl, sqlite or both"),
    ("enable", "harvest,mining", "expected a comma-separated subset"),
    ("keep", "maybe", "expected true or false"),
    ("config", "/no/such.yaml", "no such file"),
]


@pytest.mark.parametrize(
    ("form", "name", "value", "why"),
    # --v13-keep is a plain flag on the command line: only its ini key takes a value
    [(form, *case) for form in ("cli", "ini") for case in BAD_VALUES if (form, case[0]) != ("cli", "keep")],
)
def test_bad_option_values_are_usage_errors_naming_their_source(
    pytester: pytest.Pytester, form: str, name: str, value: str, why: str
) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    if form == "cli":
        result = pytester.runpytest_subprocess(f"--v13-{name}={value}")
        where = f"option --v13-{name}"
    else:
        pytester.makeini(f"[pytest]\nv13_{name} = {value}\n")
        result = pytester.runpytest_subprocess()
        where = f"ini key v13_{name}"
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"ERROR: Invalid '{value}' from {where}: {why}*"])


@pytest.mark.parametrize("form", ["cli", "ini"])
def test_options_show_in_the_header_and_the_scaled_thresholds_once_v13_items_are_collected(
    pytester: pytest.Pytester, form: str
) -> None:
    pytester.makeconftest(STUB_RUN)
    pytester.makepyfile(test_dod=DOD_LIKE)
    if form == "cli":
        result = pytester.runpytest_subprocess(
            "--v13-minutes=30", "--v13-symbols=BTCUSDT,ETHUSDT", "--v13-keep"
        )
    else:
        pytester.makeini("[pytest]\nv13_minutes = 30\nv13_symbols = BTCUSDT,ETHUSDT\nv13_keep = true\n")
        result = pytester.runpytest_subprocess()
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "v13: sinks=jsonl,sqlite minutes=30 *symbols=BTCUSDT,ETHUSDT* keep=yes",
        "v13 thresholds: 30-minute runs, absolute DoD numbers: JSONL shards >= 20, SQLite rows >= 10000, "
        "orders >= 100*",
    ])  # fmt: skip


def test_keep_is_off_by_default_and_an_ini_false_keeps_it_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    pytester.makeini("[pytest]\nv13_keep = false\n")
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["v13: * keep=no"])


def test_a_session_without_v13_items_loads_no_config_installs_no_handler_writes_no_file(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "config").mkdir()
    (pytester.path / "config/defaults.yaml").write_text("symbols: [unclosed\n")  # loading it would fail
    pytester.makepyfile(
        test_plain="""
        import signal

        def test_plain():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        """
    )

    def files() -> set[Path]:
        pytesters = ("stdout", "stderr", "__pycache__")  # pytester's records, Python's bytecode
        paths = (p.relative_to(pytester.path) for p in pytester.path.rglob("*"))
        return {p for p in paths if p.parts[0] not in pytesters and not p.parts[0].startswith("runpytest-")}

    before = files()
    # pytest-benchmark (installed on some machines, not a dependency) would write .benchmarks/
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:benchmark")
    result.assert_outcomes(passed=1)
    assert files() == before
    result.stdout.no_fnmatch_line("*v13 thresholds*")
    result.stdout.no_fnmatch_line("*html report*")


@pytest.mark.parametrize("where", ["html", "root", "default"])
def test_the_html_report_goes_where_asked_and_its_path_is_printed(
    pytester: pytest.Pytester, where: str
) -> None:
    pytester.makeconftest(STUB_RUN)
    pytester.makepyfile(test_dod=DOD_LIKE)
    args = {"html": ["--html=out/mine.html"], "root": ["--v13-root=runs"], "default": []}[where]
    expected = {
        "html": "out/mine.html",
        "root": "runs/acceptance.html",
        "default": "logs/report/acceptance.html",
    }
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    assert result.ret == 0
    path = (pytester.path / expected[where]).resolve()
    assert path.is_file()
    result.stdout.fnmatch_lines([f"v13 HTML report: {path}", f"*Generated html report: {path.as_uri()}*"])


def test_one_sink_deselects_the_other_sinks_items(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(STUB_RUN)
    pytester.makepyfile(test_dod=DOD_LIKE)
    result = pytester.runpytest_subprocess("--v13-sink=jsonl", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=4, deselected=3)  # test_a, test_b, test_d on jsonl; test_no_stack
    result.stdout.no_fnmatch_line("*NOTSET*")
    result.stdout.no_fnmatch_line("*sqlite]*PASSED*")


def test_tests_without_v13_run_start_no_stack(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dod=DOD_LIKE)
    result = pytester.runpytest_subprocess("-k", "no_stack", "-s")
    result.assert_outcomes(passed=1, deselected=6)
    result.stdout.no_fnmatch_line("*v13: starting*")


def test_v13_items_get_a_timeout_that_covers_the_whole_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(STUB_RUN)
    pytester.makepyfile(
        test_t="""
        def test_timeout(request, v13_run):
            assert request.node.get_closest_marker("timeout").args[0] == 30 * 60 + 600

        def test_no_stack_keeps_the_default(request):
            assert request.node.get_closest_marker("timeout") is None
        """
    )
    pytester.makeini("[pytest]\ntimeout = 300\n")
    result = pytester.runpytest_subprocess("--v13-minutes=30", "--v13-sink=sqlite")
    result.assert_outcomes(passed=2)


def test_sigterm_to_pytest_still_runs_session_teardown(pytester: pytest.Pytester) -> None:
    import signal
    import subprocess
    import sys
    import time

    marker = pytester.path / "teardown.txt"
    pytester.makeconftest(
        f"""
        import pytest

        @pytest.fixture(scope="session")
        def v13_run(request):
            yield request.param
            open({str(marker)!r}, "w").write("torn down")
        """
    )
    pytester.makepyfile(
        test_t="""
        import time

        def test_long(v13_run):
            print('RUNNING', flush=True)
            time.sleep(60)
        """
    )
    argv = [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "--v13-sink=jsonl"]
    proc = subprocess.Popen(
        argv, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "RUNNING" in line:
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert marker.read_text() == "torn down", out
    assert proc.returncode == 2  # interrupted
