#!/usr/bin/env bash
# The companion app's own tests, as the test command runs them: pytest-django on SQLite, once on
# each supported Django (the 5.2 the end-to-end suite pins, and 4.2 LTS), each in its cached venv
# (tests/e2e/venv.sh builds them once). No PostgreSQL, no S3 server, no sidecar, no browser.
# Extra arguments go to pytest. Prints one "django <version>: N passed, N failed" line per
# Django, then "django: N passed, N failed" (both summed) last, for scripts/test.sh's total.
#
# By hand, in a venv with Django, minio, pytest and pytest-django:
#   cd contrib/django && python -m pytest        # or: python tests/manage.py test
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP=$(cd "$HERE/.." && pwd)
ROOT=$(cd "$APP/../.." && pwd)
export PYTHONDONTWRITEBYTECODE=1

# "" is the Django pinned in tests/e2e/requirements.txt (5.2); the others get venvs of their own.
DJANGOS=("" "4.2.30")

total_passed=0
total_failed=0
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for django in "${DJANGOS[@]}"; do
  set +e
  VENV=$(CONFRONTA_E2E_DJANGO=$django "$ROOT/tests/e2e/venv.sh")
  rc=$?
  set -e
  if ((rc != 0)); then
    # Python or PyPI missing: loud, and a failure in CI, as in tests/e2e/run.sh.
    echo "django: the Python environment for Django ${django:-(pinned)} could not be made (tests/e2e/venv.sh exited $rc)" >&2
    if [[ ${CI:-} == true || $rc != 3 ]]; then
      echo "django: $total_passed passed, $((total_failed + 1)) failed"
      exit 1
    fi
    echo "##  DJANGO TESTS SKIPPED: no Python 3.9+ or no PyPI" >&2
    exit 0
  fi
  version=$("$VENV/bin/python" -c 'import django; print(django.get_version())')

  set +e
  # The app from this tree (pyproject's pythonpath puts it before the installed copy).
  (cd "$APP" && "$VENV/bin/python" -m pytest -q "$@") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  # pytest -q's last line: "41 passed, 24 subtests passed in 4.6s", "1 failed, 40 passed, ...".
  read -r passed failed < <(tail -n 1 "$log" | awk -F', ' '{
    for (i = 1; i <= NF; i++) {
      split($i, w, " ")
      if (w[2] == "passed") p += w[1]
      if (w[2] == "failed" || w[2] == "error" || w[2] == "errors") f += w[1]
    }
    print p + 0, f + 0 }')
  if ((rc == 5)); then
    echo "django: pytest collected no tests" >&2
    rc=1
  fi
  if ((rc != 0)) && [[ -z $failed || $failed == 0 ]]; then
    failed=1 # an error outside any test (collection, configuration)
  fi
  # Not "django: ..." (scripts/test.sh adds up every line of that form): the total comes last.
  echo "django $version: ${passed:-0} passed, ${failed:-0} failed"
  total_passed=$((total_passed + ${passed:-0}))
  total_failed=$((total_failed + ${failed:-0}))
  ((rc == 0)) || status=$rc
done
echo "django: $total_passed passed, $total_failed failed"
exit "$status"
