#!/usr/bin/env bash
# Idempotent set-up of this machine for deploying and testing: Debian packages, the pinned
# controller toolchain in .venv, test-only collections, a project-local containers.conf.
# Each step is skipped when its inputs have not changed, so a second run takes a few seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root

# --- Debian packages -----------------------------------------------------------------------
# podman/runc/debootstrap: the systemd test host; openssh-client: the local deploy's connection.
# nginx/redis/postgresql/openssl: real servers the
# controller-side tests start on 127.0.0.1. nodejs/npm: the Node `ws` baseline of the benchmarks.
# prometheus: its promtool checks and unit-tests monitoring/wsnotify-alerts.yml (tests/test_alert_rules.py).
# chromium/chromium-driver: the headless browser that tests the diagnostics page (molecule/selfcheck).
PKGS=(podman runc debootstrap openssh-client nginx redis-server postgresql openssl ca-certificates nodejs npm python3-venv prometheus chromium chromium-driver)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from elsewhere (nodesource, nvm); accept any node >= 18 already on PATH.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
# python3-venv only matters when the interpreter cannot make a venv by itself.
if python3 -c 'import venv, ensurepip' 2>/dev/null; then missing=("${missing[@]/python3-venv}"); fi
read -r -a missing <<<"${missing[*]:-}"
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$CACHE"
  apt-get update -qq >"$CACHE/apt.log" 2>&1 \
    || die "apt-get update failed (see $CACHE/apt.log): cannot install ${missing[*]} without Debian's package mirror"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$CACHE/apt.log" 2>&1 \
    || die "could not install ${missing[*]} with apt-get (see $CACHE/apt.log); install them by hand and re-run"
  # The packages' postinst may start servers through init scripts; tests start their own.
  for s in nginx redis-server postgresql prometheus; do service "$s" stop >/dev/null 2>&1 || true; done
fi
command -v podman >/dev/null || die "podman is not installed and could not be installed: apt-get install podman runc"

# --- Controller toolchain ------------------------------------------------------------------
stamp() { { cat "$@" 2>/dev/null || true; } | sha256sum | cut -c1-16; }
mkdir -p "$CACHE"
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
want=$(stamp requirements.txt service/requirements.lock bench/requirements.txt service/pyproject.toml)
# The stamp lives inside the venv: a venv deleted or recreated is then always filled again.
if [ "$(cat "$VENV/.wsnotify-stamp" 2>/dev/null)" != "$want" ]; then
  say "installing the pinned toolchain into .venv"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
  # The service's runtime dependencies, exactly as locked (with hashes), then the service itself.
  "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r service/requirements.lock
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e service
  [ -f bench/requirements.txt ] && "$VENV/bin/pip" install -q --disable-pip-version-check -r bench/requirements.txt
  echo "$want" >"$VENV/.wsnotify-stamp"
fi

# --- The benchmarks' Node baseline (ws, pinned by bench/package-lock.json) ------------------
if [ -f bench/package-lock.json ]; then
  want=$(stamp bench/package-lock.json)
  if [ "$(cat "$CACHE/npm.stamp" 2>/dev/null)" != "$want" ] || [ ! -d bench/node_modules ]; then
    say "installing the benchmarks' Node baseline (npm ci)"
    npm ci --prefix bench --no-audit --no-fund --silent || die "npm ci in bench/ failed; is the npm registry reachable?"
    echo "$want" >"$CACHE/npm.stamp"
  fi
fi

# --- Test-only collections, from PyPI's `ansible` wheel (Galaxy is unreachable) ------------
ANSIBLE_WHEEL_VERSION=12.3.0
COLLECTIONS=(containers/podman ansible/posix)
if [ "$(cat "$ROOT/.collections/stamp" 2>/dev/null)" != "$ANSIBLE_WHEEL_VERSION ${COLLECTIONS[*]}" ]; then
  say "extracting ${COLLECTIONS[*]} from ansible==$ANSIBLE_WHEEL_VERSION"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" "ansible==$ANSIBLE_WHEEL_VERSION"
  rm -rf "$ROOT/.collections"; mkdir -p "$ROOT/.collections"
  "$VENV/bin/python" - "$tmp"/ansible-*.whl "$ROOT/.collections" "${COLLECTIONS[@]}" <<'PY'
import sys, zipfile
wheel, dest, *wanted = sys.argv[1:]
prefixes = tuple(f"ansible_collections/{c}/" for c in wanted)
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.startswith(prefixes)]
    z.extractall(dest, members)
print(f"    {len(members)} files")
PY
  echo "$ANSIBLE_WHEEL_VERSION ${COLLECTIONS[*]}" >"$ROOT/.collections/stamp"
fi

# --- podman configuration, project-local (never /etc) --------------------------------------
# runc: crun refuses this machine's hybrid cgroup layout. ulimits must stay within the hard
# limits or every container start fails with "setrlimit ... Operation not permitted".
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
cat >"$CACHE/containers.conf.new" <<CONF
# Generated by scripts/setup.sh; podman reads it through CONTAINERS_CONF.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv "$CACHE/containers.conf.new" "$CONTAINERS_CONF"

say "setup done: $(ansible --version | head -1), $(podman --version)"
