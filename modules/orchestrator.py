"""Orchestrator: starts modules in order, health checks, restarts, systemd notify.

Placeholder: registers with the bus and says so; the real module lands with its issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import ModuleId
from modules.base import Module


@dataclass(frozen=True)
class OrchestratorConfig:
    pass


class Orchestrator(Module):
    name = ModuleId.ORCHESTRATOR
    placeholder = True

    def __init__(self, config: OrchestratorConfig | None = None) -> None:
        super().__init__()
        self.config = config or OrchestratorConfig()
