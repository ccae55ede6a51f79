"""The package installs as plain pure Python, and works from any venv that installs it.

Two installs the README's users make, each into its own fresh venv:

* a NON-editable ``pip install .``: ``skelly --help`` and ``skelly --version`` run and the bus
  tests pass against the installed copy (imported from the venv's site-packages, never from the
  source tree), and the install is a pure wheel with no compiled module in it;
* a SECOND venv with ``pip install -e .`` on this same checkout (the outer venv running this suite
  being the first): ``skelly --help`` and ``skelly --version`` run and the bus tests pass,
  importing the ``.py`` sources of this checkout.

To stay fast on a loaded machine the venvs are made without pip, the project is installed by this
venv's pip (``--python``) with ``--no-deps --no-build-isolation --no-index`` (the build needs only
setuptools), and the runtime and test dependencies come from this venv's site-packages through a
``.pth`` path line; a path line adds only that directory, so the outer venv's own editable install
of this project is not active in the new venv.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

# ~10 s each on a loaded 2-core x86 machine; pip and two interpreters under arm64 emulation take
# several times that, so more room than the suite's 120 s default
pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# what a fresh checkout does not have (or the build never reads): VCS data, venvs, tool caches
# (every dot entry), build products, run data
NOT_IN_A_CHECKOUT = shutil.ignore_patterns(
    ".*", "build", "dist", "*.egg-info", "__pycache__", "var"
)
# run in the new venv: import the bus first (pytest then uses that very module), say where it
# came from, then run the bus tests
RUN_BUS_TESTS = """
import importlib.metadata, sys
import bus, bus.router, bus.metrics, pytest
dist = importlib.metadata.distribution("skelly-jelly-edge")
print("BUS", bus.__file__)
print("ROUTER", bus.router.__file__)
print("METRICS", bus.metrics.__file__)
print("DIST", dist.locate_file(""))
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "test_bus.py"]))
"""


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH"):
        env.pop(name, None)
    return env


def _run(args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _new_venv(path: Path) -> Path:
    """A venv without pip whose site-packages also sees this venv's dependencies."""
    made = _run([sys.executable, "-m", "venv", "--without-pip", path], cwd=path.parent)
    assert made.returncode == 0, made.stderr
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(path), "platbase": str(path)}))
    assert purelib.is_dir(), purelib
    outer = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    (purelib / "outer_deps.pth").write_text("".join(f"{p}\n" for p in sorted(outer)))
    return path / "bin"


def _pip_install(bin_dir: Path, *args: str | Path) -> None:
    out = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            bin_dir / "python",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-cache-dir",
            *args,
        ],
        cwd=bin_dir.parent,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def _skelly_help_and_version(bin_dir: Path) -> None:
    out = _run([bin_dir / "skelly", "--help"], cwd=bin_dir.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("usage: skelly"), out.stdout[:500]
    out = _run([bin_dir / "skelly", "--version"], cwd=bin_dir.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == f"skelly {VERSION}", out.stdout[:500]  # the venv's metadata


def _bus_tests(bin_dir: Path, where: Path) -> dict[str, str]:
    """Run tests/unit/test_bus.py from a directory holding only it and the shared conftest."""
    where.mkdir()
    shutil.copy2(TESTS / "conftest.py", where / "conftest.py")
    (where / "tests").mkdir()  # the conftest imports tests.slowness (the timing allowance)
    shutil.copy2(TESTS / "slowness.py", where / "tests" / "slowness.py")
    shutil.copy2(TESTS / "unit" / "test_bus.py", where / "test_bus.py")
    out = _run([bin_dir / "python", "-c", RUN_BUS_TESTS], cwd=where)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout, out.stdout[-2000:]
    found = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in {"BUS", "ROUTER", "METRICS", "DIST"}:
            found[key] = value
    assert len(found) == 4, out.stdout[-2000:]
    return found


def test_non_editable_install_is_pure_python_and_runs_from_site_packages(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"  # a copy: an in-tree build/ of an earlier build is not reused
    shutil.copytree(ROOT, checkout, ignore=NOT_IN_A_CHECKOUT, symlinks=True)
    venv = tmp_path / "venv"
    bin_dir = _new_venv(venv)
    _pip_install(bin_dir, checkout)

    _skelly_help_and_version(bin_dir)
    found = _bus_tests(bin_dir, tmp_path / "run")
    site_packages = Path(found["DIST"]).resolve()
    assert site_packages.is_relative_to(venv.resolve()), found
    for key in ("BUS", "ROUTER", "METRICS"):
        path = Path(found[key]).resolve()
        assert path.is_relative_to(site_packages), found  # the installed copy, not a source tree
        assert path.suffix == ".py", found  # pure Python: no compiled module shadows the source

    # a plain pure-Python wheel: nothing compiled, nothing tied to this machine's C ABI
    dist_info = next(site_packages.glob("skelly_jelly_edge-*.dist-info"))
    assert "Root-Is-Purelib: true" in (dist_info / "WHEEL").read_text()
    assert "Tag: py3-none-any" in (dist_info / "WHEEL").read_text()
    record = (dist_info / "RECORD").read_text().splitlines()
    compiled = [line for line in record if line.split(",")[0].endswith((".so", ".pyd"))]
    assert not compiled, compiled


def test_second_venv_with_editable_install_on_the_same_checkout(tmp_path: Path) -> None:
    venv = tmp_path / "second-venv"
    bin_dir = _new_venv(venv)
    _pip_install(bin_dir, "-e", ROOT)

    _skelly_help_and_version(bin_dir)
    found = _bus_tests(bin_dir, tmp_path / "run")
    assert Path(found["DIST"]).resolve().is_relative_to(venv.resolve()), found  # venv2's install
    # the sources of this checkout, as edited: no build product stands in for them
    assert Path(found["BUS"]) == ROOT / "bus" / "__init__.py", found
    assert Path(found["ROUTER"]) == ROOT / "bus" / "router.py", found
    assert Path(found["METRICS"]) == ROOT / "bus" / "metrics.py", found
    stale = [p.name for p in (ROOT / "bus").iterdir() if p.suffix in {".so", ".pyd"}]
    assert not stale, f"compiled modules left by the old mypyc build shadow the sources: rm {stale}"
