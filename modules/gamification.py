"""Gamification: decides interventions and rewards (positive reinforcement only).

Placeholder: registers with the bus and says so; the real module lands with its issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import ModuleId
from modules.base import Module


@dataclass(frozen=True)
class GamificationConfig:
    pass


class Gamification(Module):
    name = ModuleId.GAMIFICATION
    placeholder = True

    def __init__(self, config: GamificationConfig | None = None) -> None:
        super().__init__()
        self.config = config or GamificationConfig()
