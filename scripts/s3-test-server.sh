#!/usr/bin/env bash
# Builds (once, into a cache) and runs a single-node garage S3 server on 127.0.0.1 for the tests,
# the try-it demo and the benchmarks. Production is MinIO; garage is the S3-compatible server
# that builds on stable Rust here and passes the checks the daemon relies on.
#
#   scripts/s3-test-server.sh build          build garage into the cache if it is not there
#   scripts/s3-test-server.sh start DIR      start a server with its data in DIR; prints env lines
#   scripts/s3-test-server.sh stop DIR       stop the server started with DIR
#
# Ports: CONFRONTA_TEST_S3_PORT (default 39000) and the two next ones for RPC and admin.
set -euo pipefail

GARAGE_VERSION=2.5.0
CACHE_DIR=${CONFRONTA_SYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/confronta-sync}
GARAGE_ROOT=$CACHE_DIR/garage-$GARAGE_VERSION
GARAGE=$GARAGE_ROOT/bin/garage

# Fixed test credentials: this server only ever listens on 127.0.0.1 and holds test data.
ACCESS_KEY=GK0123456789abcdef01234567
SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
BUCKET=${CONFRONTA_TEST_S3_BUCKET:-telefonica-crea-online}
PORT=${CONFRONTA_TEST_S3_PORT:-39000}

build() {
  if [[ -x $GARAGE ]]; then
    return
  fi
  echo "building garage $GARAGE_VERSION into $GARAGE_ROOT (about 20 minutes on 2 cores, once per machine)" >&2
  mkdir -p "$GARAGE_ROOT"
  cargo install "garage@$GARAGE_VERSION" --locked --root "$GARAGE_ROOT" >&2
}

start() {
  local dir=$1
  build
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
    echo "something already listens on 127.0.0.1:$PORT; stop it or set CONFRONTA_TEST_S3_PORT" >&2
    exit 1
  fi
  mkdir -p "$dir/meta" "$dir/data"
  cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((PORT + 1))"
rpc_public_addr = "127.0.0.1:$((PORT + 1))"
rpc_secret = "$(printf '%064d' 7)"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$PORT"
root_domain = ".s3.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((PORT + 2))"
admin_token = "confronta-sync-test-admin"
TOML
  GARAGE_DEFAULT_ACCESS_KEY=$ACCESS_KEY \
  GARAGE_DEFAULT_SECRET_KEY=$SECRET_KEY \
  GARAGE_DEFAULT_BUCKET=$BUCKET \
  RUST_LOG=${GARAGE_LOG:-warn} \
    setsid "$GARAGE" -c "$dir/garage.toml" server --single-node --default-bucket \
    > "$dir/garage.log" 2>&1 < /dev/null &
  echo $! > "$dir/garage.pid"
  # Ready when the S3 port answers HTTP and the bucket exists (a few hundred ms).
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$PORT/"\
       && "$GARAGE" -c "$dir/garage.toml" bucket info "$BUCKET" > /dev/null 2>&1; then
      echo "CONFRONTA_TEST_S3_ENDPOINT=http://127.0.0.1:$PORT"
      echo "CONFRONTA_TEST_S3_ACCESS_KEY=$ACCESS_KEY"
      echo "CONFRONTA_TEST_S3_SECRET_KEY=$SECRET_KEY"
      echo "CONFRONTA_TEST_S3_BUCKET=$BUCKET"
      return
    fi
    if ! kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null; then
      echo "garage exited; its log:" >&2
      cat "$dir/garage.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "garage did not become ready on 127.0.0.1:$PORT; its log:" >&2
  cat "$dir/garage.log" >&2
  exit 1
}

stop() {
  local dir=$1
  [[ -f $dir/garage.pid ]] || return 0
  local pid
  pid=$(cat "$dir/garage.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/garage.pid"
}

case ${1:-} in
  build) build ;;
  start) start "${2:?usage: $0 start DIR}" ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  path) build; echo "$GARAGE" ;;
  *) echo "usage: $0 build | start DIR | stop DIR | path" >&2; exit 2 ;;
esac
