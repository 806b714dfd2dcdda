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

# The Debian suites the roles support, and the base image of each (scripts/image.sh builds it).
# Test containers and the local deploy target run trixie unless told otherwise.
SUPPORTED_SUITES="trixie bookworm"
DEFAULT_SUITE=trixie
image_repo() {  # suite -> image repository name
  case " $SUPPORTED_SUITES " in
    *" $1 "*) echo "localhost/wsnotify-debian-$1" ;;
    *) die "unsupported Debian suite '$1': use one of: $SUPPORTED_SUITES" ;;
  esac
}

die() { echo "ERROR: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# Containers have fixed names (wsnotify-local, each Molecule scenario's platforms), so two runs on
# one machine (two checkouts, or two scenarios at once) must not create the same one at the same
# time: whatever creates containers holds a machine-wide lock per container name while it does
# (flock, taken in sorted order so two holders never deadlock; released when the holder exits).
# Different names never wait for each other, which lets scenarios run in parallel.
CONTAINERS_LOCK_DIR=${WSNOTIFY_CONTAINERS_LOCK_DIR:-/run/lock}
CONTAINERS_LOCK_FDS=()
hold_containers_lock() {  # container name...
  local name fd
  for name in $(printf '%s\n' "$@" | sort -u); do
    exec {fd}>"$CONTAINERS_LOCK_DIR/wsnotify-container-$name.lock"
    CONTAINERS_LOCK_FDS+=("$fd")
    if ! flock -n "$fd"; then
      say "waiting for another run on this machine to release container $name ($CONTAINERS_LOCK_DIR/wsnotify-container-$name.lock)"
      flock "$fd"
    fi
  done
}
# Runs a command without the lock descriptors: a container's conmon outlives the script that
# started it and would otherwise hold the lock for as long as the container runs.
without_containers_lock() {
  (
    for fd in "${CONTAINERS_LOCK_FDS[@]}"; do eval "exec $fd>&-"; done
    exec "$@"
  )
}

# The project-local deploy key (git-ignored, this machine only): the local deploy target and the
# Molecule containers authorize it; scripts/container-sshd.sh hands it to a container's sshd.
SSH_DIR="$CACHE/ssh"
SSH_KEY="$SSH_DIR/id_ed25519"
ensure_ssh_key() {
  command -v ssh-keygen >/dev/null && command -v ssh >/dev/null \
    || die "ssh and ssh-keygen are missing: apt-get install openssh-client, then re-run"
  mkdir -p "$SSH_DIR" && chmod 700 "$SSH_DIR"
  if [ ! -f "$SSH_KEY" ]; then
    say "generating the local deploy key $SSH_KEY (git-ignored, this machine only)"
    ssh-keygen -q -t ed25519 -N '' -C "wsnotify local deploy key" -f "$SSH_KEY"
  fi
  chmod 600 "$SSH_KEY"
}

# Downloaded .debs, kept on this machine so each package is fetched once. apt locks the archive
# directory it downloads into, so every container gets its own (APT_CACHE/hosts/<name>), seeded
# with hard links to the pool (APT_CACHE/*.deb) and harvested back into it afterwards.
APT_CACHE="$CACHE/apt-archives"
apt_cache_for() {  # container name -> prints its archive directory, seeded from the pool
  local dir="$APT_CACHE/hosts/$1"
  mkdir -p "$dir/partial"
  find "$APT_CACHE" -maxdepth 1 -name '*.deb' -exec cp -l -n -t "$dir" {} +
  echo "$dir"
}
apt_cache_harvest() {  # every container's complete downloads back into the pool
  mkdir -p "$APT_CACHE/hosts"
  find "$APT_CACHE/hosts" -mindepth 2 -maxdepth 2 -name '*.deb' -exec cp -l -n -t "$APT_CACHE" {} +
}

require_root() {
  [ "$(id -u)" = 0 ] || die "run this as root (it installs Debian packages and runs podman containers); try: sudo $0"
}
