"""Gamification: decides interventions and rewards (positive reinforcement only).

``core`` is the pure decision core (feed events with ``now``, read decisions out), ``module``
the bus shell with its store, ``config`` the ``[gamification]`` section, ``localtime`` quiet
hours and local dates.  The rules and their numbers: docs/COMPANION.md.
"""

from modules.gamification.config import GamificationConfig
from modules.gamification.core import Companion
from modules.gamification.module import Gamification, MemoryStore, Store

__all__ = ["Companion", "Gamification", "GamificationConfig", "MemoryStore", "Store"]
