"""The plugin's options: each has a CLI flag and an ini key of the same name, resolved once in
``pytest_configure`` (CLI > ini > default) into a frozen :class:`Settings`. Resolving reads no
file: a session that runs no v13 item touches nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.spec import MODULES

__all__ = ["OPTIONS", "SETTINGS_KEY", "Settings", "add_options", "resolve"]


@dataclass(frozen=True)
class Option:
    name: str  # --v13-<name> and ini v13_<name>
    default: str
    help: str
    flag_only: bool = False  # a plain flag on the command line; the ini key takes true/false

    @property
    def flag(self) -> str:
        return f"--v13-{self.name}"

    @property
    def ini(self) -> str:
        return f"v13_{self.name.replace('-', '_')}"


OPTIONS = (
    Option("minutes", "2", "run length of each stack, in minutes (the DoD's absolute numbers apply at 30)"),
    Option("sink", "both", "jsonl, sqlite or both: one stack run per sink"),
    Option("symbols", "", "comma-separated symbols (default: the config's)"),
    Option("config", "", "config file (default: config/defaults.yaml)"),
    Option("enable", ",".join(MODULES), "stages to run, comma-separated"),
    Option("keep", "false", "keep the run roots after the session (ini: true/false)", flag_only=True),
    Option(
        "root",
        "",
        "directory for the run roots and, unless --html is given, the HTML report "
        "(default: a new temporary directory per run, the report in logs/report/)",
    ),
)


@dataclass(frozen=True)
class Settings:
    minutes: float
    sinks: tuple[str, ...]
    symbols: tuple[str, ...] | None
    config: Path | None
    enable: tuple[str, ...]
    keep: bool
    root: Path | None


SETTINGS_KEY = pytest.StashKey[Settings]()


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("v13", "V13 acceptance run")
    for opt in OPTIONS:
        if opt.flag_only:
            group.addoption(opt.flag, dest=opt.ini, action="store_const", const="true", default=None,
                            help=f"{opt.help} (ini: {opt.ini})")  # fmt: skip
        else:
            group.addoption(opt.flag, dest=opt.ini, default=None, metavar=opt.name.upper(),
                            help=f"{opt.help} (ini: {opt.ini})")  # fmt: skip
        parser.addini(opt.ini, help=opt.help, default=None)


def _raw(config: pytest.Config, opt: Option) -> tuple[str, str]:
    cli = config.getoption(opt.ini)
    if cli is not None:
        return str(cli), f"option {opt.flag}"
    ini = config.getini(opt.ini)
    if ini is not None and ini != "" and ini != []:
        return str(ini), f"ini key {opt.ini}"
    return opt.default, "default"


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def resolve(config: pytest.Config) -> Settings:
    """Validate every option with its source; a bad value is a usage error (exit 4)."""
    values = {opt.name: _raw(config, opt) for opt in OPTIONS}

    def bad(name: str, why: str) -> pytest.UsageError:
        value, where = values[name]
        return pytest.UsageError(f"Invalid {value!r} from {where}: {why}")

    try:
        minutes = float(values["minutes"][0])
    except ValueError:
        raise bad("minutes", "expected a number of minutes, e.g. 2 or 30") from None
    if minutes <= 0:
        raise bad("minutes", "expected a positive number of minutes")
    sink = values["sink"][0].lower()
    if sink not in ("jsonl", "sqlite", "both"):
        raise bad("sink", "expected jsonl, sqlite or both")
    enable = _csv(values["enable"][0])
    if not enable or any(m not in MODULES for m in enable):
        raise bad("enable", f"expected a comma-separated subset of {','.join(MODULES)}")
    keep = values["keep"][0].lower()
    if keep not in ("true", "false", "1", "0", "yes", "no"):
        raise bad("keep", "expected true or false")
    config_path = Path(values["config"][0]) if values["config"][0] else None
    if config_path is not None and not config_path.is_file():
        raise bad("config", "no such file")
    return Settings(
        minutes=minutes,
        sinks=("jsonl", "sqlite") if sink == "both" else (sink,),
        symbols=_csv(values["symbols"][0]) or None,
        config=config_path,
        enable=enable,
        keep=keep in ("true", "1", "yes"),
        root=Path(values["root"][0]) if values["root"][0] else None,
    )
