#!/usr/bin/env bash
# Builds the .deb, installs it with dpkg on this machine, checks what it installed, purges it.
# Needs root (CI and the dev machines run as root). Prints "deb: N passed, N failed" last.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=target/debian-test
rm -rf "$out"
# The dev profile keeps CI fast; the release build (the default) makes the same package layout.
# After `cargo test` (scripts/test.sh) the debug binary is there already: it is packaged as it
# is (its failpoints are inert without FAILPOINTS) rather than built a second time without them.
no_build=()
[[ -x target/debug/confronta-sync ]] && no_build=(--no-build)
deb=$(packaging/build-deb.py --profile dev --fast "${no_build[@]}" --output "$out")

passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@" > /dev/null 2>&1; then
    passed=$((passed + 1))
    echo "ok      $name"
  else
    failed=$((failed + 1))
    echo "FAILED  $name"
  fi
}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

if dpkg -s confronta-sync > /dev/null 2>&1; then
  echo "confronta-sync is already installed here; refusing to touch it" >&2
  exit 1
fi
dpkg -i "$deb" > /dev/null
check "installed binary reports version $version" sh -c "/usr/bin/confronta-sync --version | grep -qx 'confronta-sync $version'"
check "config is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' confronta-sync | grep -q /etc/confronta-sync/config.toml"
check "installed sample config parses up to the database" sh -c "/usr/bin/confronta-sync --config /etc/confronta-sync/config.toml check 2>&1 | grep -q database"
check "state and log folders created" test -d /var/lib/confronta-sync -a -d /var/log/confronta-sync
check "SQL shipped" test -f /usr/share/confronta-sync/sql/add_confronta_sha256.sql
check "systemd-analyze verify accepts both units" \
  systemd-analyze verify /lib/systemd/system/confronta-sync.service /lib/systemd/system/confronta-sync-rescan.service
check "config is 0640 root:www-data (it may hold the database password)" \
  sh -c "test \"\$(stat -c '%a %U:%G' /etc/confronta-sync/config.toml)\" = '640 root:www-data'"
# The hardening must not erode: systemd-analyze ends with "Overall exposure level for X: 1.2 OK".
max_exposure=2.0
for unit in confronta-sync.service confronta-sync-rescan.service; do
  exposure=$(systemd-analyze security --offline=yes "/lib/systemd/system/$unit" 2> /dev/null |
    sed -n 's/^.*Overall exposure level for .*: \([0-9][0-9.]*\) .*$/\1/p' || true)
  check "systemd-analyze security rates $unit ${exposure:-(no rating)}, at most $max_exposure" \
    awk -v level="$exposure" -v max="$max_exposure" 'BEGIN { exit !(level != "" && level + 0 <= max + 0) }'
done
dpkg --purge confronta-sync > /dev/null
check "purge removes the binary" test ! -e /usr/bin/confronta-sync
check "purge removes the config" test ! -e /etc/confronta-sync/config.toml
check "purge removes the state folder" test ! -e /var/lib/confronta-sync

echo "deb: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
