"""The validated configuration: one model section per stage, loaded from config/defaults.yaml.

Every key is required in the file (the YAML is the one source of defaults) and unknown keys are
rejected. Three environment variables override the file, nothing else does:
``V13_SINK`` -> ``signal.sink``, ``V13_OUTPUT_DIR`` -> ``paths.runtime_dir``,
``PAPER_ENABLE`` -> ``broker.paper``.

Example::

    cfg = load_config("config/defaults.yaml")
    cfg.signal.sink            # 'jsonl' unless V13_SINK says otherwise
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from v13.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_OVERRIDES",
    "Config",
    "DepthMode",
    "ModeKind",
    "Preset",
    "SinkKind",
    "SourceKind",
    "config_hash",
    "default_config_path",
    "load_config",
    "packaged_defaults",
]

DEFAULT_CONFIG_PATH = Path("config/defaults.yaml")

# Environment variable -> dotted config key. The whitelist the orchestrator passes to children.
ENV_OVERRIDES: dict[str, str] = {
    "V13_SINK": "signal.sink",
    "V13_OUTPUT_DIR": "paths.runtime_dir",
    "PAPER_ENABLE": "broker.paper",
}


class SinkKind(StrEnum):
    JSONL = "jsonl"
    SQLITE = "sqlite"


class SourceKind(StrEnum):
    SIM = "sim"
    REPLAY = "replay"
    BINANCE = "binance"


class Preset(StrEnum):
    NULL = "null"
    WEAK = "weak"
    STRONG = "strong"


class ModeKind(StrEnum):
    AUTO = "auto"
    ACTIVE = "active"
    QUIET = "quiet"


PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
PosInt = Annotated[int, Field(gt=0)]


class _Section(BaseModel):
    # strict: a bool is not an int, a string is not a number; validated in JSON mode, where a
    # string is a Path or an enum value and a list a tuple
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PathsConfig(_Section):
    data_dir: Path
    runtime_dir: Path
    logs_dir: Path
    artifacts_dir: Path


class SimConfig(_Section):
    preset: Preset
    seed: int
    book_levels: Annotated[int, Field(ge=5, le=20)]
    step_ms: PosInt


class ReplayConfig(_Section):
    path: Path
    speed: NonNegFloat


class DepthMode(StrEnum):
    PARTIAL = "partial"
    DIFF = "diff"


class BinanceConfig(_Section):
    market_url: str
    public_url: str
    depth_mode: DepthMode
    depth_stream: str
    diff_stream: str
    rest_url: str
    snapshot_limit: Annotated[int, Field(gt=0, le=1000)]
    max_streams_per_connection: Annotated[int, Field(gt=0, le=1024)]
    silence_timeout_s: PosFloat
    backoff_initial_s: PosFloat
    backoff_max_s: PosFloat
    stable_after_s: NonNegFloat
    max_connection_age_s: PosFloat
    record: bool


class SourceConfig(_Section):
    kind: SourceKind
    sim: SimConfig
    replay: ReplayConfig
    binance: BinanceConfig


class SegmentsConfig(_Section):
    rotate_seconds: PosFloat
    rotate_max_mb: PosFloat
    flush_ms: Annotated[int, Field(gt=0, le=200)]
    pressure_max_shards: PosInt
    pressure_max_file_mb: PosFloat


class HarvestConfig(_Section):
    write_raw: bool
    status_interval_s: Annotated[float, Field(gt=0, le=2)]


class FeaturesConfig(_Section):
    interval_ms: PosInt
    ofi_levels: Annotated[int, Field(ge=1, le=20)]
    ofi_weights: list[NonNegFloat]
    z_window: Annotated[int, Field(ge=2)]
    z_warmup: Annotated[int, Field(ge=2)]
    sigma_floor_ofi: PosFloat
    sigma_floor_cvd: PosFloat
    z_clip: PosFloat
    gap_ms: PosInt
    allowed_lateness_ms: Annotated[int, Field(ge=0)]
    route_idle_ms: Annotated[int, Field(ge=0)]
    quiet_grace_ms: Annotated[int, Field(ge=0)]
    fusion_w_ofi: NonNegFloat
    fusion_w_cvd: NonNegFloat
    divergence_lookback: Annotated[int, Field(ge=2)]
    conflict_z: PosFloat
    trade_rate_window_s: PosFloat
    vol_window: Annotated[int, Field(ge=2)]

    @field_validator("ofi_weights")
    @classmethod
    def _one_weight_per_level(cls, value: list[float], info: ValidationInfo) -> list[float]:
        if not value or sum(value) <= 0:
            raise ValueError("needs at least one positive weight")
        levels = info.data.get("ofi_levels")  # declared before ofi_weights, so validated first
        if levels is not None and len(value) != levels:
            raise ValueError(
                f"{len(value)} weight(s) for ofi_levels = {levels}; give exactly one weight per level"
            )
        return value


class Thresholds(_Section):
    base: tuple[PosFloat, PosFloat]
    active: tuple[PosFloat, PosFloat]
    quiet: tuple[PosFloat, PosFloat]

    @field_validator("base", "active", "quiet")
    @classmethod
    def _strong_above_buy(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[1] < value[0]:
            raise ValueError("the strong threshold (second) must not be below the buy threshold")
        return value


class GuardsConfig(_Section):
    spread_bps_max: PosFloat
    lag_ms_max: PosFloat
    consistency_min: NonNegFloat
    weak_score_min: NonNegFloat


class SignalConfig(_Section):
    sink: SinkKind
    queue_max: PosInt
    sqlite_batch_rows: PosInt
    sqlite_flush_ms: PosInt
    thresholds: Thresholds
    guards: GuardsConfig


class StrategyModeConfig(_Section):
    mode: ModeKind
    enter_active_score: NonNegFloat
    exit_active_score: NonNegFloat
    min_dwell_s: NonNegFloat
    trade_rate_ref: PosFloat
    quote_rate_ref: PosFloat
    vol_bps_ref: PosFloat
    volume_usd_ref: PosFloat


class BrokerConfig(_Section):
    mock: bool
    paper: bool
    normal_every: PosInt
    order_usd: PosFloat
    slippage_bps: NonNegFloat
    fee_bps: NonNegFloat


class ReportConfig(_Section):
    interval_s: Annotated[float, Field(gt=0, le=60)]
    chart: bool
    markout_horizons_s: Annotated[list[PosInt], Field(min_length=1)]
    niceness: Annotated[int, Field(ge=0, le=19)]


class OrchestratorConfig(_Section):
    health_interval_s: PosFloat
    ready_timeout_s: PosFloat
    restart_backoff_s: list[NonNegFloat]
    max_restarts: Annotated[int, Field(ge=0)]
    stop_grace_s: PosFloat
    heartbeat_max_age_s: PosFloat


class AcceptanceConfig(_Section):
    reference_minutes: PosFloat
    jsonl_shards_min: PosInt
    sqlite_rows_min: PosInt
    orders_min: PosInt
    rss_mb_max: PosFloat
    open_files_max: PosInt
    contract_sample: PosInt


class Config(_Section):
    """The whole validated configuration; ``source_path`` is where it was read from."""

    symbols: Annotated[list[Annotated[str, Field(pattern=r"^[A-Z0-9]{2,20}$")]], Field(min_length=1)]
    paths: PathsConfig
    source: SourceConfig
    segments: SegmentsConfig
    harvest: HarvestConfig
    features: FeaturesConfig
    signal: SignalConfig
    strategy_mode: StrategyModeConfig
    broker: BrokerConfig
    report: ReportConfig
    orchestrator: OrchestratorConfig
    acceptance: AcceptanceConfig
    source_path: Path = Field(default=Path("<memory>"), exclude=True)


def default_config_path() -> Path:
    """``config/defaults.yaml`` of the work root (the current directory; ``python -m v13 init``
    writes one), else the defaults shipped with the package: in an installed wheel
    ``v13/_config/defaults.yaml``, in a source checkout the repository's ``config/defaults.yaml``."""
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH
    return packaged_defaults()


def packaged_defaults() -> Path:
    """The defaults that came with the code (see ``[tool.setuptools.package-dir]``)."""
    here = Path(__file__).resolve().parent
    installed = here / "_config" / DEFAULT_CONFIG_PATH.name
    return installed if installed.is_file() else here.parent / DEFAULT_CONFIG_PATH


def config_hash(path: Path) -> str:
    """sha256 of the config file's bytes, for the run manifest."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_config(
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    sources: Mapping[str, str] | None = None,
) -> Config:
    """Read, override and validate a config file.

    Args:
        path: the YAML file; None means :func:`default_config_path`.
        overrides: dotted keys set after the file and the environment (``{"signal.sink": "sqlite"}``),
            used by command-line flags and tests.
        environ: the environment to read the three overrides from; ``os.environ`` by default.
        sources: where an override came from, by dotted key (``{"symbols": "--symbols"}``), so an
            invalid value is blamed on the option that set it, not on the file.

    Raises:
        ConfigError: missing file, invalid YAML, unknown key, wrong type or bad value; the message
            names the file (or the option, or the environment variable) and the dotted key.
    """
    cfg_path = Path(path) if path is not None else default_config_path()
    raw = _read_yaml(cfg_path)
    env = os.environ if environ is None else environ
    origin: dict[str, str] = {}
    for var, key in ENV_OVERRIDES.items():
        value = env.get(var)
        if value not in (None, ""):
            _set_dotted(raw, key, _env_value(var, value, cfg_path), cfg_path)
            origin[key] = f"environment variable {var}"
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value, cfg_path)
        if sources and key in sources:
            origin[key] = sources[key]
    for key, value in _walk(raw):
        if isinstance(value, float) and not math.isfinite(value):
            where = origin.get(_top_key(key, origin), f"config file {cfg_path}")
            raise ConfigError(f"invalid {where}: key {key!r} must be a finite number (got {value!r})")
    try:
        doc = orjson.dumps({**raw, "source_path": str(cfg_path)}, default=str)
        return Config.model_validate_json(doc)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, cfg_path, origin)) from None


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a parsed YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{prefix}.{i}")
    else:
        yield prefix, node


def _top_key(key: str, origin: Mapping[str, str]) -> str:
    """The overridden key that ``key`` lies under (``symbols.0`` -> ``symbols``), else ``key``."""
    for candidate in origin:
        if key == candidate or key.startswith(candidate + "."):
            return candidate
    return key


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist; pass --config with the path of a copy of "
            "config/defaults.yaml"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections (symbols, paths, source, ...), "
            f"not {type(data).__name__}"
        )
    return copy.deepcopy(data)


def _env_value(var: str, value: str, path: Path) -> Any:
    if var != "PAPER_ENABLE":
        return value
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ConfigError(
        f"environment variable PAPER_ENABLE={value!r} (overriding broker.paper of {path}) must be 1 or 0"
    )


def _set_dotted(raw: dict[str, Any], key: str, value: Any, path: Path) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            section = key.rsplit(".", 1)[0]
            raise ConfigError(f"config file {path} has no section {section!r} to set {key!r} in")
        node = child
    node[leaf] = value


def _describe(exc: ValidationError, path: Path, origin: Mapping[str, str]) -> str:
    """One line: the source blamed (the option or variable that set the first bad key, else the
    file), then every problem with its dotted key."""
    problems = []
    missing = []
    blamed: list[str] = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        top = _top_key(key, origin)
        if top in origin:
            blamed.append(origin[top])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key {key!r} (remove it or check its spelling)")
        elif err["type"] == "missing":
            missing.append(repr(key))
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            problems.append(f"key {key!r}: {err['msg']}{shown}")
    if missing:
        problems.append(f"missing key(s) {', '.join(missing)} (copy from config/defaults.yaml)")
    where = f"{blamed[0]} (over config file {path})" if blamed else f"config file {path}"
    return f"invalid {where}: " + "; ".join(problems)
