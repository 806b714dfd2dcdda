#!/usr/bin/env bash
# The whole test suite (`make test`, and what CI runs): set-up, lint, pytest (controller-side and
# the service's, against real Redis/PostgreSQL/nginx started on 127.0.0.1), the benchmarks' smoke
# mode, then every Molecule scenario on real systemd containers. Every stage runs even when an
# earlier one failed; the summary names the failures; the exit code is non-zero if any failed.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
require_root
bash scripts/setup.sh || die "set-up failed (see above); nothing was tested"

results=()
failed=0
stage() {  # name command...
  local name=$1 start rc
  shift
  start=$(date +%s)
  say "stage $name: $*"
  "$@"
  rc=$?
  results+=("$(printf '%-12s %-6s %5ss' "$name" "$([ $rc = 0 ] && echo ok || echo FAILED)" $(( $(date +%s) - start )))")
  [ $rc = 0 ] || failed=$((failed + 1))
}

stage lint bash scripts/lint.sh
stage pytest pytest
stage bench-smoke python bench/run.py --smoke
# Three scenarios at a time: they spend most of their time waiting on their containers (apt,
# systemd, the tests' own waits), so three keep the 2 cores busy without starving one.
stage molecule env WSNOTIFY_MOLECULE_JOBS="${WSNOTIFY_MOLECULE_JOBS:-3}" bash scripts/test-molecule.sh

echo
echo "==> summary"
printf '    %s\n' "${results[@]}"
echo "stages: $(( ${#results[@]} - failed )) passed, $failed failed"
[ $failed = 0 ]
