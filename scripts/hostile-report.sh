#!/usr/bin/env bash
# Runs the hostile-input tests (tests/hostile.rs, tests/guarantees.rs) against the real services
# and regenerates docs/hostile-inputs.md from what they observed.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf target/reports/hostile
CONFRONTA_TEST_ONLY_CARGO=1 scripts/test.sh --test hostile --test guarantees
scripts/render-report.py target/reports/hostile docs/hostile-inputs.md
