"""A real MicroPython interpreter (the unix port) for the firmware tests and bench/firmware.py.

Built once from ``tools/micropython/build-micropython.sh`` (the source tarball is in the
repository) into ``.cache/micropython/`` in the repo (gitignored) and reused while the binary is
there; a file lock keeps two processes from building at once. Building needs gcc and make: a
missing compiler is an error, never a skip — the firmware must be tested on a real interpreter.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware_bridge" / "mcu_firmware"
BUILD_SCRIPT = ROOT / "tools" / "micropython" / "build-micropython.sh"
CACHE = Path(os.environ.get("SKELLY_MICROPYTHON_CACHE", ROOT / ".cache" / "micropython"))

#: the heap the firmware gets in every test (``micropython -X heapsize=``). The unix port is
#: 64-bit: its objects are about twice the size of the RP2040's, so this is a stricter budget
#: than the same number on a Pico (about 190 KiB free heap there).
HEAP_BUDGET = 64 * 1024


class MicroPythonUnavailable(RuntimeError):
    pass


def micropython_binary() -> Path:
    """The path of the unix-port ``micropython`` binary, built on first use."""
    binary = CACHE / "micropython" / "ports" / "unix" / "build-standard" / "micropython"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    if not BUILD_SCRIPT.is_file():
        raise MicroPythonUnavailable(
            f"{BUILD_SCRIPT} not found: it is part of the repository (a partial checkout?)"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if not binary.is_file():
            result = subprocess.run(
                ["bash", str(BUILD_SCRIPT), str(CACHE)], capture_output=True, text=True
            )
            if result.returncode != 0:
                raise MicroPythonUnavailable(
                    "building the MicroPython unix port failed (it needs gcc and make: "
                    f"apt-get install build-essential): {result.stderr.strip()}"
                )
    return binary


def mpy_cross() -> Path:
    """The matching ``mpy-cross`` compiler (built by the same script)."""
    micropython_binary()
    return CACHE / "micropython" / "mpy-cross" / "build" / "mpy-cross"


def compiled_firmware() -> Path:
    """The firmware's modules compiled to ``.mpy`` (what runs in the tests: bytecode loaded as
    is, so the heap budget measures the firmware running, not MicroPython's compiler); cached by
    the sources' hash. Run with ``MICROPYPATH=<this dir> micropython -m hw_unix ...``."""
    cross = mpy_cross()
    sources = sorted(FIRMWARE_DIR.glob("*.py"))
    digest = hashlib.sha256()
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    out = CACHE / "mpy" / digest.hexdigest()[:16]
    if (out / ".done").is_file():
        return out
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for src in sources:
        subprocess.run(
            [str(cross), "-o", str(tmp / (src.stem + ".mpy")), src.name],
            cwd=FIRMWARE_DIR,
            check=True,
            capture_output=True,
        )
    (tmp / ".done").write_text("")
    try:
        tmp.rename(out)
    except OSError:  # another process got there first
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return out
