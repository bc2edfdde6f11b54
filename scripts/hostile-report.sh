#!/usr/bin/env bash
# Runs the hostile-input tests (tests/refusing/hostile.rs, tests/recovery/guarantees.rs) against the real services
# and regenerates docs/hostile-inputs.md from what they observed (tests/common/report.rs writes
# it as each group of cases ends; the last one leaves the whole table).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf target/reports/hostile
CONFRONTA_HOSTILE_REPORT=docs/hostile-inputs.md CONFRONTA_TEST_ONLY_CARGO=1 scripts/test.sh --test refusing --test recovery --test matching
echo "wrote docs/hostile-inputs.md"
