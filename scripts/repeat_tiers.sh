#!/usr/bin/env bash
# Runs the timing-sensitive tiers N times in a row and stops at the first failure: the check
# that they do not flake on a loaded machine (run it beside a benchmark, e.g.
# `while make bench-quick; do :; done`). Prints each round's result and duration.
#   scripts/repeat_tiers.sh [N] [MARKER EXPRESSION]   (default: 10 "postgres or chaos")
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${DISTILL_VENV:-.venv}/bin/python"
N="${1:-10}"
EXPR="${2:-(postgres or chaos) and not (e2e or train or browser or redis)}"
T0=$SECONDS
for ((i = 1; i <= N; i++)); do
  t=$SECONDS
  log=$(mktemp)
  "$PY" -m pytest -q -p no:cacheprovider -m "$EXPR" >"$log" 2>&1
  rc=$?
  line=$(tail -1 "$log")
  echo "[repeat] round $i/$N: exit $rc in $((SECONDS - t)) s: $line"
  if [[ $rc -eq 0 ]]; then rm -f "$log"; fi
  if [[ $rc -ne 0 ]]; then
    grep -E "^(FAILED|ERROR)" "$log"
    echo "[repeat] FAILED at round $i ($((SECONDS - T0)) s); its log: $log"
    exit 1
  fi
done
echo "[repeat] $N rounds passed in $((SECONDS - T0)) s"
