#!/usr/bin/env bash
# The whole test suite, one tier after another, each with a header, pytest's
# progress counter and its duration; exits non-zero if any tier failed.
# Tiers (markers in pyproject.toml): fast, chaos, postgres, redis, train, browser, e2e; every
# test belongs to exactly one. Extra arguments go to every pytest call.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${DISTILL_VENV:-.venv}/bin/python"
TIERS=(
  "fast|not (e2e or train or browser or chaos or postgres or redis)|unit and in-process app tests"
  "chaos|chaos and not (e2e or train or browser or postgres or redis)|fault tests with subprocesses and signals"
  "postgres|postgres and not (e2e or train or browser or redis)|replicas on a real PostgreSQL cluster the tests start"
  "redis|redis and not (e2e or train or browser)|shared limits on a real redis-server the tests start"
  "train|train and not (e2e or browser)|real TRL/PEFT training on the CPU"
  "browser|browser and not e2e|the dashboard in headless Chromium"
  "e2e|e2e|against a real vLLM student on the CPU (starts one, about a minute)"
)
T0=$SECONDS
failed=()
summary=()
for tier in "${TIERS[@]}"; do
  IFS='|' read -r name expr what <<<"$tier"
  t=$SECONDS
  echo "[test] tier $name: $what"
  log=$(mktemp)
  "$PY" -m pytest -q -ra -o console_output_style=count -m "$expr" "$@" | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E "(passed|failed|error|skipped|deselected).* in [0-9.]+s" "$log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')
  rm -f "$log"
  # 5: no test collected for this tier (e.g. a -k filter); not a failure.
  if [[ $rc -ne 0 && $rc -ne 5 ]]; then failed+=("$name"); fi
  summary+=("$name: ${line:-no tests} ($((SECONDS - t)) s)")
  echo "[test] tier $name: exit $rc in $((SECONDS - t)) s"
done
echo "[test] summary"
printf '[test]   %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "[test] FAILED tiers: ${failed[*]} ($((SECONDS - T0)) s)"
  exit 1
fi
echo "[test] all tiers passed in $((SECONDS - T0)) s"
