#!/usr/bin/env bash
# The whole test suite, one tier after another, each with a header, pytest's
# progress counter and its duration; exits non-zero if any tier failed.
# Tiers (markers in pyproject.toml): fast, fuzz, chaos, postgres, redis, train, browser, e2e;
# every test belongs to exactly one. Extra arguments go to every pytest call. The fast tier
# runs on DISTILL_TEST_WORKERS processes (pytest-xdist, default 2: the tests are CPU-bound,
# one core each); the others are timing-sensitive or heavy and run one test at a time.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${DISTILL_VENV:-.venv}/bin/python"
WORKERS="${DISTILL_TEST_WORKERS:-2}"
ALL="e2e or train or browser or chaos or postgres or redis or fuzz"
TIERS=(
  "fast|not ($ALL)|unit and in-process app tests, on $WORKERS workers|-n $WORKERS --dist loadfile"
  "fuzz|fuzz and not (e2e or train or browser or chaos or postgres or redis)|schemathesis against the app's OpenAPI schema|"
  "chaos|chaos and not (e2e or train or browser or postgres or redis)|fault tests with subprocesses and signals|"
  "postgres|postgres and not (e2e or train or browser or redis)|replicas on a real PostgreSQL cluster the tests start|"
  "redis|redis and not (e2e or train or browser)|shared limits on a real redis-server the tests start|"
  "train|train and not (e2e or browser)|real TRL/PEFT training on the CPU|"
  "browser|browser and not e2e|the dashboard in headless Chromium|"
  "e2e|e2e|against a real vLLM student on the CPU (starts one, about a minute)|"
)
T0=$SECONDS
failed=()
summary=()
for tier in "${TIERS[@]}"; do
  IFS='|' read -r name expr what extra <<<"$tier"
  t=$SECONDS
  echo "[test] tier $name: $what"
  log=$(mktemp)
  # shellcheck disable=SC2086 # $extra is a list of options
  "$PY" -m pytest -q -ra -o console_output_style=count -m "$expr" $extra "$@" | tee "$log"
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
