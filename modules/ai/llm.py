"""Optional LAN LLM: an OpenAI-compatible ``POST {url}/chat/completions`` (docs/COMPANION.md §8).

Spoken with asyncio streams (stdlib, no new dependency): the whole exchange — connect, send,
read the reply — runs under one ``asyncio.timeout``, so a server that accepts and then stalls
or drips bytes costs at most ``timeout_s`` and leaves no thread behind.  The reply is read up to
``MAX_REPLY_BYTES``; ``Content-Length``, chunked and read-to-close bodies are understood.

:class:`CircuitBreaker`: after ``failures`` consecutive failures the endpoint is not asked for
``reset_s`` seconds (open); then one request is let through (half-open): success closes the
breaker, failure opens it again.  The clock is injected.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_REPLY_BYTES = 65536


class LLMError(Exception):
    """The endpoint could not give a usable reply (what went wrong is the message)."""


class LLMTimeout(LLMError, TimeoutError):
    pass


@dataclass(frozen=True)
class Endpoint:
    url: str
    """Base URL, e.g. ``http://192.168.1.20:8080/v1``; the request goes to ``/chat/completions``."""
    model: str = ""
    timeout_s: float = 2.0
    max_tokens: int = 80
    temperature: float = 0.8

    def parts(self) -> tuple[str, str, int, str]:
        u = urlsplit(self.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise LLMError(f"llm_url must be http(s)://host[:port]/path, got {self.url!r}")
        port = u.port or (443 if u.scheme == "https" else 80)
        path = u.path.rstrip("/") + "/chat/completions"
        return u.scheme, u.hostname, port, path


class CircuitBreaker:
    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float]) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self.clock = clock
        self.count = 0
        self.opened_at: float | None = None
        self.trial = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.trial:
            self.trial = True
            return True
        return False

    def success(self) -> None:
        self.count = 0
        self.opened_at = None
        self.trial = False

    def failure(self) -> None:
        self.count += 1
        if self.trial or self.count >= self.failures:
            self.opened_at = self.clock()
        self.trial = False


def request_body(endpoint: Endpoint, system: str, user: str) -> bytes:
    body: dict[str, Any] = {
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": endpoint.max_tokens,
        "temperature": endpoint.temperature,
        "stream": False,
    }
    if endpoint.model:
        body["model"] = endpoint.model
    return json.dumps(body).encode()


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    rest = body
    while True:
        line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            raise LLMError("truncated chunked body")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise LLMError("bad chunk size") from None
        if size == 0:
            return bytes(out)
        if len(rest) < size:
            raise LLMError("truncated chunked body")
        out += rest[:size]
        rest = rest[size + 2 :]


def parse_response(raw: bytes) -> str:
    """The assistant's text out of a raw HTTP response; :class:`LLMError` for anything else."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise LLMError("no complete HTTP header in the reply")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/"):
        raise LLMError(f"not an HTTP reply: {lines[0][:60]!r}")
    if status[1] != "200":
        raise LLMError(f"HTTP {' '.join(status[1:])[:60]}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise LLMError("bad Content-Length") from None
        if len(body) < length:
            raise LLMError("reply shorter than its Content-Length")
        body = body[:length]
    try:
        doc = json.loads(body)
        content = doc["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(f"reply is not an OpenAI chat completion: {body[:60]!r}") from None
    if not isinstance(content, str):
        raise LLMError("reply content is not text")
    return content


async def complete(endpoint: Endpoint, system: str, user: str) -> str:
    """One chat completion: the reply's text, or :class:`LLMError` / :class:`LLMTimeout`."""
    scheme, host, port, path = endpoint.parts()
    body = request_body(endpoint, system, user)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(endpoint.timeout_s):
            context = ssl.create_default_context() if scheme == "https" else None
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
            writer.write(request)
            await writer.drain()
            raw = bytearray()
            while len(raw) <= MAX_REPLY_BYTES:
                chunk = await reader.read(16384)
                if not chunk:
                    break
                raw += chunk
                if _complete(raw):
                    break
            if len(raw) > MAX_REPLY_BYTES:
                raise LLMError(f"reply larger than {MAX_REPLY_BYTES} bytes")
    except TimeoutError:
        raise LLMTimeout(f"no reply within {endpoint.timeout_s:g} s") from None
    except OSError as exc:
        raise LLMError(f"cannot reach {host}:{port}: {exc}") from None
    finally:
        if writer is not None:
            writer.close()
    return parse_response(bytes(raw))


def _complete(raw: bytearray) -> bool:
    """True once a Content-Length body (or a chunked body's last chunk) has fully arrived."""
    head, sep, body = bytes(raw).partition(b"\r\n\r\n")
    if not sep:
        return False
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        return body.endswith(b"0\r\n\r\n")
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            try:
                return len(body) >= int(line.split(b":", 1)[1])
            except ValueError:
                return True
    return False
