"""AI on the bus: InterventionRequest → AnimationCommand (message ≤ 150 chars and cues).

Every request gets an answer: the LLM's text when one is configured, reachable within its
timeout, its breaker closed and its reply passes the tone filter and the repeat check;
otherwise a template.  RewardEvents are noted so celebrations can name the coins.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from bus import Envelope, ModuleId, ModuleStatus, Priority
from bus.messages import InterventionRequest, RewardEvent
from modules.ai.config import AIConfig
from modules.ai.llm import CircuitBreaker, Endpoint, LLMError, complete
from modules.ai.writer import Writer
from modules.base import Module

log = logging.getLogger(__name__)


class AI(Module):
    name = ModuleId.AI

    def __init__(
        self,
        config: AIConfig | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.config = cfg = config or AIConfig()
        self.writer = Writer(cfg.no_repeat, cfg.pun_every, rng)
        self.endpoint: Endpoint | None = None
        if cfg.llm_url:
            self.endpoint = Endpoint(
                cfg.llm_url, cfg.llm_model, cfg.llm_timeout_s, cfg.llm_max_tokens
            )
        self.breaker = CircuitBreaker(cfg.breaker_failures, cfg.breaker_reset_s, clock)
        self.counts = {"template": 0, "llm": 0, "llm_failed": 0, "llm_refused": 0}
        self.last_error = ""

    async def on_start(self) -> None:
        self.subscribe(
            self._on_request, types=InterventionRequest, timeout=self.config.llm_timeout_s + 5.0
        )
        self.subscribe(self._on_reward, types=RewardEvent, maxsize=64)
        where = f"LLM at {self.config.llm_url}" if self.endpoint else "templates (no LLM)"
        self.set_status(ModuleStatus.HEALTHY, f"writing with {where}")

    def health(self) -> tuple[ModuleStatus, str]:
        if self.endpoint is None or self.status is not ModuleStatus.HEALTHY:
            return self.status, self.detail
        c = self.counts
        detail = (
            f"LLM {self.breaker.state}: {c['llm']} replies used, {c['llm_failed']} failed, "
            f"{c['llm_refused']} refused by the filter; {c['template']} templates"
        )
        if self.last_error:
            detail += f"; last error: {self.last_error}"
        return self.status, detail

    def _on_reward(self, env: Envelope) -> None:
        assert isinstance(env.payload, RewardEvent)
        self.writer.note_reward(env.payload)

    async def _on_request(self, env: Envelope) -> None:
        req = env.payload
        assert isinstance(req, InterventionRequest)
        text = await self.write(req)
        self.publish(self.writer.command(req, text), priority=Priority.HIGH, correlation_id=env.id)

    async def write(self, req: InterventionRequest) -> str:
        """The message for ``req`` (LLM if usable, else a template), recorded as shown."""
        text = ""
        prompt = self.writer.prompt(req)
        if self.endpoint is not None and prompt is not None and self.breaker.allow():
            try:
                reply = await complete(self.endpoint, *prompt)
            except LLMError as exc:
                self.breaker.failure()
                self.counts["llm_failed"] += 1
                self.last_error = str(exc)
                log.info("ai: LLM failed (%s); using a template", exc)
            else:
                self.breaker.success()
                text = self.writer.accept(reply)
                self.counts["llm" if text else "llm_refused"] += 1
        if not text:
            bank, values = self.writer.values(req)
            text = self.writer.from_template(bank, values)
            self.counts["template"] += 1
        self.writer.shown(text)
        return text
