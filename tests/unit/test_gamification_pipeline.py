"""End to end, headless: a simulated host streams a compressed stretch of a day over real TCP
into DataCapture → Storage (real SQLite) → AnalysisEngine → Gamification → AI on one bus, all on
the simulator's clock; a stand-in for the figurine answers each AnimationCommand.

Scripted: a little neutral work, 14 minutes of distraction, then back to work.  Expected: one
nudge once the distraction has lasted 10 min (time in state from the real classifier), not
before; the nudge is voiced by the AI (≤ 150 chars, the request's id); coming back earns
recovery coins; the recovery support is held back by the global cooldown since the nudge was
delivered minutes before; the dismissal lengthens the nudge cooldown and that is in Storage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bus import Bus, Envelope, ModuleId
from bus.messages import (
    AnalysisComplete,
    AnimationCommand,
    FocusState,
    InterventionRequest,
    InterventionResponse,
    RewardEvent,
)
from hw_sim.clock import SimClock
from hw_sim.host import compressed_storage_config, stream_scenario
from hw_sim.scenarios import DEFAULT_START, Segment, generate
from modules.ai import AI
from modules.analysis import AnalysisEngine
from modules.data_capture import DataCapture, IngestConfig
from modules.gamification import Gamification, GamificationConfig
from modules.storage import Storage, StorageConfig

Run = Callable[[Coroutine[Any, Any, Any]], Any]
SPEED = 60.0
TOKEN = "sim-token-0123456789abcdefghijklmnopqrstuvwxyz"
N, D = FocusState.NEUTRAL, FocusState.DISTRACTED


def test_a_compressed_distraction_through_the_real_pipeline(run: Run, tmp_path: Path) -> None:
    # 09:00 in Berlin: outside quiet hours whatever the real time of day is
    sc = generate(
        "spiral", (Segment(N, 3), Segment(D, 14), Segment(N, 5)), seed=3, start=DEFAULT_START
    )

    async def main() -> tuple[list[Envelope], Any]:
        clock = SimClock(SPEED, start=sc.start - 1.0)
        bus = Bus()
        got: list[Envelope] = []

        def figurine(env: Envelope) -> None:  # shows each message at once; the user dismisses
            cmd = env.payload
            got.append(env)
            if isinstance(cmd, AnimationCommand) and cmd.intervention_id:
                for response in ("delivered", "dismissed"):
                    bus.publish(
                        InterventionResponse(cmd.intervention_id, response, 1.0),
                        source=ModuleId.FIGURINE,
                    )

        bus.subscribe(
            figurine,
            types=[AnalysisComplete, InterventionRequest, RewardEvent, AnimationCommand],
            maxsize=10_000,
        )
        config = dataclasses.replace(
            compressed_storage_config(StorageConfig(), SPEED), window_grace_s=0.5 * SPEED
        )
        storage = Storage(config, tmp_path, clock=clock.now, sleep=clock.sleep)
        capture = DataCapture(IngestConfig(host="127.0.0.1", port=0), sink=storage, token=TOKEN)
        gamification = Gamification(
            GamificationConfig(timezone="Europe/Berlin"),
            store=storage,
            clock=clock.now,
            sleep=clock.sleep,
        )
        modules = [storage, capture, AnalysisEngine(), gamification, AI()]
        for module in modules:
            await module.start(bus)
        await stream_scenario(sc, clock, f"127.0.0.1:{capture.port}", TOKEN, connect_timeout=30.0)
        await clock.sleep(config.window_grace_s + 15.0)  # the last windows close
        await bus.join()
        for module in reversed(modules):
            await module.stop()
        async with Storage(StorageConfig(), tmp_path) as reopened:
            saved = await reopened.get_state("gamification")
        await bus.aclose()
        return got, saved

    got, saved = run(main())
    payloads = [e.payload for e in got]
    windows = [p for p in payloads if isinstance(p, AnalysisComplete)]
    assert any(w.state is D for w in windows), "the classifier never saw the distraction"
    requests = [p for p in payloads if isinstance(p, InterventionRequest)]
    assert [r.kind for r in requests] == ["nudge"], requests
    nudge = requests[0]
    assert nudge.state is D and nudge.time_in_state_s >= 600.0
    # the first window the classifier had been distracted 10 min: the nudge came with it
    first_due = next(w for w in windows if w.state is D and w.time_in_state_s >= 600.0)
    before = payloads[: payloads.index(first_due)]
    assert not [p for p in before if isinstance(p, InterventionRequest)]
    (voiced,) = [p for p in payloads if isinstance(p, AnimationCommand)]
    assert voiced.name == "nudge" and voiced.intervention_id == nudge.intervention_id
    assert 0 < len(voiced.text) <= 150
    recovery = [p for p in payloads if isinstance(p, RewardEvent) and p.kind == "recovery"]
    assert len(recovery) == 1 and recovery[0].coins == 3
    # delivered and dismissed: the nudge cooldown grew 30 -> 45 min, and Storage has it
    assert saved["cooldown_s"]["nudge"] == 45 * 60
    assert saved["coins"] == recovery[0].total_coins
