"""Build the MicroPython interpreter (and compile the firmware) once, at collection, when any
firmware test is selected: the build takes about a minute, which must not count against the
first test's timeout. A failed build is reported by every firmware test (never a skip)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.firmware.micropython import MicroPythonUnavailable, compiled_firmware

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(HERE in Path(str(item.path)).resolve().parents for item in items):
        return
    # builds micropython and mpy-cross first when they are missing; on failure each test calls
    # it again and fails with the reason
    with contextlib.suppress(MicroPythonUnavailable):
        compiled_firmware()
