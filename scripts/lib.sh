# Shared shell helpers for scripts/*.sh. Sourced, not executed.
# Every script works from the project root and uses the project-local toolchain.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"
export PATH="$VENV/bin:$PATH"
# podman reads this file instead of /etc/containers/containers.conf (written by setup.sh).
export CONTAINERS_CONF="$CACHE/containers.conf"
# Molecule's dependency step would try Galaxy without this in the calling environment.
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.collections"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
export ANSIBLE_ROLES_PATH="$ROOT/roles"
export ANSIBLE_LIBRARY="$ROOT/library"
export ANSIBLE_MODULE_UTILS="$ROOT/module_utils"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"

# The one base image every test container and the local deploy target run.
IMAGE_REPO="localhost/wsnotify-debian12"

die() { echo "ERROR: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# Containers have fixed names (wsnotify-local, the Molecule platforms) and publish fixed loopback
# ports, so two checkouts on one machine must not create them at the same time: whatever creates
# containers holds this machine-wide lock while it does (flock; released when the holder exits).
CONTAINERS_LOCK=${WSNOTIFY_CONTAINERS_LOCK:-/run/lock/wsnotify-containers.lock}
hold_containers_lock() {
  exec 8>"$CONTAINERS_LOCK"
  if ! flock -n 8; then
    say "waiting for another run on this machine to release $CONTAINERS_LOCK (test containers in use)"
    flock 8
  fi
}

require_root() {
  [ "$(id -u)" = 0 ] || die "run this as root (it installs Debian packages and runs podman containers); try: sudo $0"
}
