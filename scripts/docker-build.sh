#!/usr/bin/env bash
# `make docker`: the whole build in a Debian 12 container (Dockerfile), as the calling user, so
# the files it writes are the user's. Arguments are make targets (default: iso). The caches
# (~/.cache/mvirt: kernel, rootfs, downloads) are shared with builds outside the container.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker >/dev/null 2>&1; then
  echo "make docker: the docker command is not installed; install Docker or run 'make iso' here" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "make docker: no Docker engine answers (docker info failed); start one or run 'make iso' here" >&2
  exit 1
fi
image=mvirt-builder
cache=${XDG_CACHE_HOME:-$HOME/.cache}/mvirt
mkdir -p "$cache"
docker build -t "$image" -f Dockerfile .
# mkosi builds the rootfs in user namespaces: the default seccomp and AppArmor profiles forbid them.
exec docker run --rm --user "$(id -u):$(id -g)" \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  -v "$PWD:$PWD" -w "$PWD" -v "$cache:$cache" -e MVIRT_CACHE_DIR="$cache" \
  "$image" make "${@:-iso}"
