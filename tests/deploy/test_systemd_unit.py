"""deploy/skelly.service: systemd's own tools judge it (SPEC §7, issue 11 item 1).

* ``systemd-analyze security --offline=true`` rates its exposure at most 2.0 (0 best, 10 worst);
* ``systemd-analyze verify`` loads it without a single warning, inside a scratch root that holds
  the unit, an executable at its ExecStart path and the host's own target units (``--root``), so
  the check neither needs an installed service nor touches the host;
* the settings the Pi depends on are there (notify + watchdog, restart with a start limit, the
  dedicated user in gpio and dialout, device access through DeviceAllow= and not
  PrivateDevices=, a writable working directory for lgpio).

Without ``systemd-analyze`` (package ``systemd``) these tests fail and say so: they are never
skipped, so CI cannot pass without having checked the unit.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "skelly.service"
MAX_EXPOSURE = 2.0
HOST_UNITS = [Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")]


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail(
            "systemd-analyze not found: install it (Debian/Ubuntu: apt-get install -y systemd) "
            "so the unit's security rating and verification are checked"
        )
    return found


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value given, in order (systemd keys repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def exposure(unit: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1)), result


def test_security_rating_is_at_most_2() -> None:
    level, result = exposure(UNIT)
    assert level <= MAX_EXPOSURE, result.stdout
    # the same bound through systemd's own threshold (0-100 scale): exit status 0 at <= 20
    threshold = subprocess.run(
        [
            systemd_analyze(),
            "security",
            "--offline=true",
            "--no-pager",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            str(UNIT),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert threshold.returncode == 0, threshold.stdout + threshold.stderr
    # systemd-analyze security says nothing about unknown keys: a typo would silently drop a
    # protection, and the rating would not show it (verify below catches that)
    assert "Unknown" not in result.stderr, result.stderr


def test_rating_notices_a_weakened_unit(tmp_path: Path) -> None:
    """The rating is read from real output: drop the sandbox and it gets worse than 2.0."""
    weak = tmp_path / "skelly.service"
    kept = [
        line
        for line in UNIT.read_text().splitlines()
        if not line.startswith(("Protect", "Private", "SystemCall", "Restrict", "Capability"))
    ]
    weak.write_text("\n".join(kept) + "\n")
    level, result = exposure(weak)
    assert level > MAX_EXPOSURE, result.stdout


def _scratch_root(tmp_path: Path, unit_text: str) -> Path:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/skelly.service").write_text(unit_text)
    exec_start = unit_settings(unit_text)["Service.ExecStart"][0].split()[0]
    program = root / exec_start.lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    host_units = next((d for d in HOST_UNITS if (d / "sysinit.target").exists()), None)
    assert host_units is not None, f"no systemd target units in {HOST_UNITS}: install systemd"
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    return root


def verify(tmp_path: Path, unit_text: str) -> subprocess.CompletedProcess[str]:
    root = _scratch_root(tmp_path, unit_text)
    return subprocess.run(
        [systemd_analyze(), "verify", f"--root={root}", "skelly.service"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_verify_loads_the_unit_without_a_warning(tmp_path: Path) -> None:
    result = verify(tmp_path, UNIT.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == "", result.stdout + result.stderr


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("WatchdogSec=30", "WatchdogSecs=30"),  # a typo in a key
        ("DeviceAllow=char-gpiochip rw", "DeviceAllow=char-gpiochip rwz"),  # a wrong value
    ],
)
def test_verify_reports_a_typo(tmp_path: Path, good: str, bad: str) -> None:
    text = UNIT.read_text()
    assert good in text
    result = verify(tmp_path, text.replace(good, bad))
    assert result.stdout + result.stderr != ""


def test_the_settings_the_pi_depends_on() -> None:
    s = unit_settings(UNIT.read_text())
    assert s["Service.Type"] == ["notify"]
    assert float(s["Service.WatchdogSec"][0]) > 0
    assert s["Service.Restart"] == ["on-failure"]
    assert int(s["Unit.StartLimitBurst"][0]) >= 1
    assert int(s["Unit.StartLimitIntervalSec"][0]) > 0
    assert s["Service.User"] == ["skelly"]
    assert set(s["Service.SupplementaryGroups"][0].split()) == {"gpio", "dialout"}
    assert s["Service.StateDirectory"] == ["skelly"]
    assert s["Service.ConfigurationDirectory"] == ["skelly"]
    assert s["Service.ProtectSystem"] == ["strict"]
    # PrivateDevices= hides /dev/gpiochip* and the serial port; DeviceAllow= limits to them
    assert "Service.PrivateDevices" not in s
    assert s["Service.DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in s["Service.DeviceAllow"]}
    assert {"char-gpiochip", "char-ttyACM", "char-ttyUSB"} <= allowed
    # gpiozero reads the board revision from /proc/device-tree or /proc/cpuinfo, which
    # ProcSubset=pid hides (PinUnknownPi: no GPIO at all on the Pi)
    assert s.get("Service.ProcSubset", ["all"]) == ["all"]
    # lgpio makes FIFOs in the working directory: it must be the (writable) state directory
    assert s["Service.WorkingDirectory"] == ["/var/lib/skelly"]
    assert s["Service.ExecStart"] == [
        "/opt/skelly/venv/bin/skelly run --config /etc/skelly/config.toml"
    ]


# Run under a seccomp filter built from the unit's own SystemCallFilter= lines, with
# MemoryDenyWriteExecute's rule (no mapping both writable and executable) and
# RestrictAddressFamilies= (socket() only for those families), errno EPERM like
# SystemCallErrorNumber=.  libseccomp's Python binding is a system package (python3-seccomp),
# so this runs with the system interpreter, which then execs the command.
SECCOMP_RUNNER = r"""
import errno, json, os, subprocess, sys
import seccomp

def expand(group, seen):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group],
                         capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            if line not in seen:
                seen.add(line)
                names |= expand(line, seen)
        else:
            names.add(line)
    return names

def names_of(words):
    found = set()
    for word in words:
        found |= expand(word, set()) if word.startswith("@") else {word}
    return found

spec = json.loads(sys.argv[1])
allowed, denied = set(), set()
for value in spec["filters"]:
    deny = value.startswith("~")
    (denied if deny else allowed).update(names_of(value.lstrip("~").split()))
allowed -= denied
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in sorted(allowed):
    if spec["mdwe"] and name in ("mmap", "mprotect", "pkey_mprotect"):
        continue
    if spec["families"] and name == "socket":
        continue
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:  # a name this kernel/architecture does not have
        pass
if spec["mdwe"]:
    WX = 0x2 | 0x4  # PROT_WRITE | PROT_EXEC
    for name in ("mmap", "mprotect"):
        for ok in (0, 0x2, 0x4):
            f.add_rule(seccomp.ALLOW, name, seccomp.Arg(2, seccomp.MASKED_EQ, WX, ok))
for family in spec["families"]:  # RestrictAddressFamilies=
    f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, family))
try:
    f.load()
except (OSError, RuntimeError) as e:  # qemu-user refuses PR_SET_SECCOMP (it would bind qemu)
    print(f"SECCOMP-UNAVAILABLE: {e}", file=sys.stderr)
    sys.exit(77)
os.execvp(spec["argv"][0], spec["argv"])
"""


def system_python_with_seccomp() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import seccomp"], capture_output=True, timeout=60
            )
            if probe.returncode == 0:
                return candidate
    pytest.fail(
        "libseccomp's Python binding not found: install it (Debian/Ubuntu: apt-get install -y "
        "python3-seccomp) so the service is run under the unit's system call filter"
    )


def run_filtered(tmp_path: Path, argv: list[str], filters: list[str] | None = None) -> str:
    systemd_analyze()
    s = unit_settings(UNIT.read_text())
    spec = {
        "filters": s["Service.SystemCallFilter"] if filters is None else filters,
        "mdwe": s.get("Service.MemoryDenyWriteExecute") == ["yes"],
        "families": [
            int(getattr(socket, name))
            for value in s.get("Service.RestrictAddressFamilies", [])
            for name in value.split()
        ],
        "argv": [sys.executable if a == "PYTHON" else a for a in argv],
    }
    runner = tmp_path / "seccomp_runner.py"
    runner.write_text(SECCOMP_RUNNER)
    result = subprocess.run(
        [system_python_with_seccomp(), str(runner), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    if result.returncode == 77 and "SECCOMP-UNAVAILABLE" in result.stderr:
        # only where the kernel interface is missing, e.g. under qemu-user emulation
        # (tests/pi/run-emulated.sh), which refuses PR_SET_SECCOMP for its guests
        pytest.skip(f"seccomp filters cannot be loaded here: {result.stderr.strip()}")
    return f"rc={result.returncode}\n{result.stdout}{result.stderr}"


def test_the_service_runs_under_the_units_system_call_filter(tmp_path: Path) -> None:
    """The whole pipeline (uvloop, threads, SQLite, real TCP, a pty, gpiozero mock pins) under
    the unit's SystemCallFilter=, MemoryDenyWriteExecute= and RestrictAddressFamilies=, for a
    few seconds."""
    sim = ["sim", "--headless", "--duration", "3", "--state-dir", str(tmp_path / "state")]
    out = run_filtered(tmp_path, ["PYTHON", "-m", "skelly.cli", *sim])
    assert out.startswith("rc=0\n"), out
    assert "stopped cleanly" in out, out


def test_the_filter_is_really_applied(tmp_path: Path) -> None:
    probe = (
        "import mmap, os\n"
        "for name, call in (('setuid', lambda: os.setuid(0)),\n"
        "    ('wx', lambda: mmap.mmap(-1, 4096, prot=7)),\n"
        "    ('netlink', lambda: __import__('socket').socket(16, 3, 0))):\n"
        "    try:\n"
        "        call(); print(name, 'allowed')\n"
        "    except OSError as e:\n"
        "        print(name, 'denied', e.errno)\n"
    )
    out = run_filtered(tmp_path, ["PYTHON", "-c", probe])
    assert "setuid denied 1" in out, out  # @privileged removed, EPERM
    assert "wx denied 1" in out, out  # no writable+executable memory
    assert "netlink denied 1" in out, out  # AF_NETLINK is not among the families


def test_a_filter_too_tight_for_the_service_is_noticed(tmp_path: Path) -> None:
    """The check above can fail: without sockets the same run does not get through."""
    sim = ["sim", "--headless", "--duration", "3", "--state-dir", str(tmp_path / "state")]
    filters = ["@system-service", "~@privileged @resources @network-io"]
    out = run_filtered(tmp_path, ["PYTHON", "-m", "skelly.cli", *sim], filters)
    assert not out.startswith("rc=0\n"), out
    assert "PermissionError: [Errno 1] Operation not permitted" in out, out  # refused, not broken
