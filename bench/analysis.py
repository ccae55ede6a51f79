"""Analysis benchmark: classification accuracy on scenario traces and the cost per window.

Prints ONE JSON object:

* ``scenarios`` — per named scenario (``hw_sim.scenarios``), over ``--seeds`` seeds with random
  phases of the window grid: mean and worst share of scored windows classified as scripted, the
  share of changes into FLOW/NEUTRAL/DISTRACTED/IDLE reported within 30 s, their median and
  maximum delay, the maximum delay of changes into TRANSITIONING/HYPERFOCUS, and missed changes.
  The scoring rule is ``hw_sim.scenarios.score`` (docs/ANALYSIS.md §7).
* ``perturbed`` — the same, pooled over all scenarios, for generators with one parameter moved
  (typing speed, switch rate, pauses, mouse use, rhythm variation, burst length).
* ``ms_per_window`` — median over ``--runs`` runs of the time to analyse one window of the
  work-day scenario (three feature passes, rules, hysteresis), and the mean events per window.

Usage: ``python bench/analysis.py [--seeds 5] [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# run as a script, bench/ is first on the path and bench/bus.py would shadow the bus package
sys.path[0] = str(Path(__file__).resolve().parents[1])

from hw_sim.scenarios import (  # noqa: E402
    PERTURBATIONS,
    QUICK_STATES,
    SCENARIOS,
    Score,
    scenario,
    scored_run,
    windows,
)
from modules.analysis import WindowAnalyzer  # noqa: E402


def summary(scores: list[Score]) -> dict[str, Any]:
    accs = [s.accuracy for s in scores]
    quick = [d for s in scores for _, _, b, d in s.delays if b in QUICK_STATES and d is not None]
    slow = [d for s in scores for _, _, b, d in s.delays if b not in QUICK_STATES and d is not None]
    return {
        "windows_correct_pct_mean": round(100 * statistics.mean(accs), 1),
        "windows_correct_pct_worst_run": round(100 * min(accs), 1),
        "quick_changes_within_30s_pct": (
            round(100 * sum(d <= 30 for d in quick) / len(quick), 1) if quick else None
        ),
        "quick_delay_median_s": round(statistics.median(quick), 1) if quick else None,
        "quick_delay_max_s": round(max(quick), 1) if quick else None,
        "transitioning_hyperfocus_delay_max_s": round(max(slow), 1) if slow else None,
        "missed_changes": sum(1 for s in scores for *_, d in s.delays if d is None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    seeds = range(1, args.seeds + 1)
    out: dict[str, Any] = {
        "scenarios": {name: summary([scored_run(name, s) for s in seeds]) for name in SCENARIOS},
        "perturbed": {
            label: summary([scored_run(name, s, p) for name in SCENARIOS for s in seeds[:3]])
            for label, p in PERTURBATIONS.items()
        },
    }
    sc = scenario("workday", seed=1)
    batches = list(windows(sc.raw_events(), sc.start, sc.end))
    per_window = []
    for _ in range(args.runs):
        analyzer = WindowAnalyzer()
        t = time.perf_counter()
        for b in batches:
            analyzer.analyze(b.window_start, b.window_end, b.events)
        per_window.append((time.perf_counter() - t) / len(batches))
    out["ms_per_window"] = round(1000 * statistics.median(per_window), 3)
    out["events_per_window"] = round(statistics.mean(len(b.events) for b in batches), 1)
    out["runs"] = args.runs
    out["seeds"] = args.seeds
    print(json.dumps(out))


if __name__ == "__main__":
    main()
