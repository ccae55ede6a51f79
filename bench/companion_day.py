"""How often the companion speaks up: Gamification's pure core over simulated 8-hour workdays.

Each seed scripts an 8-hour day (09:00-17:00 Europe/Berlin) of focus blocks, distraction
spirals, neutral stretches, short breaks and a lunch, generates its capture events with
``hw_sim.scenarios``, classifies them with the real ``WindowAnalyzer`` (30 s windows every 10 s,
as Storage cuts them) and feeds every AnalysisComplete and StateChange to the core with the
window's end as the Pi's ``now`` — a whole day in a few seconds.  A simulated user answers every
intervention (delivered at once; then engaged, ignored or dismissed at random).

Prints one JSON object: interventions per day (median, max over seeds, each seed), by kind,
celebrations and coins per day, and a check of the rules on every emitted request (at most
``max_per_hour`` in any rolling hour, 15 min between non-break interventions, none while FLOW
≥ 0.8 or HYPERFOCUS < 90 min).  ``measure()`` returns the same dict for bench/companion.py.

    .venv/bin/python bench/companion_day.py [--seeds 7] [--hours 8]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# run as a script, bench/ is sys.path[0] and bench/bus.py would shadow the bus package
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bus.messages import (  # noqa: E402
    FocusState,
    InterventionRequest,
    InterventionResponse,
    Message,
    RewardEvent,
)
from hw_sim.scenarios import DEFAULT_START, Segment, generate, windows  # noqa: E402
from modules.analysis import WindowAnalyzer  # noqa: E402
from modules.gamification import Companion, GamificationConfig  # noqa: E402

F, H, N = FocusState.FLOW, FocusState.HYPERFOCUS, FocusState.NEUTRAL
T, D, IDLE = FocusState.TRANSITIONING, FocusState.DISTRACTED, FocusState.IDLE
TZ = "Europe/Berlin"
RESPONSES = (("engaged", 0.45), ("ignored", 0.35), ("dismissed", 0.20))


def workday(rng: random.Random, hours: float) -> list[Segment]:
    """A plausible day: blocks drawn at random until ``hours`` are filled, lunch mid-day."""
    total = hours * 60.0
    segs = [Segment(N, rng.uniform(4, 10))]
    lunch_done = False
    while sum(s.minutes for s in segs) < total:
        elapsed = sum(s.minutes for s in segs)
        if not lunch_done and elapsed >= total * 0.45:
            segs.append(Segment(IDLE, rng.uniform(30, 50)))
            segs.append(Segment(N, rng.uniform(3, 8)))
            lunch_done = True
            continue
        block = rng.choices(["focus", "deep", "spiral", "neutral", "pause"], [38, 10, 22, 20, 10])[
            0
        ]
        if block == "focus":
            segs += [Segment(T, rng.uniform(2, 4)), Segment(F, rng.uniform(12, 45))]
        elif block == "deep":
            segs += [
                Segment(T, rng.uniform(2, 4)),
                Segment(F, rng.uniform(5, 10)),
                Segment(H, rng.uniform(30, 110)),
            ]
        elif block == "spiral":
            segs += [
                Segment(T, rng.uniform(2, 5)),
                Segment(D, rng.uniform(4, 22)),
                Segment(N, rng.uniform(2, 6)),
            ]
        elif block == "neutral":
            segs.append(Segment(N, rng.uniform(5, 20)))
        else:
            segs.append(Segment(IDLE, rng.uniform(4, 12)))
    over = sum(s.minutes for s in segs) - total
    while over > 0:  # cut the day at exactly ``hours``
        last = segs.pop()
        if last.minutes > over:
            segs.append(Segment(last.state, last.minutes - over))
        over -= last.minutes
    return segs


def run_day(
    seed: int, hours: float = 8.0, config: GamificationConfig | None = None
) -> dict[str, Any]:
    rng = random.Random(seed)
    sc = generate(f"workday-{seed}", workday(rng, hours), seed=seed, start=DEFAULT_START)
    core = Companion(config or GamificationConfig(timezone=TZ), ZoneInfo(TZ))
    cfg = core.config
    analyzer = WindowAnalyzer()
    out: list[Message] = list(core.start(sc.start))
    shown: list[tuple[float, InterventionRequest, FocusState, float, float]] = []
    for batch in windows(sc.raw_events(), sc.start, sc.end):
        now = batch.window_end
        result = analyzer.analyze(batch.window_start, batch.window_end, batch.events)
        got: list[Message] = []
        change = result.state_change()
        if change is not None:
            got += core.on_state_change(now, change)
        a = result.complete()
        got += core.on_analysis(now, a)
        got += core.tick(now)
        for m in got:
            if isinstance(m, InterventionRequest):
                shown.append((now, m, a.state, a.confidence, a.time_in_state_s))
                if m.kind != "celebrate":
                    core.on_response(now, InterventionResponse(m.intervention_id, "delivered"))
                    answer = rng.choices([r for r, _ in RESPONSES], [w for _, w in RESPONSES])[0]
                    core.on_response(now + 5, InterventionResponse(m.intervention_id, answer))
        out += got
    interventions = [(t, r, s, c, tis) for t, r, s, c, tis in shown if r.kind != "celebrate"]
    violations = []
    times = [t for t, *_ in interventions]
    for t in times:
        if len([x for x in times if t - 3600 < x <= t]) > cfg.max_per_hour:
            violations.append(f"more than {cfg.max_per_hour} in the hour before {t}")
    last = None
    for t, r, state, conf, tis in interventions:
        if r.kind != "break" and last is not None and t - last < cfg.global_cooldown_min * 60:
            violations.append(f"{r.intervention_id} {t - last:.0f} s after the previous one")
        if state is F and conf >= cfg.flow_protect_confidence and r.kind != "break":
            violations.append(f"{r.intervention_id} in FLOW {conf:.2f}")
        if state is H and tis < cfg.break_after_min * 60:
            violations.append(f"{r.intervention_id} in HYPERFOCUS after {tis:.0f} s")
        last = t
    kinds: dict[str, int] = {}
    for _, r, *_rest in interventions:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    rewards = [m for m in out if isinstance(m, RewardEvent)]
    return {
        "seed": seed,
        "hours": round((sc.end - sc.start) / 3600, 2),
        "interventions": len(interventions),
        "by_kind": kinds,
        "celebrations": len(shown) - len(interventions),
        "coins": core.progress.coins,
        "rewards": len(rewards),
        "minutes_distracted": round(sum(s.end - s.start for s in sc.truth if s.state is D) / 60, 1),
        "minutes_hyperfocus": round(sum(s.end - s.start for s in sc.truth if s.state is H) / 60, 1),
        "violations": violations,
    }


def measure(seeds: int = 7, hours: float = 8.0, first_seed: int = 1) -> dict[str, Any]:
    """Run ``seeds`` simulated days; the figures bench/companion.py merges."""
    t0 = time.perf_counter()
    days = [run_day(s, hours) for s in range(first_seed, first_seed + seeds)]
    counts = [d["interventions"] for d in days]
    kinds: dict[str, list[int]] = {}
    for d in days:
        for k in ("break", "nudge", "recovery"):
            kinds.setdefault(k, []).append(d["by_kind"].get(k, 0))
    return {
        "interventions_per_day": {
            "median": statistics.median(counts),
            "max": max(counts),
            "min": min(counts),
            "seeds": counts,
            "hours_per_day": hours,
        },
        "interventions_per_day_by_kind_median": {k: statistics.median(v) for k, v in kinds.items()},
        "celebrations_per_day_median": statistics.median(d["celebrations"] for d in days),
        "coins_per_day_median": statistics.median(d["coins"] for d in days),
        "minutes_distracted_per_day_median": round(
            statistics.median(d["minutes_distracted"] for d in days), 1
        ),
        "rule_violations": sum(len(d["violations"]) for d in days),
        "violations": [v for d in days for v in d["violations"]][:10],
        "days": days,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=7)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--first-seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(measure(args.seeds, args.hours, args.first_seed)))


if __name__ == "__main__":
    main()
