#!/usr/bin/env bash
# Run Molecule scenarios on the local systemd base image.
#   scripts/test-molecule.sh                 every scenario (each role's, then the full stack's)
#   scripts/test-molecule.sh roles/redis     one role's default scenario
#   scripts/test-molecule.sh . default       a top-level scenario (molecule/<name>)
# Prints one line of timing per scenario; exits non-zero if any scenario failed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root

hold_containers_lock
WSNOTIFY_IMAGE=$(bash scripts/image.sh)
export WSNOTIFY_IMAGE WSNOTIFY_ROOT="$ROOT"
export WSNOTIFY_APT_CACHE="$CACHE/apt-archives"
mkdir -p "$WSNOTIFY_APT_CACHE/partial"

run_one() {  # dir scenario
  local dir=$1 scenario=$2 start rc
  start=$(date +%s)
  say "molecule test: $dir ($scenario)"
  set +e
  (cd "$dir" && molecule test -s "$scenario")
  rc=$?
  set -e
  echo "molecule: $dir/$scenario rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$CACHE/molecule-times.log"
  return $rc
}

if [ $# -ge 1 ]; then
  run_one "$1" "${2:-default}"
  exit
fi

failed=()
for dir in roles/*/; do
  dir=${dir%/}
  [ -d "$dir/molecule/default" ] || continue
  run_one "$dir" default || failed+=("$dir")
done
for scenario_dir in molecule/*/; do
  [ -f "$scenario_dir/molecule.yml" ] || continue
  run_one . "$(basename "$scenario_dir")" || failed+=("$scenario_dir")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: FAILED scenarios: ${failed[*]}" >&2
  exit 1
fi
echo "molecule: all scenarios passed"
