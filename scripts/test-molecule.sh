#!/usr/bin/env bash
# Run Molecule scenarios on the local systemd base images.
#   scripts/test-molecule.sh                 every scenario: each role's on Debian 13, the full stack
#                                            on Debian 13 and on Debian 12, the top-level others on 13
#   scripts/test-molecule.sh roles/redis     one role's default scenario
#   scripts/test-molecule.sh . default       a top-level scenario (molecule/<name>)
#   WSNOTIFY_SUITE=bookworm scripts/test-molecule.sh . default    the same on Debian 12
#   WSNOTIFY_MOLECULE_JOBS=N                 run up to N scenarios at once (default 1; make test: 3). Each
#                                            one's output goes to .cache/molecule-logs/ and is
#                                            printed whole when it ends.
# Prints one line of timing per scenario; exits non-zero if any scenario failed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root

JOBS=${WSNOTIFY_MOLECULE_JOBS:-1}
case $JOBS in ''|*[!0-9]*|0) die "WSNOTIFY_MOLECULE_JOBS=$JOBS: give a whole number of scenarios to run at once, 1 or more" ;; esac
# Molecule reaches its containers over SSH through scripts/container-sshd.sh (.config/molecule).
ensure_ssh_key
# Every suite's image, for scenarios that mix them (WSNOTIFY_IMAGE_<SUITE>); WSNOTIFY_IMAGE is
# the one under test.
for suite in $SUPPORTED_SUITES; do
  export "WSNOTIFY_IMAGE_${suite^^}=$(bash scripts/image.sh "$suite")"
done
export WSNOTIFY_ROOT="$ROOT"
# Each platform mounts a download directory of its own, ${WSNOTIFY_APT_CACHE}/<its name>
# (apt_cache_for in lib.sh seeds it before the scenario).
export WSNOTIFY_APT_CACHE="$APT_CACHE/hosts"

platforms() {  # molecule.yml -> its container names (as Molecule expands ${VARS} in them)
  python - "$1" <<'PY'
import os, sys, yaml
for platform in yaml.safe_load(open(sys.argv[1]))["platforms"]:
    print(os.path.expandvars(platform["name"]))
PY
}
apt_dirs() {  # molecule.yml -> the WSNOTIFY_APT_CACHE directories its platforms mount
  python - "$1" <<'PY'
import os, sys, yaml
for platform in yaml.safe_load(open(sys.argv[1]))["platforms"]:
    for volume in platform.get("volumes", []):
        if volume.startswith("${WSNOTIFY_APT_CACHE}/"):
            print(os.path.expandvars(volume.split(":")[0].removeprefix("${WSNOTIFY_APT_CACHE}/")))
PY
}

run_one() {  # suite dir scenario (in a subshell: the container locks end with it)
  local suite=$1 dir=$2 scenario=$3 start rc image_var
  image_var="WSNOTIFY_IMAGE_${suite^^}"
  [ -n "${!image_var:-}" ] || image_repo "$suite" >/dev/null  # names the supported suites
  export WSNOTIFY_SUITE=$suite  # molecule.yml may name containers by suite
  # Molecule keeps a scenario's inventory and state in a directory named by project and scenario
  # only, so the full stack on 13 and on 12 would share (and overwrite) one: each run its own.
  export MOLECULE_EPHEMERAL_DIRECTORY="$CACHE/molecule-state/$(echo "$suite $dir $scenario" | tr ' /' '__')"
  # shellcheck disable=SC2046  # one word per container name
  hold_containers_lock $(platforms "$dir/molecule/$scenario/molecule.yml")
  start=$(date +%s)
  say "molecule test: $dir ($scenario) on Debian $suite"
  for name in $(apt_dirs "$dir/molecule/$scenario/molecule.yml"); do apt_cache_for "$name" >/dev/null; done
  set +e
  (cd "$dir" && WSNOTIFY_SUITE=$suite WSNOTIFY_IMAGE=${!image_var} molecule test -s "$scenario")
  rc=$?
  set -e
  apt_cache_harvest
  echo "molecule: $dir/$scenario on $suite rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$CACHE/molecule-times.log"
  return $rc
}

if [ $# -ge 1 ]; then
  (run_one "${WSNOTIFY_SUITE:-$DEFAULT_SUITE}" "$1" "${2:-default}")
  exit
fi

# Every scenario once, the full stack (with the old outage's regressions) on every supported
# suite; the longest first, so that running several at once ends soonest (measured on this
# 2-core machine: cluster ~15 min, default ~10 min per suite, rebuild and selfcheck ~8 min).
LONGEST_FIRST="cluster default rebuild selfcheck"
runs=()
for scenario_dir in $(printf 'molecule/%s/\n' $LONGEST_FIRST) molecule/*/; do
  [ -f "$scenario_dir/molecule.yml" ] || continue
  scenario=$(basename "$scenario_dir")
  case " ${runs[*]} " in *" . $scenario "*) continue ;; esac  # listed first already
  suites=$DEFAULT_SUITE
  [ "$scenario" = default ] && suites=$SUPPORTED_SUITES
  for suite in $suites; do runs+=("$suite . $scenario"); done
done
for dir in roles/*/; do
  [ -d "$dir/molecule/default" ] && runs+=("$DEFAULT_SUITE ${dir%/} default")
done

LOGS="$CACHE/molecule-logs"
mkdir -p "$LOGS"
failed=()
declare -A running=()  # pid -> "suite dir scenario"
finish() {  # pid rc: print the run's log, record a failure
  local pid=$1 rc=$2 run=${running[$1]} log
  unset "running[$pid]"
  if [ "$JOBS" -gt 1 ]; then
    log="$LOGS/$(echo "$run" | tr ' /' '__').log"
    echo "----- $run (log: $log) -----"
    cat "$log"
  fi
  [ $rc = 0 ] || failed+=("$run")
}
for run in "${runs[@]}"; do
  # shellcheck disable=SC2086  # suite dir scenario
  if [ "$JOBS" = 1 ]; then
    (run_one $run) || failed+=("$run")
    continue
  fi
  while [ ${#running[@]} -ge "$JOBS" ]; do
    rc=0
    wait -n -p done_pid "${!running[@]}" || rc=$?
    finish "$done_pid" "$rc"
  done
  (run_one $run) >"$LOGS/$(echo "$run" | tr ' /' '__').log" 2>&1 &
  running[$!]=$run
done
for pid in "${!running[@]}"; do
  rc=0
  wait "$pid" || rc=$?
  finish "$pid" "$rc"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: FAILED scenarios: ${failed[*]}" >&2
  exit 1
fi
echo "molecule: all scenarios passed"
