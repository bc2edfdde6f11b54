#!/usr/bin/env bash
# The cached Python environment the Django tests share: the end-to-end suite (run.sh) and the
# companion app's own tests (contrib/django/tests/run.sh). Creates it once with requirements.txt
# (rebuilt when that file or the Django override changes), installs the companion app from
# contrib/django into it with pip (again when its files change), and prints the venv's path.
#
#   VENV=$(tests/e2e/venv.sh)         # exit 3: Python or PyPI cannot be had (the caller decides)
#
# CONFRONTA_E2E_DJANGO=4.2.30 uses that Django instead of the pinned one, in a venv of its own.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE_DIR=${CONFRONTA_SYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/confronta-sync}
DJANGO_OVERRIDE=${CONFRONTA_E2E_DJANGO:-}
VENV=${CONFRONTA_E2E_VENV:-$CACHE_DIR/e2e-venv${DJANGO_OVERRIDE:+-django-$DJANGO_OVERRIDE}}

say() { echo "venv: $*" >&2; }

apt_install() {
  command -v apt-get > /dev/null || return 1
  if [[ ! -f $CACHE_DIR/.apt-updated ]] || [[ -n $(find "$CACHE_DIR/.apt-updated" -mmin +720 2> /dev/null) ]]; then
    apt-get update -qq > /dev/null || return 1
    mkdir -p "$CACHE_DIR" && touch "$CACHE_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > /dev/null
}

PYTHON=
for candidate in python3 python3.13 python3.12 python3.11 python3.10 python3.9; do
  if command -v "$candidate" > /dev/null &&
    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2> /dev/null; then
    PYTHON=$(command -v "$candidate")
    break
  fi
done
if [[ -z $PYTHON ]]; then
  apt_install python3 python3-venv > /dev/null 2>&1 || true
  PYTHON=$(command -v python3 || true)
  [[ -n $PYTHON ]] || { say "no Python 3.9+ and it cannot be installed"; exit 3; }
fi

# Two callers may run at once (the test command runs them one after the other, but a developer
# may not): the lock keeps them from building the same venv together.
mkdir -p "$CACHE_DIR"
exec 9> "$CACHE_DIR/.e2e-venv.lock"
flock 9

req_hash=$(cat "$HERE/requirements.txt" <(echo "$DJANGO_OVERRIDE") | sha256sum | cut -c1-16)
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.requirements" 2> /dev/null) != "$req_hash" ]]; then
  say "creating the Python environment in $VENV (once; cached)"
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV" > /dev/null 2>&1; then
    apt_install python3-venv > /dev/null 2>&1 || true
    "$PYTHON" -m venv "$VENV" > /dev/null || { say "python3 -m venv does not work"; exit 3; }
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt" >&2 ||
    { say "the Python packages cannot be installed from PyPI"; exit 3; }
  if [[ -n $DJANGO_OVERRIDE ]]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "Django==$DJANGO_OVERRIDE" >&2
  fi
  echo "$req_hash" > "$VENV/.requirements"
fi

# The companion app, installed as a user would (pip), from a copy so no build files land in
# the tree; reinstalled when its files change.
app_hash=$(cd "$ROOT/contrib/django" && find . -type f -not -path '*/__pycache__/*' -not -name '*.pyc' \
  -not -path './.pytest_cache/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [[ $(cat "$VENV/.companion" 2> /dev/null) != "$app_hash" ]]; then
  build_dir=$(mktemp -d)
  cp -r "$ROOT/contrib/django" "$build_dir/src"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
    --force-reinstall "$build_dir/src" >&2
  rm -rf "$build_dir"
  echo "$app_hash" > "$VENV/.companion"
fi
echo "$VENV"
