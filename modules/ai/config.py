"""``[ai]``: the message writer and the optional LAN LLM (docs/COMPANION.md §7–8)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AIConfig:
    no_repeat: int = 5
    """A text shown among the last this many messages is not shown again (while others exist)."""
    pun_every: int = 6
    """At most one skeleton pun in this many messages."""
    llm_url: str = ""
    """OpenAI-compatible base URL on the LAN (``http://192.168.1.20:8080/v1``); "" = off."""
    llm_model: str = ""
    """``model`` sent to the endpoint ("" = leave it out: servers with one model)."""
    llm_timeout_s: float = 2.0
    """The whole request (connect, send, reply) must finish in this; else templates."""
    llm_max_tokens: int = 80
    breaker_failures: int = 3
    """Consecutive failures (timeout, refused, garbage) after which the LLM is not asked..."""
    breaker_reset_s: float = 300.0
    """...for this long; then one trial request decides."""

    def __post_init__(self) -> None:
        if self.no_repeat < 0 or self.pun_every < 1:
            raise ValueError("no_repeat must be >= 0 and pun_every >= 1")
        if not self.llm_timeout_s > 0 or self.breaker_failures < 1 or self.breaker_reset_s < 0:
            raise ValueError("llm_timeout_s > 0, breaker_failures >= 1, breaker_reset_s >= 0")
        if self.llm_url and not self.llm_url.startswith(("http://", "https://")):
            raise ValueError(f"llm_url must start with http:// or https://, got {self.llm_url!r}")
