"""AnalysisEngine: features per window and the focus-state classifier (docs/ANALYSIS.md).

Theory of operation
-------------------
Storage publishes an :class:`EventBatch` (30 s of events, one every 10 s).  For each batch the
pure :class:`WindowAnalyzer` adds the events to the host's recent history, computes the features
of the window, of the last minute and of the last few minutes (``features``), the silence since
the last deliberate input and the person's typing scale and flow (``baseline``), classifies the
window with that context (``rules.classify``) and feeds it to the evidence/time-in-state
tracker.  The engine publishes one :class:`AnalysisComplete` per window and a
:class:`StateChange` (priority High) when the tracker changes state.  All durations are event
time (``window_end``); nothing here reads a clock.

Windows are analysed per host (``EventBatch.host_id``): each host has its own analyzer, tracker,
history and baseline (at most ``MAX_HOSTS``), and its AnalysisComplete/StateChange carry its
``host_id``.  The baselines are read from and saved to the engine's store (Storage's state,
``analysis.baseline``) at start, every ``BASELINE_SAVE_EVERY`` windows and at stop.  A window
with non-finite bounds is refused and the module reports Degraded until a good window arrives.
:meth:`AnalysisEngine.process` is the same path without the bus (``skelly replay``).

Layout: ``features`` (pure features of a span), ``baseline`` (the per-person typing baseline,
pure), ``rules`` (config, classification and the stability/time-in-state tracker, pure),
``engine`` (:class:`WindowAnalyzer` for one host and the bus module :class:`AnalysisEngine`).
"""

from modules.analysis.baseline import Baseline
from modules.analysis.engine import AnalysisEngine, WindowAnalyzer, WindowResult
from modules.analysis.rules import AnalysisConfig

__all__ = [
    "AnalysisConfig",
    "AnalysisEngine",
    "Baseline",
    "WindowAnalyzer",
    "WindowResult",
]
