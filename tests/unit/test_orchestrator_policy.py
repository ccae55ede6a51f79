"""The Orchestrator's pure rules: dependency order, jittered capped backoff, the hourly budget."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from modules.orchestrator import OrchestratorConfig
from modules.orchestrator.policy import RestartBook, backoff_delay, start_order


@dataclass
class M:
    name: str
    depends_on: tuple[str, ...] = ()


def test_the_eight_start_after_what_they_depend_on_whatever_the_given_order() -> None:
    given = [
        M("CuteFigurine"),
        M("AI"),
        M("Gamification"),
        M("AnalysisEngine"),
        M("DataCapture"),
        M("Storage"),
        M("Orchestrator"),
        M("EventBus"),
    ]
    order = [m.name for m in start_order(given)]
    assert order[0] == "EventBus"
    pos = {n: i for i, n in enumerate(order)}
    assert pos["Storage"] < pos["DataCapture"] and pos["Storage"] < pos["AnalysisEngine"]
    assert pos["AnalysisEngine"] < pos["Gamification"] < pos["AI"] < pos["CuteFigurine"]
    assert sorted(order) == sorted(m.name for m in given)


def test_order_is_kept_where_nothing_depends() -> None:
    given = [M("c"), M("a"), M("b", ("c",))]
    assert [m.name for m in start_order(given)] == ["c", "a", "b"]
    given = [M("b", ("c",)), M("a"), M("c")]
    assert [m.name for m in start_order(given)] == ["c", "b", "a"]


def test_cycle_and_unknown_dependency_are_refused_with_names() -> None:
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        start_order([M("a", ("b",)), M("b", ("a",))])
    with pytest.raises(ValueError, match="'nope'"):
        start_order([M("a", ("nope",))])


def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens() -> None:
    plain = [backoff_delay(n, initial=1.0, cap=60.0, jitter=0.5, r=0.0) for n in range(1, 9)]
    assert plain == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff_delay(3, initial=1.0, cap=60.0, jitter=0.5, r=0.999) == pytest.approx(2.002)
    assert backoff_delay(1000, initial=1.0, cap=60.0, jitter=0.0, r=0.5) == 60.0
    with pytest.raises(ValueError):
        backoff_delay(0, initial=1.0, cap=60.0, jitter=0.5, r=0.0)


def test_budget_counts_faults_of_the_last_hour_only() -> None:
    book = RestartBook(limit=2)
    assert book.note(0.0) == 1
    assert book.note(10.0) == 2
    assert not book.exhausted(10.0)
    assert book.note(20.0) == 3
    assert book.exhausted(20.0)
    assert book.in_window(3600.0) == 2  # the fault at 0 s is an hour old
    assert book.in_window(3620.0) == 0
    assert book.total == 3


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"health_interval_s": 0}, "health_interval_s must be more than 0 s"),
        ({"backoff_initial_s": 10, "backoff_max_s": 5}, "backoff_max_s (5) must be at least"),
        ({"backoff_jitter": 1.0}, "backoff_jitter must be 0 or more and below 1"),
        ({"missed_replies": 0}, "missed_replies must be at least 1"),
        ({"max_restarts_per_hour": -1}, "max_restarts_per_hour must be 0 or more"),
        ({"stop_timeout_s": -1}, "stop_timeout_s must be more than 0 s"),
    ],
)
def test_config_mistakes_are_named(values: dict[str, float], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        OrchestratorConfig(**values)  # type: ignore[arg-type]
