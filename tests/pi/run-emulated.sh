#!/usr/bin/env bash
# Run the test suite on the Pi's own platform: arm64 Debian bookworm (the base of Raspberry Pi OS,
# python3 3.11) under qemu-user emulation through binfmt_misc.  docs/TESTING.md explains the run,
# its selection and its allowances.
#
#   sudo tests/pi/run-emulated.sh            # build (once) and run the suite (all but tests/capture)
#   sudo tests/pi/run-emulated.sh --ci       # the selection CI runs (CI_SELECTION below)
#   sudo tests/pi/run-emulated.sh --prepare  # only build the cached root and MicroPython
#   sudo tests/pi/run-emulated.sh --shell    # a shell in a fresh copy of the emulated root
#   sudo tests/pi/run-emulated.sh --rebuild  # throw the cached root away first
#   sudo tests/pi/run-emulated.sh --head     # test the last commit, not the working tree
#   sudo PYTEST_ADDOPTS="-x --durations=20" tests/pi/run-emulated.sh   # pytest options go through
#
# What it does, as root on an amd64 (or any) Debian/Ubuntu machine:
#  1. installs mmdebstrap, arch-test, qemu-user-static, binfmt-support (and the aarch64 cross
#     compiler) if missing (apt-get), mounts binfmt_misc and registers qemu-aarch64 with the
#     fix-binary flag, so arm64 programs run in a chroot without copying qemu into it;
#  2. builds a minimal arm64 bookworm root with what a Pi owner has or installs (python3,
#     python3-venv, gcc for the one C extension of the test extra, systemd for systemd-analyze,
#     mosquitto, ...) with mmdebstrap, once: cached as a tarball ($SKELLY_PI_CACHE, default
#     ~/.cache/skelly-pi); 6-16 minutes, almost all of it dpkg's maintainer scripts under qemu;
#  3. builds the arm64 MicroPython unix port the firmware tests run (tools/micropython) with the
#     host's aarch64 cross compiler, once, cached beside the root (~1-3 min; the same build under
#     emulation took 29 min);
#  4. unpacks the root into a scratch directory, copies this checkout there as /work/main (without
#     .git, venvs and caches) and, inside a private mount namespace (nothing stays mounted
#     afterwards), runs the README's own test command in the chroot: a fresh venv, the project
#     installed with its test extra as a Pi owner would (pip resolves every aarch64 wheel), pytest
#     with the selection appended to its command line (on two xdist workers, as natively:
#     pyproject.toml's addopts);
#  5. exports SKELLY_TEST_SLOWNESS=20 (tests/slowness.py): emulation is 5-20x slower, and the
#     few tests that bound real time on purpose get that documented allowance, never a skip; and
#     SKELLY_HYPOTHESIS_PROFILE=emulated (tests/conftest.py): each property test runs a fifth of
#     its example budget (at least 10).
#
# Selection: tests/capture never runs here (`skelly capture` runs on the user's computer, never
# on the Pi: the Pi's install does not include it).  --ci runs CI_SELECTION: everything that
# differs on arm64, within CI's time budget; docs/TESTING.md gives the reasons and the times.
# pip's cache and the MicroPython build live next to the tarball.
# Exit status: the suite's (0 = passed), or 2 when the emulated root could not be made.
set -euo pipefail

SUITE="bookworm"
ARCH="arm64"
CACHE="${SKELLY_PI_CACHE:-${HOME:-/root}/.cache/skelly-pi}"
SLOWNESS="${SKELLY_TEST_SLOWNESS:-20}"
MIRROR="${SKELLY_PI_MIRROR:-http://deb.debian.org/debian}"
# a Pi owner's Raspberry Pi OS Lite has python3, python3-venv/pip, gcc; python3-dev + gcc build
# the test extra's one C extension (evdev, through pynput); systemd-analyze comes with systemd;
# tzdata (Raspberry Pi OS has it; the time-zone tests need it); python3-seccomp for the unit's
# system call filter test; openssl (TLS test certificates); mosquitto (tests/mqtt's real broker);
# procps for ps; tmux for the live view test of skelly sim (tests/sim/test_live_view_tmux.py);
# make for a MicroPython build inside when no cross compiler was found
PACKAGES="python3,python3-venv,python3-pip,python3-dev,gcc,libc6-dev,make,systemd,udev,python3-seccomp,tzdata,ca-certificates,openssl,procps,util-linux,passwd,tmux,mosquitto"
# what --ci runs (pytest arguments): see docs/TESTING.md for why each part is in or out
CI_SELECTION="tests/deploy tests/firmware tests/property tests/unit tests/mqtt"
CI_SELECTION+=" tests/sim/test_link_pty.py tests/sim/test_cli_run.py tests/sim/test_notify.py"
CI_SELECTION+=" tests/sim/test_smoke.py"
CI_SELECTION+=" --deselect tests/unit/test_quality.py --deselect tests/unit/test_independent_traces.py --deselect tests/unit/test_holdout_traces.py"
CI_SELECTION+=" --deselect tests/unit/test_blind_traces.py"
ROOT_DIR="$(cd "$(dirname "$0")/../.." && pwd)"
TARBALL="$CACHE/$SUITE-$ARCH.tar"
MPY_CACHE="$CACHE/micropython"

die() { echo "run-emulated: error: $*" >&2; exit 2; }
say() { echo "run-emulated: $*" >&2; }

mode="test"
source="tree"
selection="--ignore=tests/capture"
for arg in "$@"; do
  case "$arg" in
    --shell) mode="shell" ;;
    --prepare) mode="prepare" ;;
    --ci) selection="--ignore=tests/capture $CI_SELECTION" ;;
    --rebuild) rm -f "$TARBALL" ;;
    --head) source="head" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) die "unknown argument $arg (try --help)" ;;
  esac
done

[ "$(uname -s)" = Linux ] || die "needs Linux (binfmt_misc and chroot); found $(uname -s)"
[ "$(id -u)" = 0 ] || die "needs root (chroot, mounts, binfmt_misc): run it with sudo"

cross=""
[ "$(uname -m)" = aarch64 ] || cross="aarch64-linux-gnu-"
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
[ -e /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v arch-test >/dev/null || need+=(arch-test)
if [ -n "$cross" ] && ! command -v "${cross}gcc" >/dev/null; then
  need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross make)
fi
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

mkdir -p "$CACHE/pip" "$MPY_CACHE"
if [ ! -s "$TARBALL" ]; then
  say "building the $ARCH $SUITE root (once; cached as $TARBALL)"
  started=$(date +%s)
  # no manuals, docs or translations (a Pi image has them, the tests never read them: fewer
  # files to unpack and no man-db work under qemu); no fsync per file (a scratch tree)
  mmdebstrap --quiet --arch="$ARCH" --variant=apt --include="$PACKAGES" --format=tar \
    --aptopt='Acquire::Languages "none"' --dpkgopt=force-unsafe-io \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$SUITE" "$TARBALL.part" "$MIRROR" || die "mmdebstrap failed"
  mv "$TARBALL.part" "$TARBALL"
  say "root built in $(( $(date +%s) - started )) s"
fi

# the arm64 MicroPython (tests/firmware runs the firmware on it), cross-compiled on the host:
# tests/firmware/micropython.py finds it in SKELLY_MICROPYTHON_CACHE and does not build it again
mpy_bin="$MPY_CACHE/micropython/ports/unix/build-standard/micropython"
if [ ! -x "$mpy_bin" ] && { [ -z "$cross" ] || command -v "${cross}gcc" >/dev/null; }; then
  say "building the $ARCH MicroPython unix port (once; cached in $MPY_CACHE)"
  started=$(date +%s)
  (
    exec 9>"$MPY_CACHE/.lock" && flock 9
    CROSS_COMPILE="$cross" bash "$ROOT_DIR/tools/micropython/build-micropython.sh" "$MPY_CACHE" \
      >/dev/null
  ) || die "building MicroPython failed: see $MPY_CACHE/build.log"
  say "MicroPython built in $(( $(date +%s) - started )) s"
fi
[ "$mode" = prepare ] && exit 0

work="$(mktemp -d /var/tmp/skelly-pi.XXXXXX)"
# shellcheck disable=SC2317  # called by the traps
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT
trap 'exit 143' TERM INT  # (timeout in .ci/run) still removes the scratch root
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
src=/work/main
mkdir -p "$rootfs$src" "$rootfs/root/.cache/pip" "$rootfs/cache/micropython"
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

# the README's own test command (its second sh block, as .ci/run reads it), which ends with its
# pytest: the selection goes on that command line (in PYTEST_ADDOPTS it would also reach the
# pytest runs some tests start in other directories); PYTEST_ADDOPTS passes through as given
cmd=$(awk '/^```sh$/{n++; next} /^```$/{next} n==2{print; exit}' "$ROOT_DIR/README.md")
case "$cmd" in
  *"pytest -q") ;;
  *) die "the README's test command no longer ends with 'pytest -q': $cmd" ;;
esac
if [ "$mode" = shell ]; then
  inner='exec bash -l'
else
  inner="cd $src && python3 --version && uname -m && echo 'emulated: $selection' && $cmd $selection"
fi
addopts="${PYTEST_ADDOPTS:-}"

say "running in the emulated root (SKELLY_TEST_SLOWNESS=$SLOWNESS)"
started=$(date +%s)
set +e
# shellcheck disable=SC2016  # the inner script expands its own variables
unshare --mount --propagation private env \
  ROOTFS="$rootfs" CACHE="$CACHE" INNER="$inner" SLOWNESS="$SLOWNESS" ADDOPTS="$addopts" bash -euc '
  mount -t proc proc "$ROOTFS/proc"
  mount --rbind /sys "$ROOTFS/sys"
  mount --rbind /dev "$ROOTFS/dev"
  mount -t tmpfs -o mode=1777 tmpfs "$ROOTFS/tmp"
  mount --bind "$CACHE/pip" "$ROOTFS/root/.cache/pip"
  mount --bind "$CACHE/micropython" "$ROOTFS/cache/micropython"
  exec chroot "$ROOTFS" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SKELLY_TEST_SLOWNESS="$SLOWNESS" SKELLY_HYPOTHESIS_PROFILE=emulated \
    PIP_DISABLE_PIP_VERSION_CHECK=1 SKELLY_MICROPYTHON_CACHE=/cache/micropython \
    ${ADDOPTS:+PYTEST_ADDOPTS="$ADDOPTS"} \
    ${http_proxy:+http_proxy="$http_proxy"} ${https_proxy:+https_proxy="$https_proxy"} \
    ${no_proxy:+no_proxy="$no_proxy"} \
    bash -c "$INNER"
'
status=$?
set -e
say "suite finished with status $status in $(( $(date +%s) - started )) s"
exit "$status"
