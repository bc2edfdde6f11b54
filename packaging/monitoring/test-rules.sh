#!/usr/bin/env bash
# Checks the alert rules and the dashboard, and runs the rules' unit tests with `promtool test
# rules`: one file per alert in tests/, named after it, and every alert must have one (a test
# file whose alert is gone fails too). Needs promtool (Debian's `prometheus` package; scripts/
# test.sh installs it). Prints "monitoring: N passed, N failed" last.
set -uo pipefail
cd "$(dirname "$0")"

passed=0
failed=0
check() {
  local name=$1
  shift
  local output
  if output=$("$@" 2>&1); then
    passed=$((passed + 1))
    echo "ok      $name"
  else
    failed=$((failed + 1))
    echo "FAILED  $name"
    printf '%s\n' "$output" | sed 's/^/        /'
  fi
}

rules=confronta-sync.rules.yml
check "promtool check rules $rules" promtool check rules "$rules"
check "the dashboard is JSON" python3 -m json.tool confronta-sync.dashboard.json
alerts=$(sed -n 's/^ *- alert: //p' "$rules")
for alert in $alerts; do
  check "promtool test rules tests/$alert.yml" promtool test rules "tests/$alert.yml"
done
for test in tests/*.yml; do
  alert=$(basename "$test" .yml)
  check "tests/$alert.yml tests an alert that exists" grep -qx "$alert" <<< "$alerts"
done

echo "monitoring: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
