"""The Hypothesis profile of the emulated arm64 run (tests/conftest.py, docs/TESTING.md): with
``SKELLY_HYPOTHESIS_PROFILE=emulated`` every property test runs a fifth of its own example budget
(at least 10), @given tests and state machines alike; without it, the full budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

CALLS = {"given": 0, "few": 0, "machine": 0}

@settings(max_examples=100, database=None)
@given(st.integers())
def test_given(x):
    CALLS["given"] += 1

@settings(max_examples=30, database=None)
@given(st.integers())
def test_few(x):
    CALLS["few"] += 1

class Machine(RuleBasedStateMachine):
    @rule()
    def step(self):
        pass

    def teardown(self):
        CALLS["machine"] += 1

Machine.TestCase.settings = settings(max_examples=50, stateful_step_count=2, database=None)
test_machine = Machine.TestCase

def test_report():
    print("CALLS", CALLS["given"], CALLS["few"], CALLS["machine"])
"""


def calls(tmp_path: Path, profile: str | None) -> list[int]:
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom tests.conftest import *  # noqa\n"
    )
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKELLY_HYPOTHESIS")}
    if profile:
        env["SKELLY_HYPOTHESIS_PROFILE"] = profile
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_probe.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(x for x in out.stdout.splitlines() if "CALLS" in x)
    return [int(n) for n in line.split("CALLS", 1)[1].split()]


def test_emulated_profile_runs_a_fifth_of_each_budget(tmp_path: Path) -> None:
    given, few, machine = calls(tmp_path, "emulated")
    assert given == 20  # 100 // 5
    assert few == 10  # 30 // 5 = 6, raised to the floor of 10
    assert machine == 10  # the state machine's 50 // 5


def test_default_profile_keeps_each_budget(tmp_path: Path) -> None:
    given, few, machine = calls(tmp_path, None)
    assert given == 100
    assert few == 30
    assert machine == 50
