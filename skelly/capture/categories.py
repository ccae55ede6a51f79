"""Application categories and opaque application ids (docs/CAPTURE.md §3).

The focus watcher knows an application only by a *well-known application id*: the ``WM_CLASS``
class (or instance) name on Linux/X11, the bundle id on macOS, the executable name on Windows.
That id never leaves the host: the Pi receives

* a category from the fixed list of docs/INGEST.md §4.3 (``code``, ``terminal``, ``docs``,
  ``browser``, ``communication``, ``media``, ``design``, ``office``, ``games``, ``other``),
  looked up in :data:`DEFAULTS` and the user's overrides (``[categories]`` of
  ``~/.config/skelly/capture.toml``); unknown applications are ``other``;
* an opaque ``app_id``: the first 16 hex digits of HMAC-SHA256(per-install secret, id), so it is
  stable for one user and unlinkable across users.  The secret is created once (32 random bytes,
  mode 0600) in the host's config directory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from modules.ingest.validate import CATEGORIES

SECRET_BYTES = 32

# well-known application ids (compared lowercase) -> category; several platforms per category
_TABLE: dict[str, tuple[str, ...]] = {
    "code": (
        # Linux WM_CLASS
        "code", "code-oss", "vscodium", "cursor", "zed", "emacs", "gvim", "neovide",
        "sublime_text", "geany", "kate", "gnome-builder", "jetbrains-idea", "jetbrains-idea-ce",
        "jetbrains-pycharm", "jetbrains-pycharm-ce", "jetbrains-goland", "jetbrains-clion",
        "jetbrains-webstorm", "jetbrains-rider", "jetbrains-studio", "android-studio",
        # macOS bundle ids
        "com.microsoft.vscode", "com.apple.dt.xcode", "com.sublimetext.4",
        "com.jetbrains.intellij", "com.jetbrains.pycharm", "dev.zed.zed", "org.gnu.emacs",
        # Windows executables
        "code.exe", "devenv.exe", "idea64.exe", "pycharm64.exe", "sublime_text.exe",
        "notepad++.exe",
    ),
    "terminal": (
        "gnome-terminal", "gnome-terminal-server", "konsole", "xterm", "uxterm", "urxvt",
        "alacritty", "kitty", "terminator", "tilix", "wezterm", "org.wezfurlong.wezterm", "foot",
        "xfce4-terminal", "lxterminal", "st", "com.apple.terminal", "com.googlecode.iterm2",
        "windowsterminal.exe", "cmd.exe", "powershell.exe", "pwsh.exe", "conhost.exe",
    ),
    "browser": (
        "firefox", "firefox-esr", "navigator", "chromium", "chromium-browser", "google-chrome",
        "brave-browser", "microsoft-edge", "vivaldi-stable", "epiphany", "org.gnome.epiphany",
        "librewolf", "com.apple.safari", "com.google.chrome", "org.mozilla.firefox",
        "com.brave.browser", "com.microsoft.edgemac", "firefox.exe", "chrome.exe", "msedge.exe",
        "brave.exe",
    ),
    "communication": (
        # chat
        "slack", "discord", "signal", "telegram-desktop", "telegramdesktop", "element",
        "teams-for-linux", "microsoft teams - preview", "zoom", "skype",
        "com.tinyspeck.slackmacgap", "com.hnc.discord", "org.whispersystems.signal-desktop",
        "us.zoom.xos", "com.microsoft.teams",
        "com.microsoft.teams2", "ru.keepcoder.telegram", "slack.exe", "teams.exe", "ms-teams.exe",
        "discord.exe", "zoom.exe", "signal.exe", "telegram.exe",
        # mail
        "thunderbird", "evolution", "geary", "org.gnome.geary", "mailspring", "com.apple.mail",
        "com.microsoft.outlook", "outlook.exe", "thunderbird.exe",
    ),
    "docs": (
        "evince", "org.gnome.evince", "okular", "zathura", "xreader", "atril", "obsidian",
        "zeal", "devhelp", "com.apple.preview", "md.obsidian", "com.adobe.reader",
        "acrord32.exe", "acrobat.exe", "sumatrapdf.exe", "obsidian.exe",
    ),
    "office": (
        "libreoffice", "soffice", "libreoffice-writer", "libreoffice-calc",
        "libreoffice-impress", "onlyoffice", "desktopeditors", "com.microsoft.word",
        "com.microsoft.excel", "com.microsoft.powerpoint", "com.apple.iwork.pages",
        "com.apple.iwork.numbers", "com.apple.iwork.keynote", "winword.exe", "excel.exe",
        "powerpnt.exe",
    ),
    "design": (
        "gimp", "gimp-2.10", "inkscape", "krita", "blender", "figma-linux", "darktable",
        "com.figma.desktop", "com.adobe.photoshop", "com.bohemiancoding.sketch3",
        "org.blenderfoundation.blender", "photoshop.exe", "figma.exe", "blender.exe",
    ),
    "media": (
        "vlc", "mpv", "totem", "spotify", "rhythmbox", "celluloid", "org.videolan.vlc",
        "com.spotify.client", "com.apple.music", "com.apple.tv", "io.mpv", "vlc.exe",
        "spotify.exe",
    ),
    "games": (
        "steam", "steamwebhelper", "lutris", "minecraft-launcher", "heroic",
        "com.valvesoftware.steam", "steam.exe",
    ),
}  # fmt: skip

DEFAULTS: Mapping[str, str] = {app: cat for cat, apps in _TABLE.items() for app in apps}
"""The documented default mapping (lowercase application id -> category)."""


class CategoryConfigError(ValueError):
    """The host's capture config file is wrong; the message says where and what."""


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/skelly`` (default ``~/.config/skelly``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "skelly"


def load_overrides(path: Path) -> dict[str, str]:
    """``[categories]`` of the capture config file (missing file: no overrides)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise CategoryConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CategoryConfigError(f"{path} is not valid TOML: {exc}") from None
    table = data.get("categories", {})
    if not isinstance(table, dict):
        raise CategoryConfigError(f'{path}: [categories] must be a table of "app id" = category')
    out: dict[str, str] = {}
    for app, cat in table.items():
        if not isinstance(cat, str) or cat not in CATEGORIES:
            raise CategoryConfigError(
                f"{path}: [categories] {app!r}: category must be one of "
                + ", ".join(sorted(CATEGORIES))
            )
        out[app.lower()] = cat
    return out


class Categoriser:
    """Application ids -> (category, opaque app id)."""

    def __init__(self, secret: bytes, overrides: Mapping[str, str] | None = None) -> None:
        self._secret = secret
        self._table = {**DEFAULTS, **(overrides or {})}

    def category(self, names: Iterable[str]) -> str:
        """The category of the first of ``names`` (e.g. WM_CLASS class, then instance) that is
        known; ``other`` if none is."""
        for name in names:
            cat = self._table.get(name.lower())
            if cat is not None:
                return cat
        return "other"

    def app_id(self, name: str) -> str:
        """16 hex digits of HMAC-SHA256(secret, lowercase name): same app, same id."""
        digest = hmac.new(self._secret, name.lower().encode("utf-8"), hashlib.sha256)
        return digest.hexdigest()[:16]

    def classify(self, names: tuple[str, ...]) -> tuple[str, str]:
        """``(category, app_id)`` for an application known by ``names`` (most specific first:
        the id hashed is the first name)."""
        return self.category(names), self.app_id(names[0] if names else "")


def load_secret(path: Path) -> bytes:
    """The per-install secret at ``path``, created (mode 0600) on first use."""
    try:
        data = path.read_bytes()
        if len(data) >= SECRET_BYTES:
            return data[:SECRET_BYTES]
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_BYTES)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return secret
