"""Pick the mypyc-compiled or the pure-Python copy of the bus's hot modules.

``setup.py`` compiles ``bus/metrics.py`` and ``bus/router.py`` with mypyc when a C compiler is
available (about 1.4x the delivered rate) and records the SHA-256 of each source in
``bus/_compiled_hashes.json``.  Importing :mod:`bus` calls :func:`choose` before anything else:
the compiled copies are used only when every recorded hash matches the ``.py`` file on disk, so
an edited source in an editable install never runs stale compiled code, and never when
``SKELLY_PURE_PYTHON=1``.  Without a compiler the install is pure Python and behaves the same.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path

COMPILED = ("metrics", "router")  # dependency order: router imports metrics
_HERE = Path(__file__).resolve().parent

state: dict[str, str] = {}
"""Module name → ``"compiled"`` or ``"pure"`` (with the reason) after :func:`choose`."""


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_extension(name: str) -> bool:
    spec = importlib.util.find_spec(f"bus.{name}")
    origin = spec.origin if spec is not None else None
    return bool(origin) and str(origin).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def choose() -> dict[str, str]:
    if state:
        return state
    compiled = [name for name in COMPILED if _is_extension(name)]
    if not compiled:
        state.update(dict.fromkeys(COMPILED, "pure"))
        return state
    reason = ""
    if os.environ.get("SKELLY_PURE_PYTHON") == "1":
        reason = "SKELLY_PURE_PYTHON=1"
    else:
        try:
            recorded = json.loads((_HERE / "_compiled_hashes.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = {}
        stale = [n for n in compiled if recorded.get(n) != source_hash(_HERE / f"{n}.py")]
        if stale:
            reason = f"source changed since compiled: {', '.join(stale)}; rerun pip install -e ."
    if not reason:
        state.update(dict.fromkeys(COMPILED, "compiled"))
        return state
    # load every hot module from its .py source (all or none: compiled code calls across them)
    for name in COMPILED:
        full = f"bus.{name}"
        spec = importlib.util.spec_from_file_location(full, _HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
        setattr(sys.modules["bus"], name, module)  # as a normal import binds it
        state[name] = f"pure ({reason})"
    return state
