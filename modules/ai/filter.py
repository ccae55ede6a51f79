"""The tone filter every message passes, templates and LLM replies alike (docs/COMPANION.md §7).

:func:`clean` normalises a candidate (one line, collapsed spaces, no wrapping quotes) and
:func:`check` says why it may not be shown ('' = it may): too long, empty, not plain text, or a
patronising, shaming or clinical word.  Words are matched whole and case-insensitively, with
common inflections listed explicitly rather than guessed.
"""

from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 150

PATRONISING = (
    "just",
    "simply",
    "obviously",
    "clearly",
    "of course",
    "easy",
    "easily",
    "merely",
    "only need",
    "all you have to",
    "you should",
    "should have",
    "should've",
    "shouldn't have",
    "you need to",
    "you must",
    "have to",
    "come on",
    "seriously",
    "actually",
    "again?",
    "why didn't you",
    "why can't you",
    "try harder",
    "no excuses",
    "remember to",
    "as i said",
)
SHAMING = (
    "lazy",
    "laziness",
    "fail",
    "failed",
    "failing",
    "failure",
    "waste",
    "wasted",
    "wasting",
    "bad",
    "shame",
    "ashamed",
    "guilty",
    "stupid",
    "dumb",
    "pathetic",
    "useless",
    "hopeless",
    "unproductive",
    "procrastinate",
    "procrastinating",
    "procrastination",
    "slacking",
    "slacker",
    "disappointing",
    "disappointed",
    "careless",
    "undisciplined",
)
CLINICAL = (
    "adhd",
    "disorder",
    "deficit",
    "symptom",
    "symptoms",
    "diagnosis",
    "diagnosed",
    "patient",
    "medication",
    "meds",
    "dysfunction",
    "impulsive",
    "impulsivity",
    "compliance",
    "non-compliant",
    "therapy",
)
BANNED = PATRONISING + SHAMING + CLINICAL


def _pattern(phrase: str) -> str:
    body = r"\s+".join(re.escape(w) for w in phrase.split())
    body = body.replace("'", "['\u2019]")
    tail = r"(?!\w)" if phrase[-1].isalnum() else ""
    return rf"(?<!\w){body}{tail}"


_BANNED_RE = re.compile("|".join(_pattern(p) for p in BANNED), re.IGNORECASE)
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def clean(text: str) -> str:
    """One line with single spaces, without wrapping quotes, NFC."""
    text = unicodedata.normalize("NFC", text)
    text = " ".join(text.split())
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def check(text: str) -> str:
    """Why ``text`` may not be shown ('' = it may); ``text`` as :func:`clean` left it."""
    if not text:
        return "empty"
    if len(text) > MAX_CHARS:
        return f"{len(text)} characters (at most {MAX_CHARS})"
    if any(unicodedata.category(c)[0] == "C" for c in text):
        return "control characters"
    if "http://" in text.lower() or "https://" in text.lower() or "www." in text.lower():
        return "a link"
    if any(c in text for c in "<>{}[]|\\#*_"):
        return "markup"
    hit = _BANNED_RE.search(text)
    if hit:
        return f"the word {hit.group(0)!r}"
    return ""
