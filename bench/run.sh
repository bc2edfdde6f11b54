#!/usr/bin/env bash
# The confronta-sync benchmark harness (issue 8). One command:
#
#   bench/run.sh [--quick] [--no-build] [--keep] [--repeats N] [--servers seaweedfs,garage]
#
# starts single-node S3 test servers (scripts/s3-test-server.sh: SeaweedFS and garage) and a
# throwaway PostgreSQL database, generates the data, runs every measurement (backlog vs rclone
# and the seed's Python path at 20 KB, 200 KB and 2 MB on each server, with the database round
# trips per file of the two that use it, watch-mode latency, hashing vs openssl, the 2 GiB
# upload vs rclone copy, memory, scaling, the operator commands on a large table, a soak),
# writes bench/results/latest.md and bench/results/latest.json, and
# stops and removes everything it started. See bench/README.md for what each number means.
#
#   --quick       small sizes, finishes in a few minutes; missed targets never fail it (CI mode)
#   --no-build    use target/release/confronta-sync as it is (default: cargo build --release)
#   --keep        keep the scratch folder (data, configs, logs) for inspection
#   --repeats N   backlog rounds: each contender runs N times per size and server, in an order
#                 rotated each round (default 3, 1 with --quick)
#   --out DIR     where results go (default bench/results; --quick writes quick.{md,json})
#   --servers L   S3 servers, comma-separated, from seaweedfs and garage (default: both when
#                 garage is installed, else seaweedfs; with --quick or --profile, seaweedfs).
#                 The backlog runs on each; every other section (and --profile) on the first.
#   --only S[,S]  run only these sections: hashing,backlog,latency,memory_big_file,scaling,
#                 operator,soak
#                 (results then go to partial.{md,json})
#
# Profiling (no results written): one --rescan of N files under a wrapper, e.g.
#   bench/run.sh --no-build --profile 500 --wrap 'strace -f -c -o /tmp/strace.txt'
#   bench/run.sh --no-build --profile 500 --wrap 'perf record -F 999 -g -o /tmp/perf.data'
#   bench/run.sh --no-build --profile 300 --wrap 'valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out'
#   bench/run.sh --no-build --profile 500 --set 'pipeline.max_in_flight=16;minio.part_size_bytes=8388608'
# --bytes B sets the file size (default 204800); --set overrides daemon config keys (TOML values).
#
# Environment: BENCH_S3_PORT (default 39300; the first server takes the next four ports too,
# the second starts 20 above),
# BENCH_PG_URL (default postgres://root@127.0.0.1:5432, trust auth; a database cs_bench_<ts> is
# created and dropped), BENCH_WORK (scratch parent, default $TMPDIR or /tmp),
# BENCH_VENV (default ~/.cache/confronta-sync/bench-venv), BENCH_BINARY (the daemon binary to
# measure, default target/release/confronta-sync; with --no-build, to compare a candidate build;
# BENCH_BINARY_NOTE says in the results where it was built from), BENCH_SOAK_S (the soak's
# length in seconds, to look into memory in less than the full run's 600), BENCH_BACKLOG_SCALE
# (multiplies the backlog's file counts, at least 10 per size: e.g. 0.2 runs 1,000 / 400 / 200
# files instead of 5,000 / 2,000 / 1,000, a shorter look at the size curve and the round trips).
#
# Exit status: 0 when every measurement ran (targets met or not), non-zero when a measurement
# itself failed (a contender errored, files were left behind, a tool is missing).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
QUICK=0
BUILD=1
KEEP=0
REPEATS=
OUT=$BENCH_DIR/results
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --repeats) REPEATS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --profile) PROFILE=$2; shift ;;
    --wrap) WRAP=$2; shift ;;
    --bytes) PBYTES=$2; shift ;;
    --set) PCONFIG=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    -h|--help) sed -n '2,43p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

S3_PORT=${BENCH_S3_PORT:-39300}
PG_BASE=${BENCH_PG_URL:-postgres://root@127.0.0.1:5432}
VENV=${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/confronta-sync/bench-venv}
WORK_PARENT=${BENCH_WORK:-${TMPDIR:-/tmp}}
STAMP=$(date +%Y%m%d%H%M%S)_$$
DB_NAME=cs_bench_$STAMP
HARNESS_STARTED=$(date +%s.%N)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for tool in rclone psql curl python3 cargo openssl /usr/bin/time; do
  if ! command -v "$tool" > /dev/null; then
    case $tool in
      rclone) echo "rclone is missing: apt-get install -y rclone" >&2 ;;
      /usr/bin/time) echo "/usr/bin/time is missing: apt-get install -y time" >&2 ;;
      *) echo "$tool is missing" >&2 ;;
    esac
    exit 3
  fi
done

# The Python side (the seed-style contender and the Django-like writer) in a cached venv.
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import minio, psycopg' 2> /dev/null; then
  log "creating the Python venv in $VENV (minio, psycopg[binary] from PyPI)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check minio 'psycopg[binary]'
fi

if [[ $BUILD == 1 ]]; then
  log "cargo build --release"
  (cd "$REPO" && cargo build --release --quiet)
fi
BINARY=${BENCH_BINARY:-$REPO/target/release/confronta-sync}
[[ -x $BINARY ]] || { echo "$BINARY is missing; run without --no-build" >&2; exit 3; }

log "building the hasher bench (bench/hasher)"
HASHER_TARGET=$REPO/target/bench-hasher
(cd "$BENCH_DIR/hasher" && CARGO_TARGET_DIR=$HASHER_TARGET cargo build --release --quiet)
HASHER=$HASHER_TARGET/release/confronta-bench-hasher
sha2_of() { awk '/^name = "sha2"$/{getline; gsub(/[" ]/,""); sub("version=",""); print}' "$1" | head -1; }
if [[ $(sha2_of "$REPO/Cargo.lock") != "$(sha2_of "$BENCH_DIR/hasher/Cargo.lock")" ]]; then
  echo "warning: the hasher bench's sha2 ($(sha2_of "$BENCH_DIR/hasher/Cargo.lock")) differs from the daemon's ($(sha2_of "$REPO/Cargo.lock")); copy Cargo.lock into bench/hasher" >&2
fi

# The backlog's figures only mean something beside a second server's (issue 16): garage joins
# whenever it is installed, but CI's quick run never waits 20 minutes to build it, and a profile
# runs on one server only.
if [[ -z ${SERVERS:-} ]]; then
  SERVERS=seaweedfs
  if [[ $QUICK == 0 && -z ${PROFILE:-} ]] && CONFRONTA_TEST_S3_SERVER=garage "$REPO/scripts/s3-test-server.sh" installed; then
    SERVERS=seaweedfs,garage
  fi
fi
IFS=',' read -r -a SERVER_KINDS <<< "$SERVERS"

WORK=$(mktemp -d "$WORK_PARENT/cs-bench.XXXXXX")
STARTED_KINDS=()
DB_CREATED=0
cleanup() {
  local status=$?
  set +e
  if [[ -n ${PY_PID:-} ]] && kill -0 "$PY_PID" 2> /dev/null; then
    kill "$PY_PID" 2> /dev/null
    wait "$PY_PID" 2> /dev/null
  fi
  for kind in "${STARTED_KINDS[@]}"; do
    CONFRONTA_TEST_S3_SERVER=$kind "$REPO/scripts/s3-test-server.sh" stop "$WORK/s3-$kind" > /dev/null 2>&1
  done
  if [[ $DB_CREATED == 1 ]]; then
    psql "$PG_BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" > /dev/null 2>&1
  fi
  if [[ $KEEP == 1 ]]; then
    log "scratch folder kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each server writes its env lines (endpoint, credentials, bucket) into its folder for bench.py.
SERVER_ARGS=()
port=$S3_PORT
for kind in "${SERVER_KINDS[@]}"; do
  dir=$WORK/s3-$kind
  log "starting the S3 test server ($kind) on 127.0.0.1:$port-$((port + 4)) in $dir"
  mkdir -p "$dir"
  STARTED_KINDS+=("$kind")
  CONFRONTA_TEST_S3_SERVER=$kind CONFRONTA_TEST_S3_PORT=$port "$REPO/scripts/s3-test-server.sh" start "$dir" > "$dir/env"
  SERVER_ARGS+=(--server "$kind" "$dir" "$(CONFRONTA_TEST_S3_SERVER=$kind "$REPO/scripts/s3-test-server.sh" path)")
  port=$((port + 20))
done

log "creating database $DB_NAME"
psql "$PG_BASE/postgres" -qc "CREATE DATABASE $DB_NAME" > /dev/null
DB_CREATED=1

ARGS=(--work "$WORK" --binary "$BINARY" --hasher "$HASHER" "${SERVER_ARGS[@]}" --pg-url "$PG_BASE/$DB_NAME" --out "$OUT"
  --repo "$REPO" --harness-started "$HARNESS_STARTED")
[[ $QUICK == 1 ]] && ARGS+=(--quick)
[[ -n $REPEATS ]] && ARGS+=(--repeats "$REPEATS")
[[ -n ${ONLY:-} ]] && ARGS+=(--only "$ONLY")
if [[ -n ${PROFILE:-} ]]; then
  ARGS+=(--profile "$PROFILE" --profile-wrap "${WRAP:-}" --profile-config "${PCONFIG:-}")
  [[ -n ${PBYTES:-} ]] && ARGS+=(--profile-bytes "$PBYTES")
fi
"$VENV/bin/python" "$BENCH_DIR/bench.py" "${ARGS[@]}" &
PY_PID=$!
wait "$PY_PID"
