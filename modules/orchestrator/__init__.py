"""Orchestrator: starts modules in dependency order, health checks, restarts, systemd notify,
the control socket for ``skelly status`` (docs/STATUS.md)."""

from __future__ import annotations

from modules.orchestrator.control import ControlSocketError, control_socket_path
from modules.orchestrator.module import ModuleStartFault, Orchestrator, OrchestratorConfig
from modules.orchestrator.policy import RestartBook, backoff_delay, start_order

__all__ = [
    "ControlSocketError",
    "ModuleStartFault",
    "Orchestrator",
    "OrchestratorConfig",
    "RestartBook",
    "backoff_delay",
    "control_socket_path",
    "start_order",
]
