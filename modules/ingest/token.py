"""The pre-shared ingest token: created once, stored with mode 0600, compared in constant time.

``skelly token`` shows it (creating it if missing), ``DataCapture`` loads it at start, the host
side reads a copy (``skelly send --token-file``).  256 bits from ``secrets.token_urlsafe(32)``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

TOKEN_FILENAME = "ingest.token"
MIN_TOKEN_CHARS = 22  # 22 URL-safe characters = 132 bits


class TokenError(ValueError):
    """The token file is missing, unreadable, unsafe or malformed; the message says what to do."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_equal(given: str, expected: str) -> bool:
    """Constant time in the content *and* the length of ``given`` (both sides are hashed)."""
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, b)


def write_token(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` atomically with mode 0600 (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # a crash between create and rename leaves this name behind, and pids repeat (reboots,
    # containers): O_EXCL alone would then refuse to ever write the token again
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_token(path: Path, *, require_private: bool = True) -> str:
    """Read a token file; refuse one that others can read (``require_private``)."""
    try:
        st = path.stat()
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise TokenError(
            f"token file {path} does not exist; run `skelly token` on the Pi to create it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read token file {path}: {exc}") from None
    if require_private and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenError(
            f"token file {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run `chmod 600 {path}` (and consider `skelly token --new`)"
        )
    token = text.strip()
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise TokenError(
            f"token file {path} does not hold a valid token (one line, at least "
            f"{MIN_TOKEN_CHARS} characters); run `skelly token --new` to make one"
        )
    return token


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The token at ``path``, creating it if missing.  Returns ``(token, created)``."""
    if path.exists():
        return read_token(path), False
    token = new_token()
    write_token(path, token)
    return token, True
