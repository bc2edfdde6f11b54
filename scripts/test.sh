#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, and the integration tests against real
# PostgreSQL (127.0.0.1:5432) and a garage S3 server this script builds (once, cached) and
# starts on 127.0.0.1, then stops.
set -euo pipefail
cd "$(dirname "$0")/.."

export CONFRONTA_TEST_PG_URL=${CONFRONTA_TEST_PG_URL:-postgres://root@127.0.0.1:5432/test}

# Debian tools the tests use, installed when missing (this needs root, as on CI): psql, curl,
# clamd plus sigtool for the virus-scan tests (they build a one-signature database), rclone and
# GNU time for the benchmarks, promtool for the alert rules.
need_apt=()
command -v psql > /dev/null || need_apt+=(postgresql-client)
# The journal and the SQLite backend link Debian's SQLite (kept patched by the distribution).
dpkg -s libsqlite3-dev > /dev/null 2>&1 || need_apt+=(libsqlite3-dev)
command -v curl > /dev/null || need_apt+=(curl)
command -v clamd > /dev/null || need_apt+=(clamav-daemon)
command -v sigtool > /dev/null || need_apt+=(clamav)
# rclone and GNU time for the benchmark harness's quick run.
command -v rclone > /dev/null || need_apt+=(rclone)
[[ -x /usr/bin/time ]] || need_apt+=(time)
# strace, for the test that the hashed file is made durable on its own descriptor.
command -v strace > /dev/null || need_apt+=(strace)
if ((${#need_apt[@]})); then
  echo "installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" > /dev/null
fi
# promtool, for the alert rules' unit tests (packaging/monitoring/test-rules.sh), comes with
# Debian's prometheus package; only the tool is wanted, so not the node exporter it recommends.
if ! command -v promtool > /dev/null; then
  echo "installing prometheus (for promtool)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus > /dev/null
fi

if ! psql "$CONFRONTA_TEST_PG_URL" -qtAc 'select 1' > /dev/null 2>&1; then
  echo "PostgreSQL is not answering at $CONFRONTA_TEST_PG_URL" >&2
  exit 1
fi
# Schemas left by an earlier run that was killed before its tests could clean up.
psql "$CONFRONTA_TEST_PG_URL" -qtAc "select nspname from pg_namespace where nspname like 'cs\\_test\\_%'" |
  while read -r schema; do psql "$CONFRONTA_TEST_PG_URL" -qc "drop schema \"$schema\" cascade" > /dev/null; done

# The test servers listen on fixed ports 39000-39799, and SeaweedFS's gRPC twins 10000 above,
# inside Linux's ephemeral range: an outgoing connection that happened to get one of them stopped a
# server from binding it (seen once: the quick benchmark's SeaweedFS admin port). Reserve both
# ranges where we may (root, as on CI).
sysctl -qw net.ipv4.ip_local_reserved_ports=39000-39999,49000-49999 2> /dev/null || true

s3_dir=$(mktemp -d)
trap 'scripts/s3-test-server.sh stop "$s3_dir"; rm -rf "$s3_dir"' EXIT
while IFS='=' read -r key value; do export "$key=$value"; done < <(scripts/s3-test-server.sh start "$s3_dir")

# CONFRONTA_TEST_ONLY_CARGO=1 (used by the report scripts) runs only `cargo test`.
if [[ -z ${CONFRONTA_TEST_ONLY_CARGO:-} ]]; then
  cargo fmt --check
  cargo clippy --all-targets --features failpoints -- -D warnings
fi
log=$(mktemp)
trap 'scripts/s3-test-server.sh stop "$s3_dir"; rm -rf "$s3_dir" "$log"' EXIT
status=0
cargo test --no-fail-fast --features failpoints "$@" 2>&1 | tee "$log" || status=$?
# The package and the Django end-to-end run use the binaries cargo test just built.
if [[ -z ${CONFRONTA_TEST_ONLY_CARGO:-} ]]; then
  # The alert rules, one promtool unit test per alert, and the dashboard's JSON.
  packaging/monitoring/test-rules.sh 2>&1 | tee -a "$log" || status=$?
  tests/deb/run.sh 2>&1 | tee -a "$log" || status=$?
  # The Django companion app's own tests (SQLite, no services), in the venv the e2e run uses.
  contrib/django/tests/run.sh 2>&1 | tee -a "$log" || status=$?
  tests/e2e/run.sh 2>&1 | tee -a "$log" || status=$?
  # The benchmark harness in its quick mode, on the debug build, so it cannot rot; its figures
  # are not the ones that count (bench/results/latest.md is) and missed targets never fail it.
  BENCH_BINARY=$PWD/target/debug/confronta-sync BENCH_BINARY_NOTE="debug build of the test run" \
    bench/run.sh --quick --no-build 2>&1 | tail -n 3 | tee -a "$log" || status=$?
fi
# One closing line over every runner, so the total is not hidden behind the last one. pytest's
# summary is repeated at the end of the e2e output, so only its last one counts.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     /^(deb|django|monitoring): [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
     /^=+ .*(passed|failed).* in [0-9.]+s/ { pp = 0; pf = 0; for (i = 1; i <= NF; i++) { if ($i ~ /^passed,?$/) pp = $(i-1); if ($i ~ /^(failed|errors?),?$/) pf += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p + pp, f + pf }' "$log"
exit "$status"
