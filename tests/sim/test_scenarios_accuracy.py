"""Scenario traces classified as scripted (docs/ANALYSIS.md §7 has the scoring rule).

Each scenario is generated with a seed, windowed exactly as Storage windows events (30 s every
10 s, ends on multiples of 10 s of epoch time, so scripted changes fall at arbitrary phases of
the window grid) and replayed through the analyzer.  Windows straddling a scripted change, and
the first ``allowance_s`` after it (the hysteresis corroboration: one window step; three for
HYPERFOCUS, which must last), are not scored.
"""

from __future__ import annotations

import statistics

import pytest

from bus.messages import FocusState
from hw_sim.scenarios import (
    PERTURBATIONS,
    QUICK_STATES,
    SCENARIOS,
    Score,
    replay,
    scenario,
    score,
    scored_run,
)


@pytest.fixture(scope="module")
def base_scores() -> dict[tuple[str, int], Score]:
    return {(name, seed): scored_run(name, seed) for name in SCENARIOS for seed in (1, 2, 3)}


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenarios_are_classified_as_scripted_in_90_percent_of_windows(
    base_scores: dict[tuple[str, int], Score], name: str
) -> None:
    for seed in (1, 2, 3):
        s = base_scores[(name, seed)]
        assert s.counted >= 60, f"{name} seed {seed}: too few windows scored to mean anything"
        assert s.accuracy >= 0.90, (name, seed, s.accuracy, s.confusion)


def test_every_scripted_change_is_reported_in_time(
    base_scores: dict[tuple[str, int], Score],
) -> None:
    quick: list[float] = []
    for (name, seed), s in base_scores.items():
        assert s.delays, f"{name} has no scripted change"
        for _t0, before, after, delay in s.delays:
            assert delay is not None, f"{name} seed {seed}: {before}->{after} never reported"
            assert delay <= 60.0, (name, seed, before, after, delay)
            if after in QUICK_STATES:
                quick.append(delay)
    on_time = sum(d <= 30.0 for d in quick) / len(quick)
    assert on_time >= 0.9, (on_time, sorted(quick))
    assert statistics.median(quick) <= 25.0


@pytest.mark.parametrize("label", sorted(PERTURBATIONS))
def test_perturbed_generators_are_still_classified(label: str) -> None:
    """Independently generated traces will differ from ours: typing speed, rhythm, bursts,
    pauses, switch rates and mouse use are each moved well away from the profiles."""
    seed = 11 + sorted(PERTURBATIONS).index(label)
    scores = {name: scored_run(name, seed, PERTURBATIONS[label]) for name in SCENARIOS}
    for name, s in scores.items():
        assert s.accuracy >= 0.85, (label, name, s.accuracy, s.confusion)
        for _, before, after, delay in s.delays:
            assert delay is not None and delay <= 90.0, (label, name, before, after, delay)
    pooled = sum(s.correct for s in scores.values()) / sum(s.counted for s in scores.values())
    assert pooled >= 0.92, (label, pooled)


def test_the_scoring_is_not_vacuous() -> None:
    """A classifier that always says FLOW must fail the same bar (the test can fail)."""
    sc = scenario("workday", seed=1)
    results = replay(sc)
    s = score(sc, results)
    flow_windows = sum(
        1
        for r in results
        for span in sc.truth
        if span.state is FocusState.FLOW
        and span.start + 10 <= r.window_start
        and r.window_end <= span.end
    )
    assert flow_windows / s.counted < 0.5 < s.accuracy
