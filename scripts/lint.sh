#!/usr/bin/env bash
# Lint everything: YAML, Ansible (production profile), Python. Non-zero on any finding.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
rc=0
say "yamllint"; yamllint -s . || rc=1
say "ansible-lint (production profile)"; ansible-lint -q || rc=1
say "ruff"; ruff check . || rc=1; ruff format --check . || rc=1
exit $rc
