#!/usr/bin/env bash
# End-to-end test of confronta-sync with a real Django project: uploads over HTTP to a gunicorn
# server, the sidecar moving the files to S3, presigned downloads, a correction, and one check in
# headless Chromium. See tests/e2e/README.md.
#
#   tests/e2e/run.sh [pytest args...]
#
# Needs: the built binary (CONFRONTA_SYNC_BIN, default target/debug/confronta-sync), PostgreSQL
# (CONFRONTA_TEST_PG_URL, default postgres://root@127.0.0.1:5432/test; a database of its own is
# created and dropped), Python 3.9+ and, for the browser check, Debian's chromium and
# chromium-driver (installed with apt-get when missing). Uses the S3 server named by
# CONFRONTA_TEST_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY/_BUCKET when set, else starts the S3 test server with
# scripts/s3-test-server.sh on CONFRONTA_E2E_S3_PORT (default 39200).
# CONFRONTA_E2E_DJANGO=4.2.30 runs against that Django instead of the pinned one.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE_DIR=${CONFRONTA_SYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/confronta-sync}
BIN=${CONFRONTA_SYNC_BIN:-$ROOT/target/debug/confronta-sync}
PG_URL=${CONFRONTA_TEST_PG_URL:-postgres://root@127.0.0.1:5432/test}
ARTIFACTS=$HERE/artifacts
export PYTHONDONTWRITEBYTECODE=1

say() { echo "e2e: $*" >&2; }

# A loud skip, allowed only where Python or Chromium cannot be installed, and never in CI.
skip_loudly() {
  local why=$1
  if [[ ${CI:-} == true ]]; then
    say "FAILED: $why (CI must be able to install it)"
    exit 1
  fi
  {
    echo
    echo "############################################################################"
    echo "##  END-TO-END TEST SKIPPED: $why"
    echo "##  The Django + sidecar + browser check did NOT run."
    echo "############################################################################"
    echo
  } >&2
  exit 0
}

apt_install() {
  command -v apt-get > /dev/null || return 1
  if [[ ! -f $CACHE_DIR/.apt-updated ]] || [[ -n $(find "$CACHE_DIR/.apt-updated" -mmin +720 2> /dev/null) ]]; then
    apt-get update -qq > /dev/null || return 1
    mkdir -p "$CACHE_DIR" && touch "$CACHE_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > /dev/null
}

# --- what the test needs -------------------------------------------------------------------

[[ -x $BIN ]] || { say "no binary at $BIN: build it (cargo build) or set CONFRONTA_SYNC_BIN"; exit 1; }
command -v psql > /dev/null || apt_install postgresql-client || { say "psql is missing"; exit 1; }
psql "$PG_URL" -qtAc 'select 1' > /dev/null 2>&1 || { say "PostgreSQL is not answering at $PG_URL"; exit 1; }

# The cached venv (requirements.txt plus the companion app), shared with the companion app's own
# tests; venv.sh exits 3 when Python or PyPI cannot be had.
set +e
VENV=$("$HERE/venv.sh")
venv_rc=$?
set -e
if ((venv_rc == 3)); then
  skip_loudly "Python 3.9+ or the Python packages cannot be installed"
elif ((venv_rc != 0)); then
  say "tests/e2e/venv.sh failed ($venv_rc)"
  exit 1
fi

if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
  say "installing Debian's chromium and chromium-driver"
  apt_install chromium chromium-driver || skip_loudly "chromium and chromium-driver cannot be installed"
fi
CHROMIUM=${CONFRONTA_E2E_CHROMIUM:-$(command -v chromium)}
CHROMEDRIVER=${CONFRONTA_E2E_CHROMEDRIVER:-$(command -v chromedriver)}

# --- services ------------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/confronta-e2e.XXXXXX")
DB_NAME="cs_e2e_$(date +%s)_$$"
S3_DIR=
started_s3=false
db_created=false

cleanup() {
  set +e
  # Servers the tests started and could not stop themselves (the run was interrupted).
  for pidfile in "$WORK"/pids/*.pid; do
    [[ -f $pidfile ]] && kill -- "-$(cat "$pidfile")" 2> /dev/null
  done
  if $started_s3; then
    cp "$S3_DIR/server.log" "$WORK/logs/s3-server.log" 2> /dev/null
    "$ROOT/scripts/s3-test-server.sh" stop "$S3_DIR" > /dev/null 2>&1
  fi
  if $db_created; then
    psql "$PG_URL" -qc "drop database if exists \"$DB_NAME\" with (force)" > /dev/null 2>&1
  fi
  if [[ -d $WORK/logs ]]; then
    mkdir -p "$ARTIFACTS/logs"
    cp "$WORK"/logs/* "$ARTIFACTS/logs/" 2> /dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/logs" "$WORK/pids" "$ARTIFACTS"
rm -rf "$ARTIFACTS/logs"

# Databases left by an earlier run that was killed before it could drop its own.
psql "$PG_URL" -qtAc "select datname from pg_database where datname like 'cs\\_e2e\\_%'" |
  while read -r stale; do
    pid=${stale##*_}
    if ! kill -0 "$pid" 2> /dev/null; then
      psql "$PG_URL" -qc "drop database if exists \"$stale\" with (force)" > /dev/null 2>&1 || true
    fi
  done
psql "$PG_URL" -qc "create database \"$DB_NAME\"" > /dev/null
db_created=true

if [[ -z ${CONFRONTA_TEST_S3_ENDPOINT:-} ]]; then
  S3_DIR=$WORK/s3
  started_s3=true
  while IFS='=' read -r key value; do export "$key=$value"; done < <(
    CONFRONTA_TEST_S3_PORT=${CONFRONTA_E2E_S3_PORT:-39200} "$ROOT/scripts/s3-test-server.sh" start "$S3_DIR"
  )
  [[ -n ${CONFRONTA_TEST_S3_ENDPOINT:-} ]] || { say "the S3 test server did not start"; exit 1; }
fi

export E2E_WORK=$WORK E2E_ARTIFACTS=$ARTIFACTS E2E_PG_URL=$PG_URL E2E_DB_NAME=$DB_NAME
export CONFRONTA_SYNC_BIN=$BIN E2E_CHROMIUM=$CHROMIUM E2E_CHROMEDRIVER=$CHROMEDRIVER
export CONFRONTA_TEST_S3_ENDPOINT CONFRONTA_TEST_S3_ACCESS_KEY CONFRONTA_TEST_S3_SECRET_KEY CONFRONTA_TEST_S3_BUCKET

# --- the tests -----------------------------------------------------------------------------

say "Django $("$VENV/bin/python" -c 'import django; print(django.get_version())'), $("$CHROMIUM" --version 2> /dev/null | head -1), S3 at $CONFRONTA_TEST_S3_ENDPOINT, database $DB_NAME"
set +e
(cd "$HERE" && "$VENV/bin/python" -m pytest -c "$HERE/pytest.ini" -p no:cacheprovider "$@") 2>&1 |
  tee "$WORK/logs/pytest.out"
rc=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* =+$' "$WORK/logs/pytest.out" | tail -1)
cleanup
trap - EXIT
if ((rc == 5)); then
  say "pytest collected no tests"
  rc=1
fi
echo "${summary:-pytest printed no summary line (exit code $rc)}"
exit "$rc"
