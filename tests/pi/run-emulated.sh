#!/usr/bin/env bash
# Run the test suite on the Pi's own platform: arm64 Debian bookworm (the base of Raspberry Pi OS,
# python3 3.11) under qemu-user emulation through binfmt_misc.
#
#   sudo tests/pi/run-emulated.sh            # build (once) and run the suite as CI does
#   sudo tests/pi/run-emulated.sh --shell    # a shell in a fresh copy of the emulated root
#   sudo tests/pi/run-emulated.sh --rebuild  # throw the cached root away first
#   sudo tests/pi/run-emulated.sh --head     # test the last commit, not the working tree
#   sudo PYTEST_ADDOPTS="-v" tests/pi/run-emulated.sh   # extra pytest options go through
#
# What it does, as root on an amd64 (or any) Debian/Ubuntu machine:
#  1. installs mmdebstrap, arch-test, qemu-user-static and binfmt-support if missing (apt-get), mounts
#     binfmt_misc and registers qemu-aarch64 with the fix-binary flag, so arm64 programs run in
#     a chroot without copying qemu into it;
#  2. builds a minimal arm64 bookworm root with what a Pi owner has or installs (python3,
#     python3-venv, gcc, systemd for systemd-analyze, ...) with mmdebstrap, once: the result is
#     cached as a tarball ($SKELLY_PI_CACHE, default ~/.cache/skelly-pi; about 10 minutes);
#  3. unpacks it into a scratch directory, copies this checkout there as /work/main (without
#     .git, venvs and caches; ../shared/tools beside it when present, as CI has it) and,
#     inside a private mount namespace (nothing stays mounted afterwards), runs
#     `.ci/run` in the chroot: the README's own test command, which makes a fresh venv, installs
#     the project with its test extras as a Pi owner would, and runs the whole suite;
#  4. exports SKELLY_TEST_SLOWNESS=20 (tests/slowness.py): emulation is 5-20x slower, and the
#     few tests that bound real time on purpose get that documented allowance, never a skip.
#
# pip's cache and the arm64 MicroPython build (tests/firmware) live next to the tarball, so the
# dependencies are downloaded and MicroPython compiled once.
# Exit status: the suite's (0 = passed), or 2 when the emulated root could not be made.
set -euo pipefail

SUITE="bookworm"
ARCH="arm64"
CACHE="${SKELLY_PI_CACHE:-${HOME:-/root}/.cache/skelly-pi}"
SLOWNESS="${SKELLY_TEST_SLOWNESS:-20}"
MIRROR="${SKELLY_PI_MIRROR:-http://deb.debian.org/debian}"
# a Pi owner's Raspberry Pi OS Lite has python3, python3-venv/pip, gcc; systemd-analyze comes
# with systemd; tzdata (Raspberry Pi OS has it; the time-zone tests need it);
# python3-seccomp for the unit's system call filter test; make for MicroPython (tests/firmware)
# and build-essential, which .ci/run checks for (else it apt-installs it on every emulated run);
# procps for ps; tmux for the live view test of skelly sim (tests/sim/test_live_view_tmux.py)
PACKAGES="python3,python3-venv,python3-pip,python3-dev,gcc,libc6-dev,systemd,udev,python3-seccomp,tzdata,make,build-essential,ca-certificates,procps,util-linux,passwd,tmux"
ROOT_DIR="$(cd "$(dirname "$0")/../.." && pwd)"
TARBALL="$CACHE/$SUITE-$ARCH.tar"

die() { echo "run-emulated: error: $*" >&2; exit 2; }
say() { echo "run-emulated: $*" >&2; }

mode="test"
source="tree"
for arg in "$@"; do
  case "$arg" in
    --shell) mode="shell" ;;
    --rebuild) rm -f "$TARBALL" ;;
    --head) source="head" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) die "unknown argument $arg (try --help)" ;;
  esac
done

[ "$(uname -s)" = Linux ] || die "needs Linux (binfmt_misc and chroot); found $(uname -s)"
[ "$(id -u)" = 0 ] || die "needs root (chroot, mounts, binfmt_misc): run it with sudo"

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
[ -e /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v arch-test >/dev/null || need+=(arch-test)
if [ "${#need[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "install ${need[*]} (no apt-get here)"
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed (try apt-get update)"
fi

binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" || die "cannot mount binfmt_misc on $binfmt"
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
[ -e "$binfmt/qemu-aarch64" ] || die "qemu-aarch64 is not registered in $binfmt"
grep -q '^flags:.*F' "$binfmt/qemu-aarch64" \
  || die "qemu-aarch64 is registered without the fix-binary (F) flag: chroots cannot use it"

mkdir -p "$CACHE/pip"
if [ ! -s "$TARBALL" ]; then
  say "building the $ARCH $SUITE root (once; cached as $TARBALL)"
  started=$(date +%s)
  mmdebstrap --quiet --arch="$ARCH" --variant=apt --include="$PACKAGES" --format=tar \
    "$SUITE" "$TARBALL.part" "$MIRROR" || die "mmdebstrap failed"
  mv "$TARBALL.part" "$TARBALL"
  say "root built in $(( $(date +%s) - started )) s"
fi

work="$(mktemp -d /var/tmp/skelly-pi.XXXXXX)"
# shellcheck disable=SC2317  # called by the trap
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT
rootfs="$work/root"
mkdir -p "$rootfs"
tar -C "$rootfs" -xf "$TARBALL"
cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
# a cached root made from an older package list gets the missing packages, and is saved again
missing=()
for pkg in ${PACKAGES//,/ }; do
  # shellcheck disable=SC2016  # ${Status} is dpkg-query's format, not the shell's
  chroot "$rootfs" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
    || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "adding ${missing[*]} to the cached root"
  # shellcheck disable=SC2016  # the inner script expands its own variables
  unshare --mount --propagation private env ROOTFS="$rootfs" PKGS="${missing[*]}" bash -euc '
    mount -t proc proc "$ROOTFS/proc"
    mount --rbind /dev "$ROOTFS/dev"
    chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      DEBIAN_FRONTEND=noninteractive bash -c "apt-get update -qq && apt-get install -y -qq \
      --no-install-recommends $PKGS >/dev/null && apt-get clean"
  ' || die "could not add ${missing[*]} to the emulated root"
  tar -C "$rootfs" -cf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
fi
# trust what this machine trusts (a TLS-inspecting proxy's CA, say), for pip inside
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi
# the clone at /work/main and the shared tools beside it (../shared/tools, as on the CI machines:
# tests/firmware builds MicroPython with them); the MicroPython build is cached next to the root
src=/work/main
mkdir -p "$rootfs$src" "$rootfs/root/.cache/pip" "$rootfs/cache/micropython" "$CACHE/micropython"
if [ -d "$ROOT_DIR/../shared/tools" ]; then
  mkdir -p "$rootfs/work/shared"
  cp -a "$ROOT_DIR/../shared/tools" "$rootfs/work/shared/tools"
fi
# the checkout as a fresh clone would have it: no VCS data, venvs, caches or build products
if [ "$source" = head ]; then
  git -C "$ROOT_DIR" archive --format=tar HEAD | tar -C "$rootfs$src" -xf -
else
  tar -C "$ROOT_DIR" \
  --exclude=./.git --exclude='./.venv*' --exclude=./build --exclude=./dist \
  --exclude='*.egg-info' --exclude='__pycache__' --exclude=./.mypy_cache \
  --exclude=./.ruff_cache --exclude=./.hypothesis --exclude=./.cache --exclude=./var \
  -cf - . | tar -C "$rootfs$src" -xf -
fi

if [ "$mode" = shell ]; then
  inner='exec bash -l'
else
  inner="cd $src && python3 --version && uname -m && bash .ci/run"
fi

say "running in the emulated root (SKELLY_TEST_SLOWNESS=$SLOWNESS)"
started=$(date +%s)
set +e
# shellcheck disable=SC2016  # the inner script expands its own variables
unshare --mount --propagation private env \
  ROOTFS="$rootfs" CACHE="$CACHE" INNER="$inner" SLOWNESS="$SLOWNESS" bash -euc '
  mount -t proc proc "$ROOTFS/proc"
  mount --rbind /sys "$ROOTFS/sys"
  mount --rbind /dev "$ROOTFS/dev"
  mount -t tmpfs -o mode=1777 tmpfs "$ROOTFS/tmp"
  mount --bind "$CACHE/pip" "$ROOTFS/root/.cache/pip"
  mount --bind "$CACHE/micropython" "$ROOTFS/cache/micropython"
  exec chroot "$ROOTFS" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SKELLY_TEST_SLOWNESS="$SLOWNESS" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SKELLY_MICROPYTHON_CACHE=/cache/micropython \
    ${PYTEST_ADDOPTS:+PYTEST_ADDOPTS="$PYTEST_ADDOPTS"} \
    ${http_proxy:+http_proxy="$http_proxy"} ${https_proxy:+https_proxy="$https_proxy"} \
    ${no_proxy:+no_proxy="$no_proxy"} \
    bash -c "$INNER"
'
status=$?
set -e
say "suite finished with status $status in $(( $(date +%s) - started )) s"
exit "$status"
