"""The optional LAN LLM against a fake OpenAI-compatible server on real TCP (127.0.0.1).

The server answers each connection with whatever the test scripted: a good completion, garbage,
an error status, a reply that never comes, a slow drip, a patronising or overlong text.  The AI
must use a good reply, fall back to a template on everything else, open its circuit breaker
after three failures in a row and try again (one request) after the reset time.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Coroutine
from typing import Any

from bus import Bus, Envelope, ModuleId
from bus.messages import AnimationCommand, FocusState, InterventionRequest
from modules.ai import AI, AIConfig
from modules.ai.filter import check
from modules.ai.llm import CircuitBreaker, Endpoint, LLMError, LLMTimeout, complete
from modules.ai.templates import BANK, MAX_VALUES
from tests.slowness import allow

Run = Callable[[Coroutine[Any, Any, Any]], Any]
GOOD = "Hey, twelve minutes of hopping around. Want to pick one small thing together?"


def completion(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()


def http(body: bytes, status: str = "200 OK", chunked: bool = False) -> bytes:
    if chunked:
        mid = len(body) // 2
        parts = b"".join(
            f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (body[:mid], body[mid:]) if p
        )
        return (
            (
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
            + parts
            + b"0\r\n\r\n"
        )
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class FakeLLM:
    """A TCP server; ``script`` is popped per connection: bytes to send, "stall" or "drip"."""

    def __init__(self) -> None:
        self.script: list[bytes | str] = []
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.stalled = asyncio.Event()

    async def __aenter__(self) -> FakeLLM:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            self.paths.append(lines[0])
            length = next(
                int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length")
            )
            self.requests.append(json.loads(await reader.readexactly(length)))
            action = self.script.pop(0) if self.script else http(completion(GOOD))
            if action == "stall":
                self.stalled.set()
                await asyncio.sleep(3600)
            elif action == "drip":
                for b in http(completion(GOOD)):
                    writer.write(bytes([b]))
                    await writer.drain()
                    await asyncio.sleep(0.05)
            else:
                assert isinstance(action, bytes)
                writer.write(action)
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def endpoint(url: str, timeout: float = 1.0) -> Endpoint:
    return Endpoint(url, "tiny", timeout)


def req(kind: str = "nudge", ident: str = "nudge-1") -> InterventionRequest:
    return InterventionRequest(ident, kind, FocusState.DISTRACTED, 12 * 60.0, "distracted")


def templates(kind: str) -> set[str]:
    out = set()
    for t in BANK[kind]:
        for minutes in (12, MAX_VALUES["minutes"]):
            out.add(t.text.format(minutes=minutes, coins=0, total=0, days=1))
    return out


def test_a_good_reply_is_used_and_the_request_is_openai_shaped(run: Run) -> None:
    async def main() -> None:
        async with FakeLLM() as fake:
            fake.script = [http(completion(f'  "{GOOD}"\n'))]
            ai = AI(AIConfig(llm_url=fake.url, llm_model="tiny"))
            text = await ai.write(req())
            assert text == GOOD
            assert fake.paths == ["POST /v1/chat/completions HTTP/1.1"]
            body = fake.requests[0]
            assert body["model"] == "tiny" and body["stream"] is False
            assert [m["role"] for m in body["messages"]] == ["system", "user"]
            assert body["messages"][1]["content"].startswith("State: DISTRACTED. ")
            assert "12 minutes" in body["messages"][1]["content"]
            # chunked replies are understood too
            fake.script = [http(completion("Welcome back, nice steering."), chunked=True)]
            assert await ai.write(req("recovery", "recovery-2")) == "Welcome back, nice steering."
            assert ai.counts["llm"] == 2 and ai.counts["template"] == 0

    run(main())


def test_garbage_errors_and_refused_texts_fall_back_to_templates(run: Run) -> None:
    async def main() -> None:
        async with FakeLLM() as fake:
            cases: list[bytes] = [
                b"complete nonsense\r\n\r\n",
                b"\x00\xff\xfe garbage",
                http(b"<html>oops</html>"),
                http(b'{"choices": []}'),
                http(b'{"choices": [{"message": {"content": 42}}]}'),
                http(completion(GOOD), status="500 Internal Server Error"),
                http(completion(GOOD))[:-20],  # truncated body, then the connection closes
                http(completion("Just close the tabs, obviously.")),
                http(completion("You should have taken a break an hour ago.")),
                http(completion("Your ADHD is acting up; stay compliant with your meds.")),
                http(completion("word " * 40)),
                http(completion("Look: https://example.com")),
            ]
            fake.script = list(cases)
            # a breaker that never opens, so every case reaches the server
            ai = AI(AIConfig(llm_url=fake.url, breaker_failures=100))
            bank = templates("nudge")
            for _ in cases:
                text = await ai.write(req())
                assert text in bank, text
                assert check(text) == ""
            assert len(fake.requests) == len(cases)
            assert ai.counts["llm"] == 0 and ai.counts["template"] == len(cases)
            assert ai.counts["llm_refused"] == 5 and ai.counts["llm_failed"] == 7

    run(main())


def test_a_stalled_or_dripping_server_costs_at_most_the_timeout(run: Run) -> None:
    async def main() -> None:
        async with FakeLLM() as fake:
            fake.script = ["stall", "drip"]
            ai = AI(AIConfig(llm_url=fake.url, llm_timeout_s=0.3, breaker_failures=100))
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            text = await ai.write(req())
            waited = loop.time() - t0
            assert fake.stalled.is_set() and text in templates("nudge")
            assert 0.3 <= waited <= allow(2.0)  # the timeout, not the server, decided
            assert "no reply within 0.3 s" in ai.last_error
            text = await ai.write(req())  # ~100 bytes at 20 bytes/s: far past 0.3 s
            assert text in templates("nudge") and ai.counts["llm_failed"] == 2
            with_timeout = endpoint(fake.url, 0.3)
            fake.script = ["stall"]
            try:
                await complete(with_timeout, "s", "u")
            except LLMTimeout as exc:
                assert isinstance(exc, TimeoutError)
            else:
                raise AssertionError("a stalled server must time out")

    run(main())


def test_connection_refused_is_a_failure_not_a_crash(run: Run) -> None:
    async def main() -> None:
        async with FakeLLM() as fake:
            url = fake.url
        # the server is gone: nothing listens on that port any more
        try:
            await complete(endpoint(url), "s", "u")
        except LLMError as exc:
            assert "cannot reach" in str(exc)
        else:
            raise AssertionError("expected LLMError")
        ai = AI(AIConfig(llm_url=url))
        assert await ai.write(req()) in templates("nudge")

    run(main())


def test_circuit_breaker_opens_after_three_failures_and_retries_after_the_reset(
    run: Run,
) -> None:
    async def main() -> None:
        now = [1000.0]
        async with FakeLLM() as fake:
            bad = http(b"garbage", status="502 Bad Gateway")
            fake.script = [bad, bad, bad]
            ai = AI(
                AIConfig(llm_url=fake.url, breaker_failures=3, breaker_reset_s=300.0),
                clock=lambda: now[0],
            )
            for _ in range(6):
                await ai.write(req())
            assert len(fake.requests) == 3  # the last three never reached the server
            assert ai.breaker.state == "open"
            now[0] += 299.0
            await ai.write(req())
            assert len(fake.requests) == 3
            now[0] += 1.0  # half-open: one trial, which fails: open again for 300 s
            fake.script = [bad]
            await ai.write(req())
            await ai.write(req())
            assert len(fake.requests) == 4 and ai.breaker.state == "open"
            now[0] += 300.0  # the next trial succeeds: closed
            assert await ai.write(req()) == GOOD
            assert ai.breaker.state == "closed"
            # the same reply again is a repeat of a recent message: a template instead
            assert await ai.write(req("break", "break-9")) in templates("break")
            assert len(fake.requests) == 6 and ai.counts["llm_refused"] == 1

    run(main())


def test_breaker_counts_consecutive_failures_only() -> None:
    t = [0.0]
    b = CircuitBreaker(3, 10.0, lambda: t[0])
    for _ in range(5):
        b.failure()
        b.failure()
        b.success()
    assert b.state == "closed" and b.allow()


def test_the_module_answers_every_request_on_the_bus(run: Run) -> None:
    async def main() -> None:
        async with FakeLLM() as fake:
            fake.script = ["stall"]
            bus = Bus()
            ai = AI(AIConfig(llm_url=fake.url, llm_timeout_s=0.3), rng=random.Random(2))
            await ai.start(bus)
            got: list[Envelope] = []
            three = asyncio.Event()

            def take(env: Envelope) -> None:
                got.append(env)
                if len(got) == 3:
                    three.set()

            bus.subscribe(take, types=AnimationCommand)
            for r in (req(), req("break", "break-2"), req("celebrate", "celebrate-3")):
                bus.publish(r, source=ModuleId.GAMIFICATION)
            await three.wait()
            cmds = [e.payload for e in got]
            assert all(isinstance(c, AnimationCommand) for c in cmds)
            assert [
                (c.name, c.intervention_id) for c in cmds if isinstance(c, AnimationCommand)
            ] == [
                ("nudge", "nudge-1"),
                ("break", "break-2"),
                ("celebrate", ""),
            ]
            assert all(e.source == ModuleId.AI for e in got)
            await ai.stop()

    run(main())
