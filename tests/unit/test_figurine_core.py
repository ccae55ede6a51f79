"""The figurine's pure core under a fake clock: base looks, overlays, gestures, responses, caps."""

from __future__ import annotations

import pytest

from bus.messages import (
    AnalysisComplete,
    AnimationCommand,
    CompanionMode,
    FocusState,
    InterventionResponse,
    LinkStatus,
    StateChange,
)
from modules.figurine.backends import RateCap
from modules.figurine.buttons import GestureDetector
from modules.figurine.compositor import Compositor
from modules.figurine.config import FigurineConfig, GpioConfig
from modules.figurine.look import STATE_LOOKS
from modules.figurine.overlays import Overlay, OverlayQueue


def change(to: FocusState, at: float = 0.0) -> StateChange:
    return StateChange(FocusState.NEUTRAL, to, 0.9, at, 0.0)


def window(state: FocusState, time_in_state_s: float) -> AnalysisComplete:
    return AnalysisComplete(0.0, 30.0, state, 0.9, state, time_in_state_s)


def nudge(iid: str = "i1", name: str = "nudge", duration_s: float = 10.0) -> AnimationCommand:
    return AnimationCommand(name, duration_s, text="hey", intervention_id=iid)


def host(up: bool, peer: str = "laptop") -> LinkStatus:
    return LinkStatus("host", up, peer)


def test_base_look_follows_the_state() -> None:
    core = Compositor(now=0.0)
    core.on_host_link(host(True), 0.0)
    for state, spec in STATE_LOOKS.items():
        core.on_state_change(change(state), 1.0)
        look = core.look(1.0)
        assert (look.rgb, look.pulse_s, look.face, look.mood) == (
            spec.rgb,
            spec.pulse_s,
            spec.face,
            spec.mood,
        )
    core.on_state_change(change(FocusState.FLOW), 2.0)
    assert core.look(2.0).pulse_s == 6.0  # calm slow breathing
    core.on_state_change(change(FocusState.HYPERFOCUS), 3.0)
    assert core.look(3.0).pulse_s == 0.0  # very still


def test_distracted_melt_rises_with_the_blip_tolerant_time_in_state() -> None:
    core = Compositor(now=0.0)
    core.on_analysis(window(FocusState.DISTRACTED, 0.0), 0.0)
    first = core.look(0.0).melt
    core.on_analysis(window(FocusState.DISTRACTED, 5 * 60.0), 1.0)
    assert core.look(1.0).melt == first + 20
    core.on_analysis(window(FocusState.DISTRACTED, 60 * 60.0), 2.0)
    assert core.look(2.0).melt == 80  # capped


def test_energy_moves_toward_the_state_target_and_scales_the_glow() -> None:
    core = Compositor(now=0.0)
    core.on_host_link(host(True), 0.0)
    core.on_analysis(window(FocusState.IDLE, 60.0), 0.0)
    dim = core.look(0.0).intensity
    for i in range(20):
        core.on_analysis(window(FocusState.IDLE, 60.0 + i), float(i))
    assert core.energy < 20
    assert core.look(30.0).intensity < dim


def test_sleepy_after_the_host_is_away_for_the_configured_time() -> None:
    core = Compositor(FigurineConfig(sleepy_after_s=100.0), now=0.0)
    core.on_host_link(host(True), 0.0)
    core.on_state_change(change(FocusState.FLOW), 0.0)
    core.on_host_link(host(False), 10.0)
    assert core.look(109.0).mood == "calm"
    assert core.next_deadline(109.0) == 110.0  # the module wakes itself then
    assert core.look(110.0).face == "sleepy"
    assert core.look(110.0).melt == 90
    core.on_host_link(host(True, "other"), 120.0)
    assert core.look(120.0).mood == "calm"


def test_sleepy_counts_from_start_when_no_host_ever_came_and_needs_every_host_gone() -> None:
    core = Compositor(FigurineConfig(sleepy_after_s=50.0), now=0.0)
    assert core.look(50.0).face == "sleepy"
    core.on_host_link(host(True, "a"), 60.0)
    core.on_host_link(host(True, "b"), 60.0)
    core.on_host_link(host(False, "a"), 61.0)
    assert core.look(500.0).face != "sleepy"  # b is still connected


def test_quiet_dims_glow_and_eyes_and_mutes_sound() -> None:
    core = Compositor(now=0.0)
    core.on_host_link(host(True), 0.0)
    loud = core.look(0.0)
    core.on_mode(CompanionMode(True), 0.0)
    quiet = core.look(0.0)
    assert quiet.intensity == pytest.approx(loud.intensity * 0.3, abs=0.01)
    assert quiet.eyes == pytest.approx(loud.eyes * 0.3, abs=0.01)
    core.on_animation(AnimationCommand("celebrate", 5.0, sound="chime"), 1.0)
    assert core.look(1.0).sound == ""
    assert core.look(1.0).intensity <= 0.3
    core.on_mode(CompanionMode(False), 1.0)
    assert core.look(1.0).sound == "chime"


def test_overlay_is_delivered_when_it_starts_and_ignored_when_it_expires() -> None:
    core = Compositor(now=0.0)
    out = core.on_animation(nudge(duration_s=10.0), 5.0)
    assert out == [InterventionResponse("i1", "delivered", 0.0)]
    look = core.look(6.0)
    assert (look.text, look.face, look.animation) == ("hey", "neutral", "wave")
    assert core.next_deadline(6.0) == 15.0
    assert core.update(14.9) == []
    assert core.update(15.0) == [InterventionResponse("i1", "ignored", 10.0)]
    assert core.look(15.0).text == ""


def test_urgent_overlay_interrupts_and_the_interrupted_one_resumes_with_its_clock() -> None:
    q = OverlayQueue()
    low = Overlay("celebrate", 10.0, 0.0)
    q.push(low, 0.0)
    assert q.showing is low
    urgent = Overlay("break", 5.0, 2.0)
    changes = q.push(urgent, 2.0)
    assert [(c.what, c.overlay.name) for c in changes] == [("started", "break")]
    assert q.showing is urgent
    changes = q.update(7.0)
    assert [(c.what, c.overlay.name) for c in changes] == [("ended", "break")]
    assert q.showing is low  # back, not restarted
    assert [c.what for c in q.update(10.0)] == ["ended"]


def test_equal_priority_waits_and_a_stale_one_is_dropped() -> None:
    q = OverlayQueue(stale_after_s=30.0)
    q.push(Overlay("nudge", 60.0, 0.0, intervention_id="a"), 0.0)
    waiting = Overlay("recovery", 5.0, 1.0, intervention_id="b")
    assert q.push(waiting, 1.0) == []
    assert q.showing is not None and q.showing.intervention_id == "a"
    assert [(c.what, c.overlay.intervention_id) for c in q.update(31.0)] == [("stale", "b")]


def test_repeats_coalesce_into_one_entry() -> None:
    core = Compositor(now=0.0)
    core.on_animation(AnimationCommand("celebrate", 10.0, text="one"), 0.0)
    core.on_animation(AnimationCommand("celebrate", 10.0, text="two"), 4.0)
    core.on_animation(AnimationCommand("celebrate", 10.0, text="three"), 8.0)
    assert len(core.overlays) == 1
    assert core.look(8.0).text == "three"
    assert core.update(17.9) == [] and core.look(17.9).text == "three"  # restarted at 8
    core.update(18.0)
    assert core.look(18.0).text == ""


def test_queue_is_bounded_and_drops_the_lowest_priority_oldest() -> None:
    core = Compositor(now=0.0)
    for i in range(8):
        core.on_animation(AnimationCommand(f"extra{i}", 100.0), float(i))
    out = core.on_animation(nudge("n9"), 9.0)
    assert len(core.overlays) == 8
    names = {o.name for o in core.overlays.entries()}
    assert "extra0" not in names and "nudge" in names
    assert out == [InterventionResponse("n9", "delivered", 0.0)]


@pytest.mark.parametrize(
    ("gesture", "after", "response", "overlay_after"),
    [
        ("short", 2.0, "dismissed", ""),
        ("short", 5.0, "engaged", ""),
        ("double", 1.0, "engaged", "pet"),
        ("touch", 1.0, "engaged", "pet"),
        ("long", 1.0, "snoozed", "snooze"),
    ],
)
def test_a_gesture_while_an_intervention_shows_is_its_response(
    gesture: str, after: float, response: str, overlay_after: str
) -> None:
    core = Compositor(FigurineConfig(quick_dismiss_s=5.0), now=0.0)
    core.on_animation(nudge(duration_s=20.0), 10.0)
    out = core.on_gesture(gesture, 10.0 + after)
    assert out == [InterventionResponse("i1", response, after)]
    showing = core.overlays.showing
    assert (showing.name if showing else "") == overlay_after


def test_gestures_without_an_intervention() -> None:
    core = Compositor(now=0.0)
    core.on_animation(AnimationCommand("celebrate", 30.0), 0.0)
    assert core.on_gesture("short", 1.0) == []
    assert core.overlays.showing is None  # acknowledged
    energy = core.energy
    core.on_gesture("double", 2.0)
    look = core.look(2.0)
    assert (look.mood, look.animation, look.face) == ("happy", "wiggle", "happy")
    assert core.energy == energy + 5
    core.update(4.5)
    assert core.overlays.showing is None  # the wiggle is short
    core.on_gesture("long", 5.0)
    assert core.look(5.0).face == "sleepy"


def test_one_shots_get_a_new_cue_only_when_an_overlay_starts() -> None:
    core = Compositor(now=0.0)
    core.on_animation(AnimationCommand("celebrate", 10.0, sound="chime"), 0.0)
    first = core.look(0.0).cue_serial
    assert first > 0
    core.on_animation(AnimationCommand("break", 2.0, intervention_id="b"), 1.0)
    assert core.look(1.0).cue_serial > first
    core.update(3.0)
    assert core.look(3.0).cue_serial == first  # resumed: not replayed


def test_gesture_detector_short_long_double() -> None:
    d = GestureDetector(double_press_s=0.4)
    assert d.pressed(0.0) == [] and d.released(0.1) == []
    assert d.next_deadline() == pytest.approx(0.5)
    assert d.poll(0.49) == [] and d.poll(0.5) == ["short"]
    assert d.pressed(1.0) == [] and d.held(2.0) == ["long"] and d.released(3.0) == []
    assert d.pressed(4.0) == [] and d.released(4.1) == []
    assert d.pressed(4.3) == ["double"]
    assert d.held(5.3) == [] and d.released(5.4) == []  # the second press held: no long
    assert d.next_deadline() is None
    assert d.pressed(6.0) == [] and d.released(6.1) == []
    assert d.pressed(7.0) == ["short"]  # too late for a double: the first was short
    assert d.released(7.1) == [] and d.poll(8.0) == ["short"]


def test_gesture_detector_without_double_decides_short_at_release() -> None:
    d = GestureDetector(double_press_s=0.0)
    assert d.pressed(0.0) == [] and d.released(0.1) == ["short"]


def test_rate_cap_writes_changes_only_and_keeps_the_newest() -> None:
    cap: RateCap[int] = RateCap(10.0)
    assert cap.offer(1, 0.0) == (True, None)
    assert cap.offer(1, 0.05) == (False, None)  # unchanged: nothing to write
    assert cap.offer(2, 0.05) == (False, 0.1)
    assert cap.offer(3, 0.07) == (False, 0.1)
    assert cap.offer(3, 0.1) == (True, None)  # the newest, once
    assert cap.writes == 2


def test_config_rejects_shared_pins_and_bad_caps() -> None:
    with pytest.raises(ValueError, match=r"gpio\.eyes and gpio\.red both use GPIO17"):
        GpioConfig(eyes=17)
    with pytest.raises(ValueError, match="led_max_hz"):
        FigurineConfig(led_max_hz=60.0)
