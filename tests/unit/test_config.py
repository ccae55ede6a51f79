"""Config: defaults with no file, TOML values, SKELLY_ overrides, clear errors."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from skelly.config import Config, ConfigError, load


def test_defaults_need_no_file() -> None:
    cfg = load(None, env={})
    assert cfg == Config()
    assert cfg.bus.send_timeout_s == 2.0


def test_file_values_and_env_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('data_dir = "/var/lib/x"\n[bus]\nsend_timeout_s = 3\n')
    cfg = load(f, env={"SKELLY_BUS__DEAD_LETTER_KEEP": "5"})
    assert cfg.data_dir == "/var/lib/x"
    assert cfg.bus.send_timeout_s == 3.0 and isinstance(cfg.bus.send_timeout_s, float)
    assert cfg.bus.dead_letter_keep == 5
    cfg = load(f, env={"SKELLY_BUS__SEND_TIMEOUT_S": "7.5", "SKELLY_DATA_DIR": "/tmp/s"})
    assert cfg.bus.send_timeout_s == 7.5 and cfg.data_dir == "/tmp/s"
    assert cfg.state_dir() == Path("/tmp/s")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[bus]\nsend_timout_s = 3\n", "unknown setting bus.send_timout_s"),
        ("[bus]\nsend_timeout_s = 'soon'\n", "bus.send_timeout_s: expected a number"),
        ("[bus]\ndead_letter_keep = 1.5\n", "bus.dead_letter_keep: expected a whole number"),
        ("[nosuch]\nx = 1\n", "unknown setting nosuch"),
        ("bus = 3\n", "bus: expected a table"),
        ("[bus\n", "not valid TOML"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load(f, env={})
    assert str(f) in str(info.value)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; copy deploy/config.example.toml"):
        load(tmp_path / "nope.toml", env={})


def test_bad_environment_override_is_named() -> None:
    with pytest.raises(ConfigError, match="SKELLY_BUS__NOPE"):
        load(None, env={"SKELLY_BUS__NOPE": "1"})
    with pytest.raises(ConfigError, match="no section"):
        load(None, env={"SKELLY_NOSECTION__X": "1"})
    with pytest.raises(ConfigError, match="expected a number"):
        load(None, env={"SKELLY_BUS__SEND_TIMEOUT_S": "soon"})


EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config.example.toml"


def test_example_config_loads_and_matches_the_defaults() -> None:
    assert load(EXAMPLE, env={}) == Config()


def test_example_config_lists_every_setting() -> None:
    """The example is where a user looks up a key: every setting of every section is in it
    (``data_dir`` as a comment, its default depends on how the service runs)."""
    text = EXAMPLE.read_text()
    table = tomllib.loads(text)
    missing = []

    def walk(obj: Any, section: dict[str, Any], path: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                sub = section.get(f.name, {})
                walk(value, sub if isinstance(sub, dict) else {}, f"{path}{f.name}.")
            elif f.name not in section:
                missing.append(path + f.name)

    walk(Config(), table, "")
    assert missing == ["data_dir"], missing
    assert "# data_dir = " in text
