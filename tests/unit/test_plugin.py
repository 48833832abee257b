"""pytest_v13, black-box with pytester: the setup plan, options in CLI and ini form, usage errors."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("minutes", "abc", "expected a number of minutes"),
        ("minutes", "0", "expected a positive number"),
        ("sink", "parquet", "expected jsonl, sqlite or both"),
        ("enable", "harvest,mining", "expected a comma-separated subset"),
        ("keep", "maybe", "expected true or false"),
        ("config", "/no/such.yaml", "no such file"),
    ],
)
@pytest.mark.parametrize("form", ["cli", "ini"])
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
def test_minutes_and_symbols_show_in_the_header_with_the_scaled_thresholds(
    pytester: pytest.Pytester, form: str
) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    if form == "cli":
        result = pytester.runpytest_subprocess("--v13-minutes=30", "--v13-symbols=BTCUSDT,ETHUSDT")
    else:
        pytester.makeini("[pytest]\nv13_minutes = 30\nv13_symbols = BTCUSDT,ETHUSDT\n")
        result = pytester.runpytest_subprocess()
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "v13: sinks=jsonl,sqlite minutes=30 *symbols=BTCUSDT,ETHUSDT*",
        "v13 thresholds: 30-minute runs, absolute DoD numbers: JSONL shards >= 20, SQLite rows >= 10000, "
        "orders >= 100*",
    ])  # fmt: skip


def test_tests_without_v13_run_start_no_stack(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dod=DOD_LIKE)
    result = pytester.runpytest_subprocess("-k", "no_stack", "-s")
    result.assert_outcomes(passed=1, deselected=6)
    result.stdout.no_fnmatch_line("*v13: starting*")


def test_v13_items_get_a_timeout_that_covers_the_whole_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture(scope='session')\ndef v13_run(request):\n    return request.param\n"
    )
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
        def stack():
            yield
            open({str(marker)!r}, "w").write("torn down")
        """
    )
    pytester.makepyfile(
        test_t="import time\n\ndef test_long(stack):\n    print('RUNNING', flush=True)\n    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider"],
                            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "RUNNING" in line:
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert marker.read_text() == "torn down", out
    assert proc.returncode == 2  # interrupted
