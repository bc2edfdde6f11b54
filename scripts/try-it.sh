#!/usr/bin/env bash
# Try confronta-sync end to end on the embedded defaults: a SQLite "Django" database, the local
# S3 test server, and a few sample confrontas moved while you watch. Everything lives under
# target/demo and is recreated on each run.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=$PWD/target/demo
export CONFRONTA_TEST_S3_PORT=${CONFRONTA_DEMO_S3_PORT:-39100}

if ! dpkg -s libsqlite3-dev > /dev/null 2>&1; then
  echo "confronta-sync links Debian's SQLite: apt-get install libsqlite3-dev first" >&2
  exit 1
fi
echo "==> building confronta-sync (and installing the S3 test server meanwhile)"
# The server installs from PyPI while cargo builds; its output goes to a log unless it fails.
mkdir -p target
scripts/s3-test-server.sh install > target/s3-install.log 2>&1 &
install_pid=$!
cargo build --quiet
wait "$install_pid" || { cat target/s3-install.log >&2; exit 1; }
bin=$PWD/target/debug/confronta-sync

rm -rf "$demo"
mkdir -p "$demo/media/confrontas" "$demo/s3"
echo "==> starting the S3 test server ($(scripts/s3-test-server.sh kind)) on 127.0.0.1:$CONFRONTA_TEST_S3_PORT"
declare -A s3
while IFS='=' read -r key value; do s3[$key]=$value; done < <(scripts/s3-test-server.sh start "$demo/s3")
daemon_pid=
cleanup() {
  [[ -n $daemon_pid ]] && kill "$daemon_pid" 2> /dev/null || true
  scripts/s3-test-server.sh stop "$demo/s3"
}
trap cleanup EXIT

echo "==> creating the Django table in $demo/db.sqlite3 with three ventas (no confronta yet)"
python3 - "$demo/db.sqlite3" tests/fixtures/ventas.sqlite.sql <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript(open(sys.argv[2]).read())
for numero in ["PORTA-20261126090000", "PORTA-20261126090500", "PORTA-20261126091000"]:
    db.execute("INSERT INTO telefonica_ventaportabilidad (numero, confronta_subido_a_minio) VALUES (?, 0)", (numero,))
db.commit()
PY

printf '%s' "${s3[CONFRONTA_TEST_S3_SECRET_KEY]}" > "$demo/minio-secret"
chmod 600 "$demo/minio-secret"
cat > "$demo/config.toml" <<TOML
[watch]
media_root = "$demo/media"
dir = "confrontas"
settle_ms = 300

[database]
url = "sqlite://$demo/db.sqlite3"

[minio]
endpoint = "${s3[CONFRONTA_TEST_S3_ENDPOINT]}"
bucket = "${s3[CONFRONTA_TEST_S3_BUCKET]}"
access_key = "${s3[CONFRONTA_TEST_S3_ACCESS_KEY]}"
secret_key_file = "$demo/minio-secret"

[journal]
path = "$demo/state/journal.sqlite3"
TOML

echo "==> starting the daemon: confronta-sync --config $demo/config.toml"
"$bin" --config "$demo/config.toml" 2> >(tee "$demo/daemon.log" >&2) &
daemon_pid=$!
# Ready once it says it is watching the folder (a fraction of a second).
for _ in $(seq 1 300); do
  grep -q "watching" "$demo/daemon.log" 2> /dev/null && break
  kill -0 "$daemon_pid" 2> /dev/null || { echo "the daemon exited; see above" >&2; exit 1; }
  sleep 0.1
done

echo "==> Django saves three confrontas (the file, then the row), and one file that no venta points at"
python3 - "$demo/media/confrontas" "$demo/db.sqlite3" <<'PY'
import os, sqlite3, sys, time, zlib, struct
folder, database = sys.argv[1], sys.argv[2]
def png():
    raw = b"\x00\xff\x00\x00"
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
files = [("dni_señora_muñoz.pdf", b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n", "PORTA-20261126090000"),
         ("foto contrato.png", png(), "PORTA-20261126090500"),
         ("recibo_luz.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(2048) + b"\xff\xd9", "PORTA-20261126091000"),
         ("sin_venta.pdf", b"%PDF-1.4\n% no row points at me\n%%EOF\n", None)]
for name, data, numero in files:
    time.sleep(1)
    with open(os.path.join(folder, name), "xb") as f:   # O_EXCL, like Django's FileSystemStorage
        f.write(data)
    if numero:   # then the row, as model.save() does after the FileField wrote the file
        with sqlite3.connect(database) as db:
            db.execute("UPDATE telefonica_ventaportabilidad SET confronta = ?, confronta_asignada_en = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE numero = ?", ("confrontas/" + name, numero))
    print(f"    saved confrontas/{name} ({len(data)} bytes)", flush=True)
PY

python3 - "$demo/db.sqlite3" <<'PY'
import sqlite3, sys, time
for _ in range(150):
    done = sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM telefonica_ventaportabilidad WHERE confronta_subido_a_minio").fetchone()[0]
    if done == 3:
        break
    time.sleep(0.2)
PY
kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
daemon_pid=

echo
echo "==> the sales table now"
python3 - "$demo/db.sqlite3" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT id, numero, confronta, confronta_subido_a_minio, confronta_minio_object_name, confronta_sha256 FROM telefonica_ventaportabilidad")
for row in rows:
    print("   ", " | ".join("" if v is None else str(v) for v in row))
PY
echo
echo "==> the objects, checked against the table: confronta-sync verify"
"$bin" --config "$demo/config.toml" verify 2> /dev/null
echo
echo "==> what is left in media/confrontas (the file no venta points at is never deleted)"
ls -1 "$demo/media/confrontas" | sed 's/^/    /'
