"""deploy/install.sh against a scratch root (``--root``): every file, owner and mode it makes.

The installer runs for real (bash, useradd/groupadd/usermod ``--prefix``, ``systemctl --root``,
a real venv with the project installed by pip) inside a directory that holds only the user and
group databases; nothing on the machine running the tests is touched.  To stay offline and fast
the project is installed from a wheel built once from a copy of this checkout, without its
dependencies (``SKELLY_PIP_ARGS``); what is checked is what the installer itself decides.

Setting owners needs root (like the real installer), so these tests run as root: CI does.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modules.ingest.token import read_token
from tests.deploy.udev_match import evaluate, load, parse_walk

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "deploy" / "install.sh"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="the installer sets owners: run as root")

PASSWD = "root:x:0:0:root:/root:/bin/bash\n"
GROUP = "root:x:0:\ndialout:x:20:\n"  # gpio missing, as on plain Debian: the installer adds it
SHADOW = "root:*:20000:0:99999:7:::\n"
GSHADOW = "root:*::\ndialout:*::\n"
ACCOUNT_FILES = {"passwd", "group", "shadow", "gshadow"}


@dataclass(frozen=True)
class Entry:
    kind: str  # d, f, l
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    digest: str  # file content hash or link target

    def owner(self, users: dict[int, str], groups: dict[int, str]) -> tuple[str, str]:
        return users.get(self.uid, str(self.uid)), groups.get(self.gid, str(self.gid))


def snapshot(root: Path) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            kind, digest = "l", os.readlink(path)
        elif stat.S_ISDIR(st.st_mode):
            kind, digest = "d", ""
        else:
            kind, digest = "f", hashlib.sha256(path.read_bytes()).hexdigest()
        rel = str(path.relative_to(root))
        mode = stat.S_IMODE(st.st_mode)
        found[rel] = Entry(kind, mode, st.st_uid, st.st_gid, st.st_mtime_ns, digest)
    return found


def accounts(root: Path, name: str) -> dict[str, list[str]]:
    rows = (line.split(":") for line in (root / "etc" / name).read_text().splitlines())
    return {row[0]: row for row in rows if row and row[0]}


def names(root: Path) -> tuple[dict[int, str], dict[int, str]]:
    users = {int(r[2]): n for n, r in accounts(root, "passwd").items()}
    groups = {int(r[2]): n for n, r in accounts(root, "group").items()}
    return users, groups


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as a wheel, built (pure Python, offline) from a copy of this checkout."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "setup.py", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    for package in ("bus", "modules", "firmware_bridge", "hw_sim", "skelly"):
        shutil.copytree(
            ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
    out = work / "dist"
    env = dict(os.environ, SKELLY_PURE_PYTHON="1")
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("--no-index", "-w", str(out), str(src)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("skelly_jelly_edge-*.whl")
    return found


def new_root(base: Path) -> Path:
    root = base / "root"
    (root / "etc").mkdir(parents=True)
    for name, text in (
        ("passwd", PASSWD),
        ("group", GROUP),
        ("shadow", SHADOW),
        ("gshadow", GSHADOW),
    ):
        (root / "etc" / name).write_text(text)
    (root / "etc" / "shadow").chmod(0o640)
    (root / "etc" / "gshadow").chmod(0o640)
    return root


def install(
    root: Path, *args: str, wheel: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", str(INSTALL), "--root", str(root), "--python", sys.executable, *args]
    if wheel is not None:
        cmd += ["--from", str(wheel)]
    run_env = dict(os.environ, SKELLY_PIP_ARGS="--no-deps --no-index")
    run_env.pop("VIRTUAL_ENV", None)
    run_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=600)


def copy_of(root: Path, base: Path) -> Path:
    """An exact copy (owners, modes, times) to change without spoiling the shared install."""
    copy = base / "copy"
    subprocess.run(["cp", "-a", str(root), str(copy)], check=True, timeout=300)
    assert snapshot(copy) == snapshot(root)
    return copy


@dataclass
class Installed:
    root: Path
    wheel: Path
    first: subprocess.CompletedProcess[str]
    after_first: dict[str, Entry]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    if not AS_ROOT:
        pytest.skip("the installer sets owners: run as root")
    root = new_root(tmp_path_factory.mktemp("install"))
    first = install(root, wheel=wheel)
    assert first.returncode == 0, first.stdout + first.stderr
    yield Installed(root, wheel, first, snapshot(root))


# relative path -> (kind, mode, owner, group); the venv's inside and the account files aside
EXPECTED = {
    "opt": ("d", 0o755, "root", "root"),
    "opt/skelly": ("d", 0o755, "root", "root"),
    "opt/skelly/venv": ("d", 0o755, "root", "root"),
    "opt/skelly/docs": ("d", 0o755, "root", "root"),
    "opt/skelly/docs/OPERATIONS.md": ("f", 0o644, "root", "root"),
    "opt/skelly/docs/HARDWARE.md": ("f", 0o644, "root", "root"),
    "usr": ("d", 0o755, "root", "root"),
    "usr/local": ("d", 0o755, "root", "root"),
    "usr/local/bin": ("d", 0o755, "root", "root"),
    "usr/local/bin/skelly": ("l", 0o777, "root", "root"),
    "etc/skelly": ("d", 0o750, "root", "skelly"),
    "etc/skelly/config.toml": ("f", 0o640, "root", "skelly"),
    "etc/skelly/config.example.toml": ("f", 0o644, "root", "root"),
    "var": ("d", 0o755, "root", "root"),
    "var/lib": ("d", 0o755, "root", "root"),
    "var/lib/skelly": ("d", 0o700, "skelly", "skelly"),
    "var/lib/skelly/ingest.token": ("f", 0o600, "skelly", "skelly"),
    "etc/systemd": ("d", 0o755, "root", "root"),
    "etc/systemd/system": ("d", 0o755, "root", "root"),
    "etc/systemd/system/skelly.service": ("f", 0o644, "root", "root"),
    "etc/systemd/system/multi-user.target.wants": ("d", 0o755, "root", "root"),
    "etc/systemd/system/multi-user.target.wants/skelly.service": ("l", 0o777, "root", "root"),
    "etc/udev": ("d", 0o755, "root", "root"),
    "etc/udev/rules.d": ("d", 0o755, "root", "root"),
    "etc/udev/rules.d/70-skelly.rules": ("f", 0o644, "root", "root"),
}


def _outside_venv(found: dict[str, Entry]) -> dict[str, Entry]:
    return {
        p: e
        for p, e in found.items()
        if not p.startswith("opt/skelly/venv/")
        and p != "etc"
        and p.removeprefix("etc/").rstrip("-") not in ACCOUNT_FILES
    }


@needs_root
def test_every_file_owner_and_mode(installed: Installed) -> None:
    users, groups = names(installed.root)
    got = {
        path: (e.kind, e.mode, *e.owner(users, groups))
        for path, e in _outside_venv(installed.after_first).items()
    }
    assert got == EXPECTED
    links = {p: e.digest for p, e in installed.after_first.items() if e.kind == "l"}
    assert links["usr/local/bin/skelly"] == "/opt/skelly/venv/bin/skelly"
    assert (
        links["etc/systemd/system/multi-user.target.wants/skelly.service"]
        == "/etc/systemd/system/skelly.service"
    )
    # the venv is root's: the service cannot rewrite its own code
    venv = {p: e for p, e in installed.after_first.items() if p.startswith("opt/skelly/venv/")}
    assert venv and {(e.uid, e.gid) for e in venv.values()} == {(0, 0)}
    assert not [p for p, e in venv.items() if e.mode & 0o022 and e.kind != "l"]
    assert venv["opt/skelly/venv/bin/skelly"].mode & 0o111


@needs_root
def test_the_user_and_groups(installed: Installed) -> None:
    passwd = accounts(installed.root, "passwd")
    group = accounts(installed.root, "group")
    user = passwd["skelly"]
    assert 0 < int(user[2]) < 1000  # a system user
    assert user[5:] == ["/var/lib/skelly", "/usr/sbin/nologin"]
    assert int(group["skelly"][2]) == int(user[3])
    assert 0 < int(group["gpio"][2]) < 1000  # created, a system group
    for name in ("gpio", "dialout"):
        assert "skelly" in group[name][3].split(","), group[name]
    assert "skelly" in accounts(installed.root, "shadow")
    # the host's own accounts are untouched
    with pytest.raises(KeyError):
        pwd.getpwnam("skelly")


@needs_root
def test_config_token_unit_rule_and_the_installed_program(installed: Installed) -> None:
    root = installed.root
    example = (ROOT / "deploy" / "config.example.toml").read_text()
    config_text = (root / "etc/skelly/config.toml").read_text()
    config = tomllib.loads(config_text)
    assert config["data_dir"] == "/var/lib/skelly"
    assert config["figurine"]["serial"]["url"] == "/dev/skelly-mcu"
    # everything else is the documented example, line for line
    pairs = zip(example.splitlines(), config_text.splitlines(), strict=True)
    assert [a for a, b in pairs if a != b] == [
        '# data_dir = ""   # empty: $STATE_DIRECTORY (systemd) or ~/.local/state/skelly',
        'url = "/dev/serial/by-id/usb-skelly-figurine-if00"',
    ]
    assert (root / "etc/skelly/config.example.toml").read_text() == example
    token = read_token(root / "var/lib/skelly/ingest.token")
    assert len(token) >= 43
    assert (root / "etc/systemd/system/skelly.service").read_bytes() == (
        ROOT / "deploy/skelly.service"
    ).read_bytes()
    assert (root / "etc/udev/rules.d/70-skelly.rules").read_bytes() == (
        ROOT / "deploy/70-skelly.rules"
    ).read_bytes()
    source = (root / "opt/skelly/venv/.skelly-source").read_text().split()
    assert source[1] == str(installed.wheel)
    assert source[0] == hashlib.sha256(installed.wheel.read_bytes()).hexdigest()
    dist = list((root / "opt/skelly/venv/lib").glob("python3.*/site-packages/skelly/cli.py"))
    assert dist, "the project is not in the venv"


@needs_root
def test_running_it_twice_changes_nothing(installed: Installed) -> None:
    again = install(installed.root, wheel=installed.wheel)
    assert again.returncode == 0, again.stdout + again.stderr
    assert snapshot(installed.root) == installed.after_first
    said = again.stdout.splitlines()
    assert len(said) == 1 and said[0].startswith("install.sh: done."), again.stdout


@needs_root
def test_the_owners_config_is_never_overwritten_and_the_rule_can_pin_one_board(
    installed: Installed, tmp_path: Path
) -> None:
    root = copy_of(installed.root, tmp_path)
    config = root / "etc/skelly/config.toml"
    config.write_text('data_dir = "/var/lib/skelly"\n[ingest]\nport = 7979\n')
    token = (root / "var/lib/skelly/ingest.token").read_text()
    pin = ("--mcu-usb", "2e8a:000a", "--mcu-serial", "E6614C311B2A8F2D")
    again = install(root, *pin, wheel=installed.wheel)
    assert again.returncode == 0, again.stdout + again.stderr
    assert config.read_text() == 'data_dir = "/var/lib/skelly"\n[ingest]\nport = 7979\n'
    assert (root / "var/lib/skelly/ingest.token").read_text() == token
    assert "wrote /etc/udev/rules.d/70-skelly.rules" in again.stdout
    rules = load(root / "etc/udev/rules.d/70-skelly.rules")
    walk = parse_walk((FIXTURES / "udevadm-info-rp2040-ttyACM0.txt").read_text())
    assert evaluate(rules, walk).symlinks == ["skelly-mcu"]
    walk[2].attrs["serial"] = "0000000000000001"  # another Pico
    assert evaluate(rules, walk).symlinks == []
    walk[2].attrs.update(serial="E6614C311B2A8F2D", idProduct="0005")  # same board, MicroPython
    assert evaluate(rules, walk).symlinks == []


@needs_root
def test_uninstall_keeps_the_data_and_purge_removes_it(
    installed: Installed, tmp_path: Path
) -> None:
    root = copy_of(installed.root, tmp_path)
    gone = install(root, "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    left = snapshot(root)
    for path in (
        "etc/systemd/system/skelly.service",
        "etc/systemd/system/multi-user.target.wants/skelly.service",
        "etc/udev/rules.d/70-skelly.rules",
        "usr/local/bin/skelly",
        "opt/skelly",
    ):
        assert path not in left
    for path in ("etc/skelly/config.toml", "var/lib/skelly/ingest.token"):
        assert left[path] == installed.after_first[path]
    assert "skelly" in accounts(root, "passwd")

    purged = install(root, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    left = snapshot(root)
    assert "etc/skelly" not in left
    assert "var/lib/skelly" not in left
    assert "skelly" not in accounts(root, "passwd")
    assert "skelly" not in accounts(root, "group")
    assert "skelly" not in accounts(root, "group")["gpio"][3].split(",")
    assert {"gpio", "dialout"} <= set(accounts(root, "group"))

    # and installing again after a purge works from scratch
    back = install(root, wheel=installed.wheel)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "created user skelly" in back.stdout


def refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("install.sh: error: "), result.stderr
    assert reason in lines[0]


def test_refuses_without_root(tmp_path: Path) -> None:
    root = new_root(tmp_path)
    before = snapshot(root)
    cmd = ["bash", str(INSTALL), "--root", str(root)]
    if AS_ROOT:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    refused(subprocess.run(cmd, capture_output=True, text=True, timeout=60), "must run as root")
    assert snapshot(root) == before


def test_refuses_off_linux(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "uname").write_text("#!/bin/sh\necho Darwin\n")
    (fake / "uname").chmod(0o755)
    root = new_root(tmp_path)
    before = snapshot(root)
    result = install(root, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    refused(result, "for Linux with systemd")
    assert "found Darwin" in result.stderr
    assert snapshot(root) == before


@needs_root
def test_refuses_without_systemd_and_with_a_root_that_is_not_a_system(tmp_path: Path) -> None:
    cmd = ["bash", str(INSTALL)]
    env = dict(os.environ, SKELLY_INSTALL_SYSTEMD_RUN=str(tmp_path / "no-systemd"))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    refused(result, "systemd is not running here")
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(install(empty), "must hold etc/passwd and etc/group")
    assert list(empty.iterdir()) == []
