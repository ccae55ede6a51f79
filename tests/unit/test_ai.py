"""AI: the template bank, the tone filter, no repeats, the variables and the cues."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from bus.messages import FocusState, InterventionRequest, RewardEvent
from modules.ai.filter import BANNED, MAX_CHARS, check, clean
from modules.ai.templates import BANK, CUES, MAX_VALUES
from modules.ai.writer import Writer

ADVERSARIAL = [
    "Just focus, it's simple.",
    "JUST do it!",
    "You should have started earlier.",
    "You should've taken a break.",
    "Obviously you got distracted again?",
    "Simply close the tabs.",
    "Stop being lazy and get back to work.",
    "You wasted 20 minutes.",
    "That was a failure of focus.",
    "Your ADHD symptoms are showing.",
    "As a patient with an attention deficit, consider medication.",
    "Come on, try harder.",
    "Clearly this is easy.",
    "Seriously? Procrastinating again?",
    "You need to stop.",
    "It's <b>break</b> time!",
    "Read https://example.com/focus for tips",
    "line one\x07bell",
    "x" * 151,
    "",
    "   ",
    "Don't feel guilty, you're not useless.",
    "you shouldn\u2019t have stopped",
]


def fill(text: str, **values: int) -> str:
    return text.format(**{**{"minutes": 1, "coins": 1, "total": 1, "days": 1}, **values})


@pytest.mark.parametrize("bank", sorted(BANK))
def test_every_template_passes_the_filter_and_fits_with_the_longest_values(bank: str) -> None:
    for t in BANK[bank]:
        for values in (MAX_VALUES, {"minutes": 1, "coins": 1, "total": 1, "days": 1}):
            text = clean(fill(t.text, **values))
            assert check(text) == "", (bank, text, check(text))
            assert len(text) <= MAX_CHARS
            assert "{" not in text and "}" not in text


def test_each_bank_has_enough_texts_for_no_repeats_and_few_puns() -> None:
    for bank, templates in BANK.items():
        assert len(templates) >= 5, bank
        assert sum(t.pun for t in templates) <= 1, bank
        assert len({t.text for t in templates}) == len(templates)
    for kind in ("nudge", "break", "recovery"):
        assert len(BANK[kind]) >= 7


@pytest.mark.parametrize("reply", ADVERSARIAL)
def test_the_filter_refuses_patronising_shaming_clinical_and_malformed_text(reply: str) -> None:
    assert check(clean(reply)) != ""


def test_filter_matches_whole_words_only_and_every_listed_word() -> None:
    assert check("Justice for skeletons, adjusting the glow.") == ""
    assert check("A badge of honour, Simplicity.") == ""
    for word in BANNED:
        assert check(f"Hey {word} there") != "", word
        assert check(f"Hey {word.upper()} there") != "", word


def test_clean_makes_one_line_without_wrapping_quotes() -> None:
    assert clean('  "Welcome back,\n  friend."  ') == "Welcome back, friend."
    assert clean("\u201cNice.\u201d") == "Nice."


def request(kind: str, minutes: float = 12.0, reason: str = "") -> InterventionRequest:
    return InterventionRequest(f"{kind}-1", kind, FocusState.DISTRACTED, minutes * 60, reason)


def test_no_repeat_of_the_last_n_messages() -> None:
    w = Writer(no_repeat=5, rng=random.Random(7))
    shown: list[str] = []
    for _ in range(60):
        bank, values = w.values(request("nudge"))
        text = w.from_template(bank, values)
        w.shown(text)
        shown.append(text)
    for i, text in enumerate(shown):
        assert text not in shown[max(i - 5, 0) : i], (i, text)


def test_no_repeat_falls_back_to_the_oldest_when_the_bank_is_exhausted() -> None:
    w = Writer(no_repeat=50, rng=random.Random(1))
    seen = []
    for _ in range(len(BANK["break"]) + 2):
        bank, values = w.values(request("break", 95))
        text = w.from_template(bank, values)
        w.shown(text)
        seen.append(text)
    n = len(BANK["break"])
    assert len(set(seen[:n])) == n
    assert seen[n] == seen[0]


def test_puns_are_rare() -> None:
    w = Writer(no_repeat=3, pun_every=6, rng=random.Random(3))
    puns = []
    pun_texts = {fill(t.text, minutes=12) for b in BANK.values() for t in b if t.pun}
    for i in range(300):
        kind = ("nudge", "break", "recovery")[i % 3]
        bank, values = w.values(request(kind))
        text = w.from_template(bank, values)
        w.shown(text)
        puns.append(text in pun_texts)
    idx = [i for i, p in enumerate(puns) if p]
    assert idx, "puns never appear"
    assert all(b - a >= 6 for a, b in itertools.pairwise(idx))


def test_variables_are_filled_in() -> None:
    w = Writer(rng=random.Random(0))
    for _ in range(10):
        bank, values = w.values(request("nudge", 23.4))
        assert values["minutes"] == 23
        text = w.from_template(bank, values)
        w.shown(text)
        assert "{" not in text
        if re.search(r"\d", text):
            assert "23" in text
    w.note_reward(RewardEvent("milestone", 10, 140, "60 min of focus today"))
    bank, values = w.values(request("celebrate", 0, "milestone 60 min"))
    assert bank == "milestone" and values["minutes"] == 60 and values["coins"] == 10
    text = w.from_template(bank, values)
    assert "60" in text
    w.note_reward(RewardEvent("streak", 15, 155, "3 day streak"))
    w.note_reward(RewardEvent("focus", 5, 160, "15 min of focus in one run"))
    bank, values = w.values(request("celebrate", 0, "streak 3 days"))
    # the streak's own coins, though a focus reward came after it; the newest total
    assert bank == "streak" and values["days"] == 3
    assert values["coins"] == 15 and values["total"] == 160
    assert "3" in w.from_template(bank, values)


def test_cues_and_ids() -> None:
    w = Writer(rng=random.Random(0))
    for kind in ("nudge", "break", "recovery"):
        cmd = w.command(request(kind), "hello")
        assert cmd.name == kind and cmd.intervention_id == f"{kind}-1"
        assert cmd.text == "hello" and cmd.duration_s == CUES[kind].duration_s
    cel = w.command(request("celebrate", 0, "milestone 30 min"), "yay")
    assert cel.name == "celebrate" and cel.intervention_id == ""
    assert CUES["nudge"].sound is None  # the gentlest thing makes no sound


def test_the_prompt_carries_only_the_state_and_a_duration() -> None:
    w = Writer()
    req = InterventionRequest("n-1", "nudge", FocusState.DISTRACTED, 754.0, "host laptop-7 secret")
    prompt = w.prompt(req)
    assert prompt is not None
    system, user = prompt
    assert "laptop-7" not in system + user and "secret" not in user
    assert re.fullmatch(r"State: DISTRACTED\. [A-Za-z ,()]+ 13 minutes\.[A-Za-z .]+", user)
    assert w.prompt(request("celebrate", 0, "milestone 30 min")) is None
