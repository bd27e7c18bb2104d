#!/usr/bin/env bash
# Installs what building and testing mvirt needs on Debian 12, then a virtualenv at .venv with
# the project installed. Idempotent: a second run only checks and returns in about a second.
# Works as root or through sudo. Set MVIRT_BOOTSTRAP_FORCE=1 to redo every step, and
# MVIRT_BOOTSTRAP_SYSTEM_ONLY=1 to install the Debian packages only (the Dockerfile does).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

# Run a command as root: directly when we are root, else through sudo (keeping DEBIAN_FRONTEND).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo DEBIAN_FRONTEND=noninteractive "$@"; fi
}

# Debian packages: build tools for the kernel, the image builder, the firmware and emulator
# for boots, the signing and ISO tools, and the peers the tests talk to.
PACKAGES=(
  apt bubblewrap cpio debian-archive-keyring dpkg-dev zstd
  build-essential bc bison flex libelf-dev libssl-dev linux-source-6.1 libncurses-dev
  python3 python3-venv python3-dev libarchive13
  qemu-system-x86 qemu-utils ovmf systemd-boot-efi
  sbsigntool xorriso mtools dosfstools fdisk squashfs-tools
  busybox-static dnsmasq-base isc-dhcp-server isc-dhcp-client iproute2 nftables zfs-fuse xz-utils
  dh-virtualenv debhelper lintian debootstrap
  git make tmux procps openssh-client gnupg
)
BACKPORTS_PACKAGES=(mkosi)

stamp_dir=${XDG_CACHE_HOME:-$HOME/.cache}/mvirt
stamp=$stamp_dir/bootstrap.stamp
system_only=${MVIRT_BOOTSTRAP_SYSTEM_ONLY:-0}

if [ "$system_only" != 1 ]; then
  want=$(sha256sum "$0" pyproject.toml requirements/runtime.lock | sha256sum | cut -c1-16)
  if [ "${MVIRT_BOOTSTRAP_FORCE:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && [ -x .venv/bin/mvirt-build ]; then
    exit 0
  fi
fi

missing=()
for p in "${PACKAGES[@]}" "${BACKPORTS_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  # Backports come from the mirror this machine already uses for bookworm (maybe a local one).
  if [ ! -f /etc/apt/sources.list.d/bookworm-backports.sources ]; then
    mirror=$(python3 builder/mvirt_build/apt_sources.py bookworm)
    as_root tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    as_root apt-get update -qq
  fi
  as_root apt-get install -y -qq --no-install-recommends -t bookworm-backports \
    "${BACKPORTS_PACKAGES[@]}" >/dev/null
fi

if [ "$system_only" = 1 ]; then
  echo "bootstrap: Debian packages installed"
  exit 0
fi

# The virtualenv uses Debian's interpreter so that it matches the one the image carries.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# The runtime dependencies at the locked versions and hashes (the same lock the image installs),
# then the project itself and the development tools.
.venv/bin/python -m pip install -q --require-hashes -r requirements/runtime.lock
.venv/bin/python -m pip install -q -e '.[dev]'

mkdir -p "$stamp_dir"
echo "$want" >"$stamp"
echo "bootstrap: done (.venv/bin/mvirt-build is ready)"
