"""The dependency direction of ARCHITECTURE.md, enforced by walking every import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = {"bus", "modules", "firmware_bridge", "hw_sim", "skelly"}
STDLIB = set(sys.stdlib_module_names)

# package -> project packages it may import
ALLOWED = {
    "bus": set(),
    "firmware_bridge": {"firmware_bridge", "bus"},
    "modules": {"modules", "bus", "firmware_bridge"},
    "hw_sim": {"hw_sim", "bus", "firmware_bridge", "modules"},
    "skelly": PROJECT,
}
# sans-I/O core of the firmware bridge: no project imports beyond itself, no I/O libraries
CORE_FORBIDDEN = {"asyncio", "serial", "gpiozero", "time", "socket", "selectors", "threading", "os"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_project_imports_follow_the_dependency_direction(package: str) -> None:
    bad = []
    for path in files(package):
        for name in imports_of(path) & PROJECT:
            if name not in ALLOWED[package] and name != package:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_bus_imports_only_the_standard_library() -> None:
    bad = []
    for path in files("bus"):
        for name in imports_of(path) - PROJECT:
            if name not in STDLIB and name != "__future__":
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_firmware_bridge_core_is_sans_io() -> None:
    core = ROOT / "firmware_bridge" / "core"
    paths = sorted(core.rglob("*.py")) if core.exists() else []
    bad = []
    for path in paths:
        names = imports_of(path)
        for name in names & (CORE_FORBIDDEN | (PROJECT - {"firmware_bridge"})):
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_walker_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import asyncio\nfrom serial import Serial\nfrom . import y\n")
    assert imports_of(sample) == {"asyncio", "serial"}
