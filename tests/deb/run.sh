#!/usr/bin/env bash
# Builds the .deb, installs it with dpkg on this machine, checks what it installed, upgrades it
# (from itself, and from 0.1.0's maintainer scripts), purges it. Needs root (CI and the dev
# machines run as root). Prints "deb: N passed, N failed" last.
#
# The maintainer scripts talk to systemd only where /run/systemd/system exists. dpkg runs here
# in a mount namespace of its own where it does (a tmpfs over /run/systemd, so nothing else on
# the machine sees it), with a stand-in for systemctl first on PATH: it keeps each unit's state
# in a file and logs every call with the inode of /usr/bin/confronta-sync at that moment, which
# shows whether a stop met the old binary and a start the new one. The same stand-in is used
# whether or not systemd runs on the machine, so no real unit is ever started by the test.
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
# A step the checks after it rely on: not counted when it works, a failure when it does not (so
# the run goes on to its summary).
step() {
  local name=$1
  shift
  if ! "$@" > /dev/null 2>&1; then
    failed=$((failed + 1))
    echo "FAILED  (step) $name"
  fi
}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
user=confronta-sync
state=/var/lib/confronta-sync

if dpkg -s confronta-sync > /dev/null 2>&1; then
  echo "confronta-sync is already installed here; refusing to touch it" >&2
  exit 1
fi
user_existed=$(getent passwd "$user" > /dev/null && echo yes || echo no)

stub=$(mktemp -d)
mkdir "$stub/bin" "$stub/state"
: > "$stub/calls"
cat > "$stub/bin/systemctl" << 'EOF'
#!/bin/sh
# Stand-in for systemctl (tests/deb/run.sh): unit states as files, every call logged.
echo "$* binary=$(stat -c %i /usr/bin/confronta-sync 2> /dev/null || echo none)" >> "$STUB/calls"
quiet= verb= units=
for arg; do
  case $arg in
    -q | --quiet) quiet=1 ;;
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$arg; else units="$units $arg"; fi ;;
  esac
done
case $verb in
  is-active)
    for unit in $units; do
      if [ -e "$STUB/state/$unit" ]; then
        [ -n "$quiet" ] || echo active
        exit 0
      fi
    done
    [ -n "$quiet" ] || echo inactive
    exit 3
    ;;
  start | restart) for unit in $units; do touch "$STUB/state/$unit"; done ;;
  stop) for unit in $units; do rm -f "$STUB/state/$unit"; done ;;
esac
exit 0
EOF
chmod 755 "$stub/bin/systemctl"
cleanup() {
  dpkg --purge confronta-sync > /dev/null 2>&1 || true
  rm -rf "$stub" "$state" /var/log/confronta-sync /run/confronta-sync.restart-after-upgrade
  if [[ $user_existed == no ]] && getent passwd "$user" > /dev/null; then
    deluser --system --quiet "$user" > /dev/null 2>&1 || true
    delgroup --system --quiet "$user" > /dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# Runs "$@" as if under systemd, with the stand-in.
under_systemd() {
  mkdir -p /run/systemd
  unshare --mount --propagation private sh -c \
    'mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec "$@"' \
    sh env PATH="$stub/bin:$PATH" STUB="$stub" "$@"
}
# The stand-in as the test drives it (a unit an operator started).
systemctl_stub() { STUB=$stub "$stub/bin/systemctl" "$@"; }
binary_inode() { stat -c %i /usr/bin/confronta-sync; }
called() { grep -qx -- "$1" "$stub/calls"; }
not_called() { ! grep -q -- "$1" "$stub/calls"; }
unit_value() { sed -n "s/^$2=//p" "/lib/systemd/system/$1" | tail -1; }

# --- A fresh install --------------------------------------------------------------------------
under_systemd dpkg -i "$deb" > /dev/null
package_version=$(dpkg-query -W -f='${Version}' confronta-sync)
check "a fresh install starts nothing" not_called "start"
check "a fresh install reloads systemd's units" called "daemon-reload binary=$(binary_inode)"
check "installed binary reports version $version and its commit" \
  sh -c "/usr/bin/confronta-sync --version | grep -Eqx 'confronta-sync $version \(rev [0-9a-f]{12}\)'"
check "the package's version is the top of packaging/debian/changelog" \
  test "$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)" = "$package_version"
check "changelog.Debian is installed and starts at $package_version" \
  sh -c "zcat /usr/share/doc/confronta-sync/changelog.Debian.gz | head -1 | grep -qF '($package_version)'"
check "copyright carries the MIT licence's text (LICENSE)" \
  grep -q "Permission is hereby granted, free of charge" /usr/share/doc/confronta-sync/copyright
check "config is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' confronta-sync | grep -q /etc/confronta-sync/config.toml"
check "installed sample config parses up to the database" sh -c "/usr/bin/confronta-sync --config /etc/confronta-sync/config.toml check 2>&1 | grep -q database"
check "SQL shipped" test -f /usr/share/confronta-sync/sql/add_confronta_sha256.sql
check "systemd-analyze verify accepts both units" \
  systemd-analyze verify /lib/systemd/system/confronta-sync.service /lib/systemd/system/confronta-sync-rescan.service
check "config is 0640 root:www-data (it may hold the database password; Django's companion reads [validation])" \
  sh -c "test \"\$(stat -c '%a %U:%G' /etc/confronta-sync/config.toml)\" = '640 root:www-data'"
# The hardening must not erode: systemd-analyze ends with "Overall exposure level for X: 1.2 OK".
max_exposure=2.0
for unit in confronta-sync.service confronta-sync-rescan.service; do
  exposure=$(systemd-analyze security --offline=yes "/lib/systemd/system/$unit" 2> /dev/null |
    sed -n 's/^.*Overall exposure level for .*: \([0-9][0-9.]*\) .*$/\1/p' || true)
  check "systemd-analyze security rates $unit ${exposure:-(no rating)}, at most $max_exposure" \
    awk -v level="$exposure" -v max="$max_exposure" 'BEGIN { exit !(level != "" && level + 0 <= max + 0) }'
done

# Least privilege (issue 24 item 6): the service's own user, in Django's group; Django cannot
# touch the state folder or read the key; the service reads and unlinks what Django saves.
check "postinst created the system user $user (no login)" \
  sh -c "getent passwd $user > $stub/passwd && awk -F: '{ exit !(\$3 < 1000 && \$7 ~ /(nologin|false)\$/) }' $stub/passwd"
check "$user is in Django's group www-data" sh -c "id -nG $user | grep -qw www-data"
check "state and log folders are 0750 $user:$user" sh -c \
  "test \"\$(stat -c '%a %U:%G' $state /var/log/confronta-sync | sort -u)\" = '750 $user:$user'"
for unit in confronta-sync.service confronta-sync-rescan.service; do
  check "$unit runs as $user" test "$(unit_value $unit User)" = "$user"
  check "$unit: StateDirectoryMode= and LogsDirectoryMode= are the folders' modes from postinst" \
    test "$(unit_value $unit StateDirectoryMode) $(unit_value $unit LogsDirectoryMode)" = \
    "0$(stat -c %a $state) 0$(stat -c %a /var/log/confronta-sync)"
  check "$unit sets IPAddressDeny=, MemoryMax= and TasksMax=" \
    test -n "$(unit_value $unit IPAddressDeny)" -a -n "$(unit_value $unit MemoryMax)" -a -n "$(unit_value $unit TasksMax)"
  shutdown_s=$(sed -n 's/^shutdown_timeout_s = \([0-9]*\).*/\1/p' /etc/confronta-sync/config.toml)
  stop_s=$(unit_value $unit TimeoutStopSec)
  check "$unit: TimeoutStopSec=$stop_s is above shutdown_timeout_s ($shutdown_s s)" \
    test "${stop_s%s}" -gt "${shutdown_s:-999}"
done
check "confronta-sync.service does not restart after a configuration error (exit 2)" sh -c \
  "test \"\$(sed -n 's/^RestartPreventExitStatus=//p' /lib/systemd/system/confronta-sync.service)\" = 2 &&
   /usr/bin/confronta-sync --help | grep -q '2 usage or config'"
check "$user reads the config (through www-data) up to the database" \
  sh -c "runuser -u $user -- /usr/bin/confronta-sync check 2>&1 | grep -q database"
check "Django's user cannot write the state folder" sh -c "! runuser -u www-data -- touch $state/django-was-here"
check "Django's user cannot list the state folder" sh -c "! runuser -u www-data -- ls $state"
secret=/etc/confronta-sync/minio-secret
# The command docs/configuration.md gives for the S3 key.
step "install the S3 key as documented" sh -c "printf 'test-secret\n' | install -m 640 -o root -g $user /dev/stdin $secret"
check "the S3 key installed as documented is readable by $user" runuser -u "$user" -- cat "$secret"
check "... and not by Django's user" sh -c "! runuser -u www-data -- cat $secret"
rm -f "$secret"
# An upload folder set up as docs/install.md says (group www-data, 2770), and a file saved by
# Django with FILE_UPLOAD_PERMISSIONS = 0o640 in a folder made with
# FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o2770.
media=$(mktemp -d)
chmod 755 "$media"
install -d -o www-data -g www-data -m 2770 "$media/confrontas"
step "Django saves a file" runuser -u www-data -- sh -c "umask 022 && mkdir -m 2770 $media/confrontas/2026 &&
  printf '%%PDF-1.7' > $media/confrontas/2026/a.pdf && chmod 640 $media/confrontas/2026/a.pdf"
check "Django's subfolder inherits the group and setgid" \
  test "$(stat -c '%a %G' "$media/confrontas/2026")" = "2770 www-data"
check "$user reads the file Django saved (0640)" runuser -u "$user" -- cat "$media/confrontas/2026/a.pdf"
check "$user moves it aside and unlinks it, as the daemon does" runuser -u "$user" -- sh -c \
  "mv $media/confrontas/2026/a.pdf $media/confrontas/2026/.confronta-sync-unlink-a && rm $media/confrontas/2026/.confronta-sync-unlink-a"
rm -rf "$media"

# Conventions (issue 25 item 4): man pages, completions; the monitoring files (item 2).
check "man page installed and rendered" sh -c "man -l /usr/share/man/man1/confronta-sync.1.gz | grep -q -- --rescan"
check "a man page per command" test -f /usr/share/man/man1/confronta-sync-check.1.gz -a -f /usr/share/man/man1/confronta-sync-verify.1.gz
check "bash completion registers itself" \
  bash -c "source /usr/share/bash-completion/completions/confronta-sync && complete -p confronta-sync"
check "zsh and fish completions installed" \
  test -f /usr/share/zsh/vendor-completions/_confronta-sync -a -f /usr/share/fish/vendor_completions.d/confronta-sync.fish
check "alert rules and dashboard installed as in packaging/monitoring" sh -c \
  "cmp packaging/monitoring/confronta-sync.rules.yml /usr/share/confronta-sync/monitoring/confronta-sync.rules.yml &&
   cmp packaging/monitoring/confronta-sync.dashboard.json /usr/share/confronta-sync/monitoring/confronta-sync.dashboard.json"
check "the runbook the alerts link to (docs/runbook.md) is installed" test -f /usr/share/doc/confronta-sync/docs/runbook.md
# Issue 25 item 3: the docs the installed README links to are installed, and so is every file
# their relative links name (tests/operator/docs_reference.rs checks the sections from Cargo.toml's assets).
check "every relative link of the installed README and docs finds its file" python3 -c '
import pathlib, re, sys
root = pathlib.Path("/usr/share/doc/confronta-sync")
pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
broken = [f"{page}: {target}" for page in pages if page.exists()
          for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text())
          if "://" not in target and not (page.parent / target).exists()]
sys.exit(len(pages) < 10 or bool(broken))
'

# --- Upgrades (issue 25 item 5) ---------------------------------------------------------------
# Reinstalling the same package is an upgrade to dpkg (prerm upgrade, unpack, postinst configure
# with the old version), with a new inode for every file.
systemctl_stub start confronta-sync.service
systemctl_stub start confronta-sync-rescan.service
before=$(binary_inode)
: > "$stub/calls"
under_systemd dpkg -i "$deb" > /dev/null
after=$(binary_inode)
check "an upgrade replaces the binary (a new inode)" test "$before" != "$after"
check "an upgrade stops the running units before the files change" \
  called "stop confronta-sync.service confronta-sync-rescan.service binary=$before"
check "an upgrade restarts the daemon after the files changed" called "restart confronta-sync.service binary=$after"
check "an upgrade starts the running catch-up again, without waiting for it" \
  called "start --no-block confronta-sync-rescan.service binary=$after"
check "both run after the upgrade" test -e "$stub/state/confronta-sync.service" -a -e "$stub/state/confronta-sync-rescan.service"
systemctl_stub stop confronta-sync.service confronta-sync-rescan.service
: > "$stub/calls"
under_systemd dpkg -i "$deb" > /dev/null
check "an upgrade leaves stopped units stopped" sh -c \
  "! grep -Eq '^(re)?start' $stub/calls && test ! -e $stub/state/confronta-sync.service"

# --- Purge keeps the quarantine ---------------------------------------------------------------
step "the daemon's journal and quarantine" runuser -u "$user" -- sh -c "mkdir -p $state/quarantine/confrontas/2026 $state/quarantine/confrontas/empty &&
  printf refused > $state/quarantine/confrontas/2026/virus.pdf &&
  printf 'infected: Eicar\n' > $state/quarantine/confrontas/2026/virus.pdf.reason &&
  printf journal > $state/journal.sqlite3"
systemctl_stub start confronta-sync.service
: > "$stub/calls"
under_systemd dpkg --purge confronta-sync > /dev/null 2>&1
check "removal stops the service first" sh -c \
  "grep -q '^stop confronta-sync.service' $stub/calls && test ! -e $stub/state/confronta-sync.service"
check "purge removes the binary" test ! -e /usr/bin/confronta-sync
check "purge removes the config" test ! -e /etc/confronta-sync/config.toml
check "purge removes the journal" test ! -e "$state/journal.sqlite3"
check "purge removes the logs" test ! -e /var/log/confronta-sync
check "purge keeps the quarantined files and their notes (the only copy of refused documents)" sh -c \
  "test \"\$(cat $state/quarantine/confrontas/2026/virus.pdf)\" = refused &&
   grep -qx 'infected: Eicar' $state/quarantine/confrontas/2026/virus.pdf.reason"
check "purge removes the quarantine's empty folders" test ! -e "$state/quarantine/confrontas/empty"
rm -rf "$state"

# --- Upgrade from 0.1.0 -----------------------------------------------------------------------
# 0.1.0's prerm stopped nothing on upgrade and its postinst started nothing, and it ran as
# www-data: this package's preinst stops what ran, and postinst hands the folders over and starts
# it again. The old package is this one with 0.1.0's maintainer scripts (tests/deb/0.1.0).
old_root=$(mktemp -d)
dpkg-deb -R "$deb" "$old_root"
rm -f "$old_root/DEBIAN/preinst"
cp tests/deb/0.1.0/postinst tests/deb/0.1.0/prerm tests/deb/0.1.0/postrm "$old_root/DEBIAN/"
sed -i 's/^Version: .*/Version: 0.1.0-1/' "$old_root/DEBIAN/control"
old_deb=$out/confronta-sync_0.1.0-1.deb
dpkg-deb --root-owner-group -Zgzip -z1 --build "$old_root" "$old_deb" > /dev/null
rm -rf "$old_root"
under_systemd dpkg -i "$old_deb" > /dev/null
step "0.1.0's journal and quarantine" runuser -u www-data -- sh -c "mkdir -p $state/quarantine/confrontas && printf journal > $state/journal.sqlite3 &&
  printf refused > $state/quarantine/confrontas/old.pdf"
systemctl_stub start confronta-sync.service
before=$(binary_inode)
: > "$stub/calls"
under_systemd dpkg -i "$deb" > /dev/null
after=$(binary_inode)
check "an upgrade from 0.1.0 stops the running daemon before the files change" \
  called "stop confronta-sync.service confronta-sync-rescan.service binary=$before"
check "an upgrade from 0.1.0 restarts it after" called "restart confronta-sync.service binary=$after"
check "an upgrade from 0.1.0 hands the journal and the quarantine to $user" sh -c \
  "test \"\$(stat -c %U $state $state/journal.sqlite3 $state/quarantine/confrontas/old.pdf | sort -u)\" = $user"
rm -f "$state/quarantine/confrontas/old.pdf"
under_systemd dpkg --purge confronta-sync > /dev/null 2>&1
check "purge with nothing in quarantine removes the state folder" test ! -e "$state"

echo "deb: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
