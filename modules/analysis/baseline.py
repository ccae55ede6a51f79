"""Per-person typing baseline (docs/ANALYSIS.md §3.1): this user's own typical typing speed.

Pure: windows' features in, a :class:`Baseline` out; no bus, no clock, no I/O.  The engine
persists :meth:`Baseline.to_json` in Storage's state (``analysis.baseline``) and restores it with
:meth:`Baseline.from_json`.

Model: every *typing window* (at least ``min_intervals`` typing intervals) adds its median
inter-key interval (IKI) and keys/min to two log-spaced histograms whose old weight decays by
half every ``half_life_windows`` typing windows (about a working day of typing).  A new user
starts from a prior: ``prior_windows`` windows' worth of weight at the population typical
(``population_iki_ms``, ``population_kpm``), so the first few minutes of typing move it quickly
and a day of typing dominates it.  The baseline's IKI is the median of the histogram; the rules
judge speed as ``scale = baseline IKI / reference IKI`` (clamped), so a 90 ms and a 250 ms typist
in the same kind of work get the same state.

The baseline also keeps this person's *flow density*: the typing duty (share of time in bursts)
over the last minutes of windows reported as FLOW, in a histogram of its own with its own prior
(``flow_duty``, ``duty_prior_windows``).  Hyperfocus is judged as density above it (SPEC §4:
"flow that is denser"), so it must describe ordinary flow: the engine never teaches the baseline
anything while the state is HYPERFOCUS (speed included), or a long session would become the
person's normal and stop being seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

REFERENCE_IKI_MS = 150.0
"""The typist the rule thresholds are written for (docs/ANALYSIS.md §3)."""
LO_MS, HI_MS, BINS = 40.0, 1000.0, 64
KPM_LO, KPM_HI = 5.0, 2000.0
DUTY_BINS = 50
"""Linear bins of the flow-duty histogram over 0-1."""
FORMAT = 3
READABLE = (1, 2, 3)
"""Stored formats :meth:`Baseline.restore` takes (1 has no flow-duty histogram, 2 no flow
rhythm)."""


def _bin(x: float, lo: float, hi: float) -> int:
    x = min(max(x, lo), hi)
    return min(int(math.log(x / lo) / math.log(hi / lo) * BINS), BINS - 1)


def _duty_bin(x: float) -> int:
    return min(max(int(x * DUTY_BINS), 0), DUTY_BINS - 1)


def _value(i: float, lo: float, hi: float) -> float:
    return float(lo * math.pow(hi / lo, i / BINS))


def _median(hist: list[float], lo: float, hi: float) -> float:
    total = math.fsum(hist)
    acc = 0.0
    for i, w in enumerate(hist):
        if acc + w >= total / 2 and w > 0:
            return _value(i + (total / 2 - acc) / w, lo, hi)
        acc += w
    return _value(BINS / 2, lo, hi)


@dataclass
class Baseline:
    """Rolling typical IKI and keys/min of one person's typing windows."""

    population_iki_ms: float = 160.0
    population_kpm: float = 220.0
    prior_windows: float = 6.0
    half_life_windows: float = 2000.0
    min_intervals: int = 20
    min_scale: float = 0.5
    max_scale: float = 2.0
    flow_duty_prior: float = 0.7
    """Population typical typing duty over minutes of flow."""
    duty_prior_windows: float = 6.0
    """Weight of that prior, in flow windows (a minute of flow halves its weight)."""
    rhythm_min_windows: float = 18.0
    """Flow windows the flow rhythm needs before it is used (3 minutes of confirmed flow)."""
    windows: float = 0.0
    """Typing windows seen (decayed weight, without the prior)."""
    flow_windows: float = 0.0
    """Flow windows seen for the flow density (decayed weight, without the prior)."""
    rhythm_windows: float = 0.0
    """Flow windows seen for the flow rhythm (decayed weight)."""
    rhythm_iki_sum: float = 0.0
    rhythm_cv_sum: float = 0.0
    """Decayed sums of their core IKI (ms) and core CV."""
    iki_hist: list[float] = field(default_factory=list)
    kpm_hist: list[float] = field(default_factory=list)
    duty_hist: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.iki_hist or len(self.iki_hist) != BINS:
            self.iki_hist = [0.0] * BINS
        if not self.kpm_hist or len(self.kpm_hist) != BINS:
            self.kpm_hist = [0.0] * BINS
        if not self.duty_hist or len(self.duty_hist) != DUTY_BINS:
            self.duty_hist = [0.0] * DUTY_BINS

    def _prior(self, hist: list[float], value: float, lo: float, hi: float) -> list[float]:
        out = list(hist)
        out[_bin(value, lo, hi)] += self.prior_windows
        return out

    @property
    def iki_ms(self) -> float:
        """This person's typical typing IKI (median of typing windows' medians), ms."""
        return _median(
            self._prior(self.iki_hist, self.population_iki_ms, LO_MS, HI_MS), LO_MS, HI_MS
        )

    @property
    def kpm(self) -> float:
        """This person's typical keys/min in typing windows."""
        return _median(
            self._prior(self.kpm_hist, self.population_kpm, KPM_LO, KPM_HI), KPM_LO, KPM_HI
        )

    @property
    def flow_duty(self) -> float:
        """This person's typical typing duty over minutes of flow: the mean of the prior (weighing
        ``duty_prior_windows``) and the flow windows learnt (bin middles)."""
        return self.flow_duty_with(())

    def flow_duty_with(self, provisional: Iterable[float]) -> float:
        """:attr:`flow_duty` as if ``provisional`` duties were observed as well."""
        weight = self.duty_prior_windows + math.fsum(self.duty_hist)
        total = self.duty_prior_windows * self.flow_duty_prior + math.fsum(
            w * (i + 0.5) / DUTY_BINS for i, w in enumerate(self.duty_hist)
        )
        for d in provisional:
            if math.isfinite(d) and 0.0 <= d <= 1.0:
                weight += 1.0
                total += d
        return total / weight if weight > 0 else self.flow_duty_prior

    @property
    def flow_rhythm(self) -> tuple[float, float] | None:
        """This person's flow rhythm: the mean core IKI (ms) and core CV of their flow windows,
        or None until ``rhythm_min_windows`` have been seen (there is no population prior: a
        rhythm is personal)."""
        if self.rhythm_windows < self.rhythm_min_windows or self.rhythm_windows <= 0:
            return None
        return (
            self.rhythm_iki_sum / self.rhythm_windows,
            self.rhythm_cv_sum / self.rhythm_windows,
        )

    @property
    def scale(self) -> float:
        """Baseline IKI / reference IKI, clamped: > 1 for a slower typist than the reference."""
        return min(max(self.iki_ms / REFERENCE_IKI_MS, self.min_scale), self.max_scale)

    def observe(self, iki_median_ms: float, iki_n: float, keys_per_min: float) -> bool:
        """Add one window; only typing windows count.  True if it was added."""
        if iki_n < self.min_intervals or not (
            math.isfinite(iki_median_ms) and iki_median_ms > 0 and math.isfinite(keys_per_min)
        ):
            return False
        keep = 0.5 ** (1.0 / self.half_life_windows)
        for hist in (self.iki_hist, self.kpm_hist):
            for i, w in enumerate(hist):
                hist[i] = w * keep
        self.iki_hist[_bin(iki_median_ms, LO_MS, HI_MS)] += 1.0
        self.kpm_hist[_bin(keys_per_min, KPM_LO, KPM_HI)] += 1.0
        self.windows = self.windows * keep + 1.0
        return True

    def observe_flow(self, typing_duty: float) -> bool:
        """Add the typing duty of a window reported as FLOW (over the last minutes)."""
        if not (math.isfinite(typing_duty) and 0.0 <= typing_duty <= 1.0):
            return False
        keep = 0.5 ** (1.0 / self.half_life_windows)
        for i, w in enumerate(self.duty_hist):
            self.duty_hist[i] = w * keep
        self.duty_hist[_duty_bin(typing_duty)] += 1.0
        self.flow_windows = self.flow_windows * keep + 1.0
        return True

    def observe_rhythm(self, core_iki_ms: float, core_cv: float, brisk: float = math.inf) -> bool:
        """Add the core IKI and CV of a window reported as FLOW (the span its duty came from).
        Once the rhythm is known, a span steadier than it and quicker and steadier by more than
        ``brisk`` in all ((1 - IKI / theirs) + (1 - CV / theirs)) is not taken: a hyperfocus
        session read as FLOW before the rhythm was known must not become it."""
        if not (
            math.isfinite(core_iki_ms)
            and core_iki_ms > 0
            and math.isfinite(core_cv)
            and core_cv > 0
        ):
            return False
        rhythm = self.flow_rhythm
        if (
            rhythm is not None
            and core_cv < rhythm[1]
            and (1.0 - core_iki_ms / rhythm[0]) + (1.0 - core_cv / rhythm[1]) > brisk
        ):
            return False
        keep = 0.5 ** (1.0 / self.half_life_windows)
        self.rhythm_windows = self.rhythm_windows * keep + 1.0
        self.rhythm_iki_sum = self.rhythm_iki_sum * keep + core_iki_ms
        self.rhythm_cv_sum = self.rhythm_cv_sum * keep + core_cv
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "windows": self.windows,
            "iki_ms": round(self.iki_ms, 2),
            "kpm": round(self.kpm, 2),
            "iki_hist": list(self.iki_hist),
            "kpm_hist": list(self.kpm_hist),
            "flow_windows": self.flow_windows,
            "flow_duty": round(self.flow_duty, 4),
            "duty_hist": list(self.duty_hist),
            "rhythm_windows": self.rhythm_windows,
            "rhythm_iki_sum": self.rhythm_iki_sum,
            "rhythm_cv_sum": self.rhythm_cv_sum,
        }

    def restore(self, data: object) -> bool:
        """Take the learnt part of a stored :meth:`to_json`; False (and unchanged) if unusable."""
        if not isinstance(data, dict) or data.get("format") not in READABLE:
            return False
        hists = []
        keys = (
            ("iki_hist", "kpm_hist")
            if data["format"] == 1
            else ("iki_hist", "kpm_hist", "duty_hist")
        )
        for key in keys:
            h = data.get(key)
            if not (
                isinstance(h, list)
                and len(h) == (DUTY_BINS if key == "duty_hist" else BINS)
                and all(
                    isinstance(w, (int, float))
                    and not isinstance(w, bool)
                    and math.isfinite(w)
                    and w >= 0
                    for w in h
                )
            ):
                return False
            hists.append([float(w) for w in h])
        counts = []
        count_keys: tuple[str, ...] = ("windows",)
        if data["format"] >= 2:
            count_keys += ("flow_windows",)
        if data["format"] >= 3:
            count_keys += ("rhythm_windows", "rhythm_iki_sum", "rhythm_cv_sum")
        for key in count_keys:
            n = data.get(key)
            if (
                isinstance(n, bool)
                or not isinstance(n, (int, float))
                or not math.isfinite(n)
                or n < 0
            ):
                return False
            counts.append(float(n))
        self.iki_hist, self.kpm_hist = hists[0], hists[1]
        self.windows = counts[0]
        if len(hists) == 3:
            self.duty_hist, self.flow_windows = hists[2], counts[1]
        if len(counts) == 5:
            self.rhythm_windows, self.rhythm_iki_sum, self.rhythm_cv_sum = counts[2:]
        return True
