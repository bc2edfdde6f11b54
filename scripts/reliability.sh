#!/usr/bin/env bash
# The large variant of the reliability harness (tests/reliability.rs, issue 5): crash injection at
# every failpoint and at random instants over 1,000 files, the S3 server stopped for 30 s,
# PostgreSQL connections cut and refused, a storage node of a replicated cluster lost, several
# sidecars at once. Writes the table to docs/reliability.md.
#
#   scripts/reliability.sh                 the large variant (about 15-20 minutes on 2 cores)
#   scripts/reliability.sh kill_random     only the cases whose name contains kill_random
#
# The quick variant of the same cases runs with the README's test command (scripts/test.sh) and
# writes its table under target/reliability/. Environment:
#   CONFRONTA_RELIABILITY=quick            run the quick variant instead
#   CONFRONTA_RELIABILITY_REPORT=PATH      where the table goes (default docs/reliability.md)
#   CONFRONTA_RELIABILITY_SEED=N           replay the random choices of an earlier run
#   CONFRONTA_RELIABILITY_S3_PORT=P        port of the shared S3 server this script starts (39400)
#   CONFRONTA_TEST_S3_SERVER=garage        run every case on garage instead of SeaweedFS
#   CONFRONTA_RELIABILITY_KEEP_LOGS=1      keep every case's daemon logs under target/reliability/failed/
# Needs PostgreSQL on 127.0.0.1:5432 (CONFRONTA_TEST_PG_URL); scripts/s3-test-server.sh installs
# the S3 server. The cases that stop a server start their own (a SeaweedFS single node or
# cluster, see tests/reliability_support/s3server.rs) on 127.0.0.1:39410-39499.
set -euo pipefail
cd "$(dirname "$0")/.."

export CONFRONTA_TEST_PG_URL=${CONFRONTA_TEST_PG_URL:-postgres://root@127.0.0.1:5432/test}
export CONFRONTA_RELIABILITY=${CONFRONTA_RELIABILITY:-large}
export CONFRONTA_RELIABILITY_REPORT=${CONFRONTA_RELIABILITY_REPORT:-docs/reliability.md}

if ! psql "$CONFRONTA_TEST_PG_URL" -qtAc 'select 1' > /dev/null 2>&1; then
  echo "PostgreSQL is not answering at $CONFRONTA_TEST_PG_URL" >&2
  exit 1
fi

s3_dir=$(mktemp -d)
trap 'CONFRONTA_TEST_S3_PORT=$s3_port scripts/s3-test-server.sh stop "$s3_dir"; rm -rf "$s3_dir"' EXIT
s3_port=${CONFRONTA_RELIABILITY_S3_PORT:-39400}
while IFS='=' read -r key value; do export "$key=$value"; done < <(CONFRONTA_TEST_S3_PORT=$s3_port scripts/s3-test-server.sh start "$s3_dir")

# One case at a time: the large cases are heavy enough for two cores on their own.
started=$(date +%s)
status=0
cargo test --features failpoints --test reliability -- --test-threads=1 "$@" || status=$?
echo "reliability ($CONFRONTA_RELIABILITY): $(( $(date +%s) - started )) s; table in $CONFRONTA_RELIABILITY_REPORT"
exit "$status"
