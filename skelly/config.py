"""Configuration: one TOML file, frozen dataclasses, ``SKELLY_`` environment overrides.

Every section is a frozen dataclass owned by the code it configures (``modules.storage`` defines
``StorageConfig`` and so on); this module only composes them and loads values.  Defaults run with
no file at all (simulator mode).  An environment variable ``SKELLY_<SECTION>__<KEY>`` overrides a
key, e.g. ``SKELLY_STORAGE__RAW_RETENTION_HOURS=12``; ``SKELLY_DATA_DIR`` sets the top-level key.

Errors say which key in which file was wrong and what was expected (:class:`ConfigError`).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modules.ai import AIConfig
from modules.analysis import AnalysisConfig
from modules.data_capture import IngestConfig
from modules.figurine import FigurineConfig
from modules.gamification import GamificationConfig
from modules.mqtt_bridge.config import MqttConfig
from modules.orchestrator import OrchestratorConfig
from modules.storage import StorageConfig

ENV_PREFIX = "SKELLY_"


class ConfigError(ValueError):
    """The configuration file or an override is wrong; the message says what and where."""


@dataclass(frozen=True)
class BusConfig:
    send_timeout_s: float = 2.0
    """How long a reliable publish waits for room before dead-lettering."""
    dead_letter_keep: int = 1000


@dataclass(frozen=True)
class Config:
    data_dir: str = ""
    """Where state lives (database, token, spool).  Empty: $STATE_DIRECTORY (systemd) or
    ~/.local/state/skelly."""
    bus: BusConfig = field(default_factory=BusConfig)
    orchestrator: OrchestratorConfig = field(default_factory=OrchestratorConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    gamification: GamificationConfig = field(default_factory=GamificationConfig)
    ai: AIConfig = field(default_factory=AIConfig)
    figurine: FigurineConfig = field(default_factory=FigurineConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)

    def state_dir(self) -> Path:
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        if os.environ.get("STATE_DIRECTORY"):
            return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
        return Path.home() / ".local" / "state" / "skelly"


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        errors = []
        for option in typing.get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not fit {tp}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(
                _coerce(v, a, f"{where}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        return list(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table of settings, got {value!r}")
        return _build(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _build(cls: type[Any], values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown setting {prefix}{unknown[0]}; known settings here: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in values.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from exc
    return obj


def _parse_env_value(raw: str, tp: Any) -> Any:
    if tp is bool or tp == bool | None:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    hints = typing.get_type_hints(Config)
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in ("SKELLY_CONFIG", "SKELLY_HARDWARE"):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if "__" in rest:
            section, key = rest.split("__", 1)
            if section not in hints or not dataclasses.is_dataclass(hints[section]):
                raise ConfigError(f"environment {name}: there is no section [{section}]")
            sec_hints = typing.get_type_hints(hints[section])
            if key not in sec_hints:
                raise ConfigError(
                    f"environment {name}: [{section}] has no setting {key!r}; "
                    f"known: {', '.join(sorted(sec_hints))}"
                )
            out.setdefault(section, {})[key] = _parse_env_value(raw, sec_hints[key])
        elif rest in hints and not dataclasses.is_dataclass(hints[rest]):
            out[rest] = _parse_env_value(raw, hints[rest])
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load defaults ← file (if given) ← ``SKELLY_`` environment overrides."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"config file {p} does not exist; copy deploy/config.example.toml there "
                "or leave --config out to run on built-in defaults"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    data = _merge(data, _env_overrides(env))
    try:
        cfg: Config = _build(Config, data, "")
    except ConfigError as exc:
        where = f" in {path}" if path is not None else ""
        raise ConfigError(f"{exc}{where}") from None
    return cfg
