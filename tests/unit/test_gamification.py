"""Every Gamification rule of docs/COMPANION.md on the pure core, under a fake clock.

The core gets ``now`` with every call; AnalysisComplete windows are built by hand so each test
states exactly the time in state it feeds.  Local time is Europe/Berlin unless said otherwise.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from bus.messages import (
    AnalysisComplete,
    CompanionMode,
    FocusState,
    InterventionRequest,
    InterventionResponse,
    Message,
    RewardEvent,
    StateChange,
    UserInput,
)
from modules.gamification import Companion, GamificationConfig

BERLIN = ZoneInfo("Europe/Berlin")
F, H, N = FocusState.FLOW, FocusState.HYPERFOCUS, FocusState.NEUTRAL
T, D, IDLE = FocusState.TRANSITIONING, FocusState.DISTRACTED, FocusState.IDLE
MIN = 60.0


def at(day: int, hh: int, mm: int = 0, month: int = 11, year: int = 2026) -> float:
    """Epoch seconds of a local Berlin wall time."""
    return dt.datetime(year, month, day, hh, mm, tzinfo=BERLIN).timestamp()


NOON = at(18, 12)  # a Wednesday, well outside quiet hours


class Day:
    """Drives one core: windows every 10 s of wall time, the state's time in state given."""

    def __init__(self, config: GamificationConfig | None = None, snap: Any = None) -> None:
        self.core = Companion(config or GamificationConfig(), BERLIN, snap)
        self.now = NOON
        self.out: list[Message] = list(self.core.start(self.now))
        self.auto_deliver = True

    def window(
        self, state: FocusState, tis: float, conf: float = 0.9, host: str = "laptop"
    ) -> list[Message]:
        a = AnalysisComplete(self.now - 30, self.now, state, conf, state, tis, (), host)
        got = self.core.on_analysis(self.now, a)
        self.out += got
        for m in got:
            if isinstance(m, InterventionRequest) and self.auto_deliver and m.kind != "celebrate":
                self.respond(m.intervention_id, "delivered")
        return got

    def run(
        self,
        state: FocusState,
        minutes: float,
        start_tis: float = 0.0,
        conf: float = 0.9,
        host: str = "laptop",
        step: float = 10.0,
    ) -> list[Message]:
        """``minutes`` of windows in ``state`` (time in state from ``start_tis``)."""
        got: list[Message] = []
        tis = start_tis
        for _ in range(round(minutes * MIN / step)):
            self.now += step
            tis += step
            got += self.window(state, tis, conf, host)
        return got

    def respond(self, ident: str, response: str) -> list[Message]:
        got = self.core.on_response(self.now, InterventionResponse(ident, response))
        self.out += got
        return got

    def tick(self, now: float) -> list[Message]:
        self.now = now
        got = self.core.tick(now)
        self.out += got
        return got


def requests(msgs: list[Message], kind: str | None = None) -> list[InterventionRequest]:
    return [
        m for m in msgs if isinstance(m, InterventionRequest) and (kind is None or m.kind == kind)
    ]


def rewards(msgs: list[Message], kind: str) -> list[RewardEvent]:
    return [m for m in msgs if isinstance(m, RewardEvent) and m.kind == kind]


# -- never interrupt focus ----------------------------------------------------------------------
def test_no_intervention_in_confident_flow_however_long() -> None:
    day = Day()
    got = day.run(F, 240, conf=0.85)
    # no break, no nudge, and even the celebrations it earned are held back
    assert requests(got) == [] and rewards(got, "milestone")
    assert "FLOW" in day.core.blocked or day.core.celebration is not None


def test_confident_flow_on_one_host_protects_against_a_nudge_from_another() -> None:
    day = Day()
    day.run(F, 1, conf=0.9, host="desk")
    got: list[Message] = []
    for i in range(1, 13 * 6):  # 13 min of distraction on the laptop, desk still in flow
        day.now += 10
        day.window(F, 60 + i * 10, 0.9, "desk")
        got += day.window(D, i * 10.0, host="laptop")
    assert requests(got) == [] and "FLOW" in day.core.blocked
    # the same with the desk's FLOW under 0.8: not protected, the nudge comes
    day2 = Day()
    got2: list[Message] = []
    for i in range(1, 13 * 6):
        day2.now += 10
        day2.window(F, i * 10.0, 0.7, "desk")
        got2 += day2.window(D, i * 10.0, host="laptop")
    assert [r.kind for r in requests(got2)] == ["nudge"]


def test_hyperfocus_under_90_min_is_never_interrupted() -> None:
    day = Day()
    got: list[Message] = []
    for i in range(1, 80 * 6):  # desk in hyperfocus for 80 min, laptop distracted all along
        day.now += 10
        day.window(H, i * 10.0, 0.5, "desk")
        got += day.window(D, i * 10.0, host="laptop")
    assert requests(got) == [] and "HYPERFOCUS under 90 min" in day.core.blocked


def test_break_after_90_min_of_hyperfocus_and_not_before() -> None:
    day = Day()
    before = day.run(H, 89.9)
    assert requests(before) == []
    assert "HYPERFOCUS under 90" in day.core.blocked or day.core.blocked == ""
    got = day.run(H, 0.2, start_tis=89.9 * MIN)
    (req,) = requests(got)
    assert req.kind == "break" and req.state is H and req.time_in_state_s >= 90 * MIN


def test_break_repeats_at_most_every_30_min_while_hyperfocus_lasts() -> None:
    day = Day()
    got = day.run(H, 180)
    breaks = requests(got, "break")
    times = [req.time_in_state_s for req in breaks]
    assert times[0] == 90 * MIN
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps and all(g >= 30 * MIN for g in gaps)
    assert len(breaks) == 4  # 90, 120, 150, 180


def test_the_break_is_guaranteed_even_inside_the_global_cooldown() -> None:
    day = Day()
    day.run(H, 80, host="desk")
    # the desk's analysis pauses for 6 min (stale: it protects nobody) while the laptop has been
    # distracted for 10 min: the nudge is delivered
    got = day.run(D, 6, start_tis=10 * MIN, host="laptop")
    assert [r.kind for r in requests(got) if r.kind != "celebrate"] == ["nudge"]
    nudge_at = next(m for m in day.out if isinstance(m, InterventionRequest) and m.kind == "nudge")
    assert nudge_at.time_in_state_s >= 10 * MIN
    delivered = day.core.progress.last_delivery["nudge"]
    # the desk is back, still in the same hyperfocus: at 90 min the break comes anyway
    got = day.run(H, 4.1, start_tis=86 * MIN, host="desk")
    assert [r.kind for r in requests(got) if r.kind != "celebrate"] == ["break"]
    assert day.now - delivered < 15 * MIN


# -- nudge and recovery -------------------------------------------------------------------------
def test_nudge_after_10_min_distracted_not_before() -> None:
    day = Day()
    assert requests(day.run(D, 9.9)) == []
    (req,) = requests(day.run(D, 0.2, start_tis=9.9 * MIN))
    assert req.kind == "nudge" and req.time_in_state_s >= 10 * MIN


def test_durations_come_from_the_blip_tolerant_time_in_state_not_window_runs() -> None:
    day = Day()
    # 20 min of DISTRACTED windows whose time in state keeps restarting (a real change each
    # 5 min, as the classifier reports it): no nudge
    got: list[Message] = []
    for _ in range(4):
        got += day.run(D, 5)
    assert requests(got) == []
    # one window that says 12 min in the state (blip-tolerant: odd windows did not restart it)
    got = day.window(D, 12 * MIN)
    assert [r.kind for r in requests(got)] == ["nudge"]


def test_recovery_after_a_distraction_earns_coins_and_support() -> None:
    day = Day()
    day.run(D, 6)
    got = day.run(T, 2) + day.run(N, 0.5)
    (coin,) = rewards(got, "recovery")
    assert coin.coins == 3
    (req,) = requests(got)
    assert req.kind == "recovery" and 5.9 * MIN <= req.time_in_state_s <= 6 * MIN


def test_no_recovery_after_a_short_distraction_or_a_walk_away() -> None:
    day = Day()
    day.run(D, 4)
    got = day.run(N, 2)
    assert rewards(got, "recovery") == [] and requests(got) == []
    day.run(D, 8)
    got = day.run(IDLE, 3) + day.run(N, 2)
    assert rewards(got, "recovery") == [] and requests(got) == []
    day.run(D, 8)
    got = day.run(T, 11) + day.run(N, 1)  # back, but too late to count as a recovery
    assert rewards(got, "recovery") == []


def test_recovery_into_confident_flow_pays_but_does_not_interrupt() -> None:
    day = Day()
    day.run(D, 6)
    got = day.run(F, 1, conf=0.95)
    assert len(rewards(got, "recovery")) == 1 and requests(got) == []


def test_recovery_length_from_the_state_change() -> None:
    day = Day()
    day.run(D, 3)
    change = StateChange(D, N, 0.9, day.now + 10, 7 * MIN, "laptop")
    day.core.on_state_change(day.now, change)
    got = day.run(N, 0.2)
    (req,) = requests(got)
    assert req.kind == "recovery" and req.time_in_state_s == 7 * MIN


# -- cooldowns, caps, delivery ------------------------------------------------------------------
def test_global_cooldown_15_min_between_any_two() -> None:
    day = Day()
    (nudge,) = requests(day.run(D, 10.1))
    got = day.run(N, 1)  # a recovery 1 min after the nudge: inside the global cooldown
    assert rewards(got, "recovery") and requests(got) == []
    assert day.core.blocked == "recovery: global cooldown"
    del nudge


def test_at_most_3_per_rolling_hour() -> None:
    # short cooldowns, so only the hourly cap holds the nudges back
    cfg = GamificationConfig(global_cooldown_min=1.0, nudge_cooldown_min=(1.0, 1.0, 90.0))
    day = Day(cfg)
    t0 = day.now
    stamps: list[float] = []
    for i in range(1, 130 * 6):
        day.now = t0 + i * 10
        if requests(day.window(D, 10 * MIN + i * 10)):
            stamps.append(day.now)
    for s in stamps:
        assert len([x for x in stamps if s - 3600 < x <= s]) <= 3
    assert stamps[:3] == [t0 + 10, t0 + 10 + 60, t0 + 10 + 120]
    assert stamps[3] == stamps[0] + 3600  # as soon as the first one left the hour
    assert len(stamps) == 9
    assert day.core.blocked == "nudge: 3 interventions in the last hour"


def test_cooldowns_start_at_delivery_not_at_the_request() -> None:
    day = Day()
    day.auto_deliver = False
    (req,) = requests(day.run(D, 10.1))
    day.run(D, 0.75, start_tis=10.1 * MIN)
    delivered_at = day.now
    day.respond(req.intervention_id, "delivered")
    day.respond(req.intervention_id, "ignored")  # cooldown now 30 * 1.25 = 37.5 min
    start = day.now
    later: list[float] = []
    tis = 10.85 * MIN
    while not later:
        day.now += 10
        tis += 10
        msgs = day.window(D, tis)
        if requests(msgs):
            later.append(day.now)
    assert later[0] - delivered_at >= 37.5 * MIN > later[0] - delivered_at - 11
    assert start == delivered_at


def test_an_undelivered_request_counts_as_delivered_after_the_timeout() -> None:
    day = Day()
    day.auto_deliver = False
    got = day.run(D, 13, start_tis=10 * MIN)
    (req,) = requests(got)  # no second request while the first is unanswered
    assert day.core.pending is None  # timed out after 60 s, counted at its request time
    assert day.core.progress.last_delivery["nudge"] == NOON + 10
    del req


def test_responses_adapt_each_kinds_cooldown_within_bounds() -> None:
    day = Day()
    core = day.core
    seen = []
    for response in ["dismissed", "dismissed", "dismissed", "dismissed", "engaged"]:
        day.now += 86400
        (req,) = requests(day.window(D, 11 * MIN))
        day.respond(req.intervention_id, response)
        seen.append(core.progress.cooldown_s["nudge"] / MIN)
    assert seen == [45.0, 67.5, 90.0, 90.0, 72.0]
    for _ in range(10):
        day.now += 86400
        (req,) = requests(day.window(D, 11 * MIN))
        day.respond(req.intervention_id, "engaged")
    assert core.progress.cooldown_s["nudge"] == 20 * MIN  # lower bound
    assert core.progress.cooldown_s["recovery"] == 30 * MIN  # other kinds untouched


def test_a_dismissed_nudge_comes_back_later_than_an_engaged_one() -> None:
    def second_nudge_after(response: str) -> float:
        day = Day()
        (req,) = requests(day.run(D, 10.1))
        first = day.core.progress.last_delivery["nudge"]
        day.respond(req.intervention_id, response)
        tis = 10.1 * MIN
        while True:
            day.now += 10
            tis += 10
            if requests(day.window(D, tis)):
                return day.now - first

    assert second_nudge_after("dismissed") >= 45 * MIN
    assert 24 * MIN <= second_nudge_after("engaged") < 25 * MIN


# -- quiet hours, snooze, local time ------------------------------------------------------------
def test_quiet_hours_across_midnight() -> None:
    day = Day()
    for now, quiet in [
        (at(18, 21, 59), False),
        (at(18, 22, 0), True),
        (at(19, 0, 30), True),
        (at(19, 7, 59), True),
        (at(19, 8, 0), False),
    ]:
        day.now = now
        got = day.window(D, 11 * MIN, host=f"h{now}")
        assert bool(requests(got)) is not quiet, dt.datetime.fromtimestamp(now, BERLIN)
        if requests(got):
            day.core.progress.last_delivery.clear()
            day.core.progress.deliveries.clear()


def test_quiet_hours_publish_companion_mode_at_their_edges() -> None:
    day = Day()
    assert day.out == [CompanionMode(False, 0.0, "start")]
    now = at(18, 21, 0)
    deadline = day.core.next_deadline(now)
    assert deadline == at(18, 22, 0)
    assert day.tick(deadline) == [CompanionMode(True, 0.0, "quiet hours")]
    assert day.core.next_deadline(deadline) == at(19, 8, 0)
    assert day.tick(at(19, 8, 0)) == [CompanionMode(False, 0.0, "awake")]


def test_quiet_hours_follow_the_local_clock_across_dst_changes() -> None:
    day = Day()
    # spring forward (Berlin, 29 March 2026, 02:00 -> 03:00): 23:00 to 08:00 is 8 hours
    evening = at(28, 23, 0, month=3)
    end = day.core.next_deadline(evening)
    assert end == at(29, 8, 0, month=3) and end - evening == 8 * 3600
    assert day.core.quiet(end - 60) and not day.core.quiet(end)
    # fall back (25 October 2026, 03:00 -> 02:00): 10 hours
    evening = at(24, 23, 0, month=10)
    end = day.core.next_deadline(evening)
    assert end == at(25, 8, 0, month=10) and end - evening == 10 * 3600
    assert day.core.quiet(end - 60) and not day.core.quiet(end)
    # no intervention at 07:30 on either morning, and the nudge right at 08:00
    for month, d in [(3, 29), (10, 25)]:
        fresh = Day()
        fresh.now = at(d, 7, 30, month=month)
        assert requests(fresh.window(D, 11 * MIN)) == []
        fresh.now = at(d, 8, 0, month=month)
        assert [r.kind for r in requests(fresh.window(D, 11 * MIN))] == ["nudge"]


def test_quiet_hours_in_another_zone_are_that_zones_wall_time() -> None:
    core = Companion(GamificationConfig(), ZoneInfo("America/New_York"))
    ny_23 = dt.datetime(2026, 11, 18, 23, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
    assert core.quiet(ny_23) and not core.quiet(ny_23 - 2 * 3600)


def test_snooze_from_a_long_press_silences_for_30_min() -> None:
    day = Day()
    day.run(D, 5)
    got = day.core.on_input(day.now, UserInput("long", "gpio", day.now))
    assert got == [CompanionMode(False, day.now + 30 * MIN, "snoozed by a long press")]
    pressed = day.now
    assert requests(day.run(D, 29.8, start_tis=5 * MIN)) == []
    assert day.core.blocked == "nudge: snoozed"
    end = day.core.next_deadline(day.now)
    assert end == pressed + 30 * MIN
    assert day.tick(end) == [CompanionMode(False, 0.0, "awake")]
    day.now = end
    assert [r.kind for r in requests(day.window(D, 35 * MIN))] == ["nudge"]


def test_short_and_double_presses_do_not_snooze() -> None:
    day = Day()
    for g in ("short", "double", "touch"):
        assert day.core.on_input(day.now, UserInput(g, "mcu", day.now)) == []
    assert not day.core.snoozed(day.now)


# -- rewards ------------------------------------------------------------------------------------
def test_focus_coins_per_15_min_of_one_run_flow_and_hyperfocus_together() -> None:
    day = Day()
    assert rewards(day.run(F, 14.9, conf=0.95), "focus") == []
    (coin,) = rewards(day.run(F, 0.1, start_tis=14.9 * MIN, conf=0.95), "focus")
    assert coin.coins == 5 and coin.total_coins == 5
    # flow turns into hyperfocus: the run continues (10 more min of flow, then 5 of hyperfocus)
    day.run(F, 10, start_tis=15 * MIN, conf=0.95)
    got = day.run(H, 5)
    assert [c.coins for c in rewards(got, "focus")] == [5]
    # a break in the run starts over
    day.run(N, 2)
    assert rewards(day.run(F, 14, conf=0.95), "focus") == []


def test_daily_milestones_are_granted_once() -> None:
    day = Day()
    got = day.run(F, 65, conf=0.95)
    assert [r.reason for r in rewards(got, "milestone")] == [
        "30 min of focus today",
        "60 min of focus today",
    ]
    day.run(N, 5)
    got = day.run(F, 20, conf=0.95)  # 85 min today: nothing new until 120
    assert rewards(got, "milestone") == []
    # restart the same day: still not granted again
    again = Day(snap=day.core.snapshot())
    again.now = day.now
    assert rewards(again.run(F, 20, conf=0.95), "milestone") == []
    # the next day starts from zero
    again.now = at(19, 10)
    assert len(rewards(again.run(F, 31, conf=0.95), "milestone")) == 1


def test_streak_counts_once_per_day_across_a_restart() -> None:
    day = Day()
    got = day.run(F, 31, conf=0.95)
    (s,) = rewards(got, "streak")
    assert day.core.progress.streak == 1 and s.coins == 5
    snap = day.core.snapshot()
    # restart on the same local date: the day is not counted again
    day2 = Day(snap=snap)
    day2.now = day.now + 3600
    assert rewards(day2.run(F, 40, conf=0.95), "streak") == []
    # the next local day: 2; one skipped day: back to 1
    day3 = Day(snap=day2.core.snapshot())
    day3.now = at(19, 9)
    (s2,) = rewards(day3.run(F, 31, conf=0.95), "streak")
    assert day3.core.progress.streak == 2 and s2.coins == 10
    day4 = Day(snap=day3.core.snapshot())
    day4.now = at(21, 9)
    rewards(day4.run(F, 31, conf=0.95), "streak")
    assert day4.core.progress.streak == 1


def test_streak_day_follows_the_local_date_not_utc() -> None:
    day = Day()
    day.run(F, 31, conf=0.95)
    # 00:05 to 00:36 in Berlin on the 19th is still the 18th in UTC: a new local day all the same
    day2 = Day(snap=day.core.snapshot())
    day2.now = at(19, 0, 5)
    day2.run(F, 31, conf=0.95)
    assert dt.datetime.fromtimestamp(day2.now, dt.UTC).day == 18
    assert day2.core.progress.streak == 2


def test_clock_jump_back_neither_recounts_the_day_nor_blocks_for_ever() -> None:
    day = Day()
    day.run(F, 31, conf=0.95)
    assert day.core.progress.streak == 1
    assert "nudge" in [r.kind for r in requests(day.run(D, 10.1))]
    # the clock goes back two days (a bad RTC, then NTP later)
    day.now -= 2 * 86400
    got = day.run(F, 65, conf=0.95)
    assert rewards(got, "streak") == []  # an earlier date never extends the streak
    assert day.core.progress.streak == 1
    # the delivery "in the future" was pulled back: a nudge is possible 30 min later, not 2 days
    day.run(N, 5)
    got = day.run(D, 41)
    assert [r.kind for r in requests(got)] == ["nudge", "nudge"]


# -- celebrations -------------------------------------------------------------------------------
def test_a_milestone_celebration_waits_for_the_flow_to_end() -> None:
    day = Day()
    got = day.run(F, 35, conf=0.95)
    assert rewards(got, "milestone") and requests(got) == []
    got = day.run(N, 0.2)
    (cel,) = requests(got)
    assert cel.kind == "celebrate" and cel.reason in ("milestone 30 min", "streak 1 day")
    assert cel.intervention_id.startswith("celebrate-")
    # not an intervention: no delivery awaited, no cooldown started
    assert day.core.pending is None and day.core.progress.deliveries == []


# -- persistence --------------------------------------------------------------------------------
def test_snapshot_round_trips_and_garbage_starts_afresh() -> None:
    day = Day()
    day.run(F, 31, conf=0.95)
    (req,) = requests(day.run(D, 10.1), "nudge")
    day.respond(req.intervention_id, "dismissed")
    snap = day.core.snapshot()
    back = Companion(GamificationConfig(), BERLIN, snap)
    assert back.snapshot() == snap
    assert back.progress.coins == day.core.progress.coins > 0
    for junk in [None, 3, "x", {"version": 99}, {"version": 1, "coins": "lots"}]:
        fresh = Companion(GamificationConfig(), BERLIN, junk)
        assert fresh.progress.coins == 0


def test_config_rejects_inconsistent_numbers() -> None:
    import pytest

    with pytest.raises(ValueError, match="quiet_start must be HH:MM"):
        GamificationConfig(quiet_start="25:00")
    with pytest.raises(ValueError, match="low <= start <= high"):
        GamificationConfig(nudge_cooldown_min=(10.0, 20.0, 90.0))
    assert replace(GamificationConfig(), max_per_hour=2).max_per_hour == 2


def test_at_most_16_hosts_are_remembered() -> None:
    day = Day()
    for i in range(40):
        day.now += 10
        day.window(N, 60.0, host=f"host-{i}")
    assert len(day.core.hosts) == 16 and "host-39" in day.core.hosts
    assert "host-23" not in day.core.hosts


def test_companion_md_lists_every_setting_with_its_default() -> None:
    import dataclasses
    import json
    import re
    from pathlib import Path

    from modules.ai import AIConfig

    doc = (Path(__file__).resolve().parents[2] / "docs" / "COMPANION.md").read_text()
    section = doc[doc.index("## 10. Configuration") : doc.index("## 11.")]
    section = " ".join(section.split())
    for table, config in (("[gamification]", GamificationConfig()), ("[ai]", AIConfig())):
        part = section[section.index(f"`{table}`") :]
        for f in dataclasses.fields(config):
            m = re.search(rf"`{f.name}` \(([^=)]+?)(?: =[^)]*)?\)", part)
            assert m is not None, f"{table} {f.name} is not in COMPANION.md §10"
            value = getattr(config, f.name)
            documented = json.loads(m.group(1))
            if isinstance(value, tuple):
                value = list(value)
            assert documented == value, (table, f.name, documented, value)
