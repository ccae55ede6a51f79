"""The bus runs compiled (mypyc) where a compiler existed at install, pure Python otherwise; a
stale compiled copy is never used, and the pure copy passes the same delivery tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _state_in(pythonpath: Path, env_extra: dict[str, str] | None = None) -> str:
    env = dict(os.environ)
    env.pop("SKELLY_PURE_PYTHON", None)
    env.update(env_extra or {})
    env["PYTHONPATH"] = str(pythonpath)
    code = "import bus, bus.router; print(bus._compiled.state['router'], bus.router.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=pythonpath,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert str(pythonpath) in out.stdout  # the copy was imported, not the installed tree
    return out.stdout.strip()


def _copy_tree(tmp_path: Path) -> Path:
    dest = tmp_path / "tree"
    shutil.copytree(ROOT / "bus", dest / "bus", ignore=shutil.ignore_patterns("__pycache__"))
    for so in ROOT.glob("*__mypyc*"):
        shutil.copy2(so, dest / so.name)
    return dest


def test_compiled_copy_is_used_only_while_its_source_is_unchanged(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    compiled = any((tree / "bus").glob("router.*.so"))
    first = _state_in(tree)
    if compiled:
        assert first.startswith("compiled") and first.endswith(".so")
    else:  # installed without a compiler: pure, from the .py
        assert first.startswith("pure") and first.endswith("router.py")
    router = tree / "bus" / "router.py"
    router.write_text(router.read_text() + "\n# edited after install\n")
    edited = _state_in(tree)
    assert edited.startswith("pure") and edited.endswith("router.py")
    if compiled:
        assert "source changed since compiled: router" in edited


def test_pure_python_switch(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    out = _state_in(tree, {"SKELLY_PURE_PYTHON": "1"})
    assert out.startswith("pure") and out.endswith("router.py")


def test_pure_python_bus_passes_the_delivery_tests() -> None:
    env = {**os.environ, "SKELLY_PURE_PYTHON": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_bus.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
