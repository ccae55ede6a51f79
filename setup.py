"""Build step: compile the bus's hot modules with mypyc where a C compiler exists.

Everything else about the package is in pyproject.toml.  The compiled extensions are optional:
if mypyc or the compiler is missing or fails, the install goes on in pure Python (same behaviour,
~1.4x slower bus).  ``SKELLY_PURE_PYTHON=1`` skips compiling.  See bus/_compiled.py for how a
stale compiled copy is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import setup

HOT = ["bus/metrics.py", "bus/router.py"]


def ext_modules() -> list[object]:
    if os.environ.get("SKELLY_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("skelly: mypyc not available; installing pure Python", file=sys.stderr)
        return []
    try:
        exts = mypycify(HOT, opt_level="3")
    except (Exception, SystemExit) as exc:  # mypyc refused the sources: stay pure, say why
        print(f"skelly: mypyc failed ({exc}); installing pure Python", file=sys.stderr)
        return []
    for ext in exts:
        ext.optional = True  # no compiler: a warning, not a failed install
    hashes = {Path(p).stem: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in HOT}
    Path("bus/_compiled_hashes.json").write_text(json.dumps(hashes, indent=1) + "\n")
    return exts


setup(ext_modules=ext_modules())
