"""Turns an InterventionRequest into an AnimationCommand: template or LLM text, filtered.

:class:`Writer` is pure apart from its injected random generator: :meth:`from_template` picks a
template of the cue's bank that is not among the last ``no_repeat`` texts shown (and no pun if
one was shown in the last ``pun_every`` messages), fills in the variables and checks it;
:meth:`accept` takes a text from elsewhere (the LLM) through the same filter and repeat check.
:meth:`prompt` is what the LLM is told: the kind, the state and a duration, nothing else.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass

from bus.messages import AnimationCommand, InterventionRequest, RewardEvent
from modules.ai.filter import check, clean
from modules.ai.templates import BANK, CUES, Template

SYSTEM_PROMPT = (
    "You are Skelly, a small melty skeleton figurine on a desk who keeps its person company. "
    "Personality: chill, warm, supportive, on their side; never clinical, never patronising, "
    "never shaming, no advice lists. Write ONE short message (under 120 characters, plain text, "
    "no quotes, no emoji, no links). Avoid the words just, simply, obviously, should."
)
ASK = {
    "nudge": "They have been scattered (switching a lot) for {minutes} minutes. "
    "Gently invite them to pick one small thing.",
    "break": "They have been in deep focus for {minutes} minutes. Suggest a short break kindly.",
    "recovery": "They came back to focused work after {minutes} minutes of distraction. "
    "Welcome them back warmly.",
}
_CELEBRATE = re.compile(r"^(milestone|streak)\s+(\d+)")


@dataclass(frozen=True)
class Draft:
    text: str
    source: str
    """"template" or "llm"."""


class Writer:
    def __init__(
        self, no_repeat: int = 5, pun_every: int = 6, rng: random.Random | None = None
    ) -> None:
        self.recent: deque[str] = deque(maxlen=max(no_repeat, 0))
        self.puns: deque[bool] = deque(maxlen=max(pun_every - 1, 1))
        self.rng = rng or random.Random()
        self.last_reward: RewardEvent | None = None
        self.rewards: dict[str, RewardEvent] = {}
        """The last reward of each kind (a celebration may come a while after its reward)."""
        self.rejected = 0
        """Texts refused by the filter or the repeat check (templates and LLM)."""

    def note_reward(self, reward: RewardEvent) -> None:
        self.last_reward = reward
        self.rewards[reward.kind] = reward

    def values(self, req: InterventionRequest) -> tuple[str, dict[str, int]]:
        """The bank to use and the variables for ``req``."""
        minutes = max(round(req.time_in_state_s / 60.0), 1)
        reward = self.last_reward
        coins = reward.coins if reward is not None else 0
        total = reward.total_coins if reward is not None else 0
        values = {"minutes": minutes, "coins": coins, "total": total, "days": 1}
        bank = req.kind if req.kind in BANK else "celebrate"
        if req.kind == "celebrate":
            m = _CELEBRATE.match(req.reason)
            if m is not None:
                bank = m.group(1)
                n = int(m.group(2))
                values["minutes" if bank == "milestone" else "days"] = n
            elif reward is not None and reward.kind in ("milestone", "streak"):
                bank = reward.kind
            own = self.rewards.get(bank)
            if own is not None:
                values["coins"] = own.coins
        return bank, values

    def prompt(self, req: InterventionRequest) -> tuple[str, str] | None:
        """(system, user) for the LLM, or None for kinds it does not write (celebrations)."""
        ask = ASK.get(req.kind)
        if ask is None:
            return None
        minutes = max(round(req.time_in_state_s / 60.0), 1)
        user = f"State: {req.state.value}. " + ask.format(minutes=minutes)
        return SYSTEM_PROMPT, user

    def accept(self, text: str) -> str:
        """A text from elsewhere, cleaned; '' if the filter or the repeat check refuses it."""
        text = clean(text)
        if check(text) or text in self.recent:
            self.rejected += 1
            return ""
        return text

    def from_template(self, bank: str, values: dict[str, int]) -> str:
        templates = BANK[bank]
        pun_ok = not any(self.puns)
        fresh: list[str] = []
        fallback: list[str] = []
        for t in templates:
            text = self._fill(t, values)
            if not text:
                continue
            fallback.append(text)
            if text not in self.recent and (pun_ok or not t.pun):
                fresh.append(text)
        if fresh:
            return self.rng.choice(fresh)
        # every template was used lately: the one shown longest ago
        for old in self.recent:
            if old in fallback:
                return old
        return fallback[0] if fallback else ""

    def _fill(self, t: Template, values: dict[str, int]) -> str:
        text = clean(t.text.format(**values))
        if check(text):
            self.rejected += 1
            return ""
        return text

    def shown(self, text: str) -> None:
        self.recent.append(text)
        self.puns.append(any(t.pun and _same(t, text) for t in _all()))

    def command(self, req: InterventionRequest, text: str) -> AnimationCommand:
        cue = CUES.get(req.kind, CUES["celebrate"])
        ident = "" if req.kind == "celebrate" else req.intervention_id
        return AnimationCommand(
            name=cue.name,
            duration_s=cue.duration_s,
            text=text,
            glow=cue.glow,
            melt=cue.melt,
            sound=cue.sound,
            intervention_id=ident,
        )


def _all() -> list[Template]:
    return [t for bank in BANK.values() for t in bank]


def _same(t: Template, text: str) -> bool:
    """Does ``text`` come from template ``t`` (whatever the values)?"""
    pattern = re.escape(t.text)
    for name in ("minutes", "coins", "total", "days"):
        pattern = pattern.replace(re.escape("{" + name + "}"), r"\d+")
    return re.fullmatch(pattern, text) is not None
