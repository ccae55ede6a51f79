#!/usr/bin/env bash
# Install Skelly-Jelly Edge as a systemd service on a Raspberry Pi (or any Linux with systemd).
#
#   sudo deploy/install.sh                       # install or upgrade, enable and (re)start
#   sudo deploy/install.sh --mcu-serial E661...  # pin /dev/skelly-mcu to one board's USB serial
#   sudo deploy/install.sh --uninstall           # remove the service; keep config, data, user
#   sudo deploy/install.sh --uninstall --purge   # ... and the config, the data and the user
#
# What it makes (docs/OPERATIONS.md explains each):
#   user skelly (system user, group skelly, also in gpio and dialout; groups created if missing)
#   /opt/skelly/venv              the project and its dependencies (root:root; pip install)
#   /opt/skelly/docs/             OPERATIONS.md, HARDWARE.md (the unit's Documentation=)
#   /usr/local/bin/skelly         -> /opt/skelly/venv/bin/skelly
#   /etc/skelly/                  0750 root:skelly
#   /etc/skelly/config.toml       0640 root:skelly, from deploy/config.example.toml, NEVER
#                                 overwritten (data_dir and the MCU's udev name filled in)
#   /etc/skelly/config.example.toml  0644, refreshed on every run (new settings show up here)
#   /var/lib/skelly/              0700 skelly:skelly (StateDirectory=)
#   /var/lib/skelly/ingest.token  0600 skelly:skelly, 256 bits, generated once
#   /etc/systemd/system/skelly.service          0644 (deploy/skelly.service)
#   /etc/udev/rules.d/70-skelly.rules           0644 (deploy/70-skelly.rules)
#   /etc/systemd/system/multi-user.target.wants/skelly.service -> the unit (enabled)
#
# Idempotent: a second run changes nothing (the venv is reinstalled only when the source, or the
# --from file, changed; files are replaced only when their content differs).
#
# --root DIR writes all of this under DIR instead of / (tests, image builders).  DIR must hold
# etc/passwd and etc/group: users and groups are added there with useradd/groupadd --prefix, the
# unit is enabled with systemctl --root, and nothing on the running system is touched (no
# systemctl start, no udevadm; the venv's scripts name DIR in their #! line).
#
# Options: --from SPEC     what pip installs (default: this checkout with the [pi] extra)
#          --python PY     the interpreter the venv is made from (default python3, >= 3.11)
#          --mcu-usb VID:PID  the MCU's USB id for the udev rule (default: a Pico with
#                          MicroPython 2e8a:0005 or a Pico SDK program 2e8a:000a)
#          --mcu-serial S  match only the board with this USB serial (udevadm info, see docs)
# Environment: SKELLY_PIP_ARGS  extra pip arguments (e.g. "--no-index --find-links DIR")
# Exit status 0 done, 2 refused (the line says why), anything else: a step failed.
set -euo pipefail
umask 022

prog="install.sh"
args="$*"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "$prog: error: $*" >&2; exit 2; }
say() { echo "$prog: $*"; }

root=""
action="install"
purge=0
from=""
python="python3"
mcu_usb=""  # default: the rule's own (2e8a:0005 MicroPython or 2e8a:000a Pico SDK)
mcu_serial=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root="$2"; shift ;;
    --root=*) root="${1#*=}" ;;
    --uninstall) action="uninstall" ;;
    --purge) purge=1 ;;
    --from) [ $# -ge 2 ] || die "--from needs a pip requirement or path"; from="$2"; shift ;;
    --python) [ $# -ge 2 ] || die "--python needs an interpreter"; python="$2"; shift ;;
    --mcu-usb) [ $# -ge 2 ] || die "--mcu-usb needs VID:PID"; mcu_usb="$2"; shift ;;
    --mcu-serial) [ $# -ge 2 ] || die "--mcu-serial needs the board's USB serial"; mcu_serial="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see $0 --help)" ;;
  esac
  shift
done
[ "$purge" = 0 ] || [ "$action" = uninstall ] || die "--purge goes with --uninstall"
if [ -n "$mcu_usb" ] && [[ ! "$mcu_usb" =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$ ]]; then
  die "--mcu-usb '$mcu_usb' is not VID:PID in hex (lsusb shows it, e.g. 2e8a:000a)"
fi
if [ -n "$mcu_serial" ] && [[ ! "$mcu_serial" =~ ^[A-Za-z0-9._:-]+$ ]]; then
  die "--mcu-serial '$mcu_serial' has characters a USB serial does not (letters, digits, . _ : -)"
fi

# --- refuse what cannot work, before touching anything -------------------------------------
os="$(uname -s)"
[ "$os" = Linux ] || die "this installer is for Linux with systemd (Raspberry Pi OS, Debian); found $os. On a laptop use 'skelly sim'"
[ "$(id -u)" = 0 ] || die "must run as root: it adds a system user and writes /etc, /opt and /var/lib (try: sudo $0 $args)"
if [ -n "$root" ]; then
  [ -d "$root" ] || die "--root $root is not a directory"
  root="$(cd "$root" && pwd)"
  [ "$root" != / ] || root=""
fi
if [ -n "$root" ]; then
  if [ ! -f "$root/etc/passwd" ] || [ ! -f "$root/etc/group" ]; then
    die "--root $root must hold etc/passwd and etc/group (users and groups are added there)"
  fi
else
  systemd_run="${SKELLY_INSTALL_SYSTEMD_RUN:-/run/systemd/system}"  # test hook
  [ -d "$systemd_run" ] || die "systemd is not running here ($systemd_run missing): the service needs systemd as init; to prepare an image use --root DIR"
fi
R="$root"
prefix=()
[ -z "$R" ] || prefix=(--prefix "$R")
offline=0
[ -z "$R" ] || offline=1

# --- small helpers, each a no-op when things are already as wanted -----------------------
uid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$R/etc/passwd"; }
gid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$R/etc/group"; }
in_group() { awk -F: -v g="$1" -v u="$2" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) f = 1 } END { exit !f }' "$R/etc/group"; }

# ensure_dir PATH MODE UID GID
ensure_dir() {
  if [ ! -d "$R$1" ]; then mkdir -p "$R$1"; say "created $1"; fi
  [ "$(stat -c %a "$R$1")" = "${2#0}" ] || chmod "$2" "$R$1"
  [ "$(stat -c %u:%g "$R$1")" = "$3:$4" ] || chown "$3:$4" "$R$1"
}

# ensure_file SOURCE PATH MODE UID GID: copy when missing or different
ensure_file() {
  if [ ! -f "$R$2" ] || ! cmp -s "$1" "$R$2"; then
    install -m "$3" -o "$4" -g "$5" "$1" "$R$2"
    say "wrote $2"
    changed=1
  fi
  [ "$(stat -c %a "$R$2")" = "${3#0}" ] || chmod "$3" "$R$2"
  [ "$(stat -c %u:%g "$R$2")" = "$4:$5" ] || chown "$4:$5" "$R$2"
}

# ensure_link TARGET PATH
ensure_link() {
  if [ "$(readlink "$R$2" 2>/dev/null)" != "$1" ]; then
    mkdir -p "$(dirname "$R$2")"
    ln -sfn "$1" "$R$2"
    say "linked $2 -> $1"
  fi
}

remove() {
  local p
  for p in "$@"; do
    if [ -e "$R$p" ] || [ -L "$R$p" ]; then rm -rf --one-file-system "$R$p"; say "removed $p"; fi
  done
}

# what pip installs, and a fingerprint of it (the venv is rebuilt only when it changes)
source_fingerprint() {
  if [ -f "$1" ]; then
    sha256sum < "$1"
  elif [ ! -d "$1" ]; then
    printf '%s' "$1" | sha256sum  # a requirement from an index: the spec itself
  else
    (cd "$1" && find pyproject.toml bus modules firmware_bridge hw_sim skelly -type f \
        ! -name '*.pyc' ! -name '*.so' ! -path '*/__pycache__/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum)  | sha256sum
  fi | cut -d' ' -f1
}

# --- uninstall ------------------------------------------------------------------------------
if [ "$action" = uninstall ]; then
  if [ "$offline" = 0 ]; then
    systemctl disable --now skelly.service 2>/dev/null || true
  elif [ -e "$R/etc/systemd/system/skelly.service" ]; then
    systemctl --root="$R" --quiet disable skelly.service 2>/dev/null || true
  fi
  remove /etc/systemd/system/multi-user.target.wants/skelly.service \
    /etc/systemd/system/skelly.service /etc/udev/rules.d/70-skelly.rules \
    /usr/local/bin/skelly /opt/skelly
  if [ "$offline" = 0 ]; then
    systemctl daemon-reload
    udevadm control --reload 2>/dev/null || true
  fi
  if [ "$purge" = 1 ]; then
    remove /etc/skelly /var/lib/skelly
    if [ -n "$(uid_of skelly)" ]; then userdel "${prefix[@]}" skelly; say "removed user skelly"; fi
    if [ -n "$(gid_of skelly)" ]; then groupdel "${prefix[@]}" skelly; say "removed group skelly"; fi
    say "uninstalled and purged (groups gpio and dialout kept: other programs use them)"
  else
    say "uninstalled; kept /etc/skelly, /var/lib/skelly and the user skelly (--purge removes them)"
  fi
  exit 0
fi

# --- install --------------------------------------------------------------------------------
command -v "$python" >/dev/null || die "no $python: install Python 3.11 or newer (apt-get install python3)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$python is Python $("$python" -c 'import platform; print(platform.python_version())'); Skelly needs 3.11 or newer (Raspberry Pi OS bookworm has it)"
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$offline" = 1 ] || ! command -v apt-get >/dev/null; then
    die "$python cannot make a venv: install python3-venv"
  fi
  say "installing python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
fi
[ -f "$src/deploy/skelly.service" ] || die "cannot find deploy/skelly.service next to $0 (run it from a checkout)"
[ -n "$from" ] || from="${src}[pi]"

changed=0
for group in gpio dialout; do
  if [ -z "$(gid_of "$group")" ]; then groupadd "${prefix[@]}" --system "$group"; say "created group $group"; fi
done
if [ -z "$(uid_of skelly)" ]; then
  useradd "${prefix[@]}" --system --user-group --no-create-home --home-dir /var/lib/skelly \
    --shell /usr/sbin/nologin --comment "Skelly-Jelly Edge service" --groups gpio,dialout skelly
  say "created user skelly (groups gpio, dialout)"
  changed=1
fi
for group in gpio dialout; do
  if ! in_group "$group" skelly; then usermod "${prefix[@]}" -a -G "$group" skelly; say "added skelly to $group"; changed=1; fi
done
uid="$(uid_of skelly)"
gid="$(gid_of skelly)"

# the venv: root-owned (the service cannot change its own code)
ensure_dir /opt 755 0 0
ensure_dir /opt/skelly 755 0 0
venv=/opt/skelly/venv
if [ ! -x "$R$venv/bin/python" ]; then
  "$python" -m venv "$R$venv"
  say "created $venv"
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
from_path="${from%\[*\]}"
want="$(source_fingerprint "$from_path") $from"
if [ "$(cat "$R$venv/.skelly-source" 2>/dev/null)" != "$want" ]; then
  say "installing $from into $venv (pip)"
  target="$from"
  if [ -d "$from_path" ]; then
    # build from a copy: pip builds in the source tree, which would leave root-owned build/
    # and *.egg-info in the owner's checkout
    mkdir "$scratch/src"
    tar -C "$from_path" --exclude=./.git --exclude='./.venv*' --exclude=./build \
      --exclude='*.egg-info' --exclude='__pycache__' --exclude=./.cache --exclude=./var \
      -cf - . | tar -C "$scratch/src" -xf -
    target="$scratch/src${from#"$from_path"}"
  fi
  # shellcheck disable=SC2086  # SKELLY_PIP_ARGS is a list of words on purpose
  "$R$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
    ${SKELLY_PIP_ARGS:-} "$target"
  printf '%s\n' "$want" > "$R$venv/.skelly-source"
  changed=1
fi
ensure_link "$venv/bin/skelly" /usr/local/bin/skelly
ensure_dir /opt/skelly/docs 755 0 0
for doc in OPERATIONS.md HARDWARE.md; do
  [ ! -f "$src/docs/$doc" ] || ensure_file "$src/docs/$doc" "/opt/skelly/docs/$doc" 644 0 0
done

# config: the documented example with the Pi's paths; never overwrites the owner's file
ensure_dir /etc/skelly 750 0 "$gid"
tmp="$scratch/.tmp-file"
ensure_file "$src/deploy/config.example.toml" /etc/skelly/config.example.toml 644 0 0
if [ ! -e "$R/etc/skelly/config.toml" ]; then
  sed -e 's|^# data_dir = "".*|data_dir = "/var/lib/skelly"|' \
    -e 's|^url = "/dev/serial/by-id/[^"]*"|url = "/dev/skelly-mcu"  # deploy/70-skelly.rules|' \
    "$src/deploy/config.example.toml" > "$tmp"
  if ! grep -q '^data_dir = "/var/lib/skelly"' "$tmp" || ! grep -q '^url = "/dev/skelly-mcu"' "$tmp"; then
    die "deploy/config.example.toml no longer has the data_dir and url lines this installer fills in"
  fi
  install -m 640 -o 0 -g "$gid" "$tmp" "$R/etc/skelly/config.toml"
  say "wrote /etc/skelly/config.toml (yours from now on: later runs never overwrite it)"
fi
[ "$(stat -c %u:%g "$R/etc/skelly/config.toml")" = "0:$gid" ] || chown "0:$gid" "$R/etc/skelly/config.toml"

# state and the ingest token (what hosts need: sudo cat /var/lib/skelly/ingest.token)
ensure_dir /var/lib 755 0 0
ensure_dir /var/lib/skelly 700 "$uid" "$gid"
token=/var/lib/skelly/ingest.token
if [ ! -e "$R$token" ]; then
  (umask 077 && "$python" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$R$token.tmp")
  chown "$uid:$gid" "$R$token.tmp"
  mv "$R$token.tmp" "$R$token"
  say "generated the ingest token $token"
fi

# systemd unit and udev rule
ensure_dir /etc/systemd/system 755 0 0
ensure_file "$src/deploy/skelly.service" /etc/systemd/system/skelly.service 644 0 0
unit_changed=$changed
changed=0
ensure_dir /etc/udev/rules.d 755 0 0
cp "$src/deploy/70-skelly.rules" "$tmp"
if [ -n "$mcu_usb" ]; then
  sed -i "s#ATTRS{idVendor}==\"2e8a\", ATTRS{idProduct}==\"0005|000a\"#ATTRS{idVendor}==\"${mcu_usb%%:*}\", ATTRS{idProduct}==\"${mcu_usb##*:}\"#" "$tmp"
  grep -q "ATTRS{idVendor}==\"${mcu_usb%%:*}\", ATTRS{idProduct}==\"${mcu_usb##*:}\"" "$tmp" \
    || die "deploy/70-skelly.rules no longer has the USB id line --mcu-usb replaces"
fi
if [ -n "$mcu_serial" ]; then sed -i "s|ATTRS{serial}==\"\\*\"|ATTRS{serial}==\"$mcu_serial\"|" "$tmp"; fi
ensure_file "$tmp" /etc/udev/rules.d/70-skelly.rules 644 0 0
rules_changed=$changed

if [ "$offline" = 1 ]; then
  if [ ! -L "$R/etc/systemd/system/multi-user.target.wants/skelly.service" ]; then
    systemctl --root="$R" --quiet enable skelly.service
    say "enabled skelly.service (in $R; not started)"
  fi
else
  if [ "$rules_changed" = 1 ]; then
    udevadm control --reload
    udevadm trigger --action=add --subsystem-match=tty --subsystem-match=gpio
  fi
  systemctl daemon-reload
  systemctl --quiet enable skelly.service
  if [ "$unit_changed" = 1 ] && systemctl --quiet is-active skelly.service; then
    systemctl restart skelly.service
    say "restarted skelly.service"
  elif ! systemctl --quiet is-active skelly.service; then
    systemctl start skelly.service || die "skelly.service did not start: journalctl -u skelly -n 50 says why (docs/OPERATIONS.md, troubleshooting)"
    say "started skelly.service"
  fi
fi
say "done. Status: systemctl status skelly; logs: journalctl -u skelly -f; the token hosts need: sudo cat $token"
