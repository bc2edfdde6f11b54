"""The measurements of the confronta-sync benchmark harness (issue 8).

Started by bench/run.sh, which has already started the S3 test server and created an empty PostgreSQL
database; this script generates the data, runs every contender and measurement, and writes
results/latest.{md,json} (results/quick.{md,json} with --quick). See bench/README.md.

Exit status: 0 when every measurement ran, whatever the figures; 1 when a measurement failed.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

import minio as minio_pkg
import psycopg
from minio import Minio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import testconfig  # noqa: E402  (the DDL and the config template the Rust tests use too)

TABLE = "telefonica_ventaportabilidad"
DDL = testconfig.ddl("postgres")
# Django's FileField has no index; without one every per-file lookup is a sequential scan
# (see README: "The confronta index"). The harness creates it, as an operator should.
INDEX = f"CREATE INDEX {TABLE}_confronta_idx ON {TABLE} (confronta)"

BACKLOG_FILE_BYTES = 200 * 1024  # "200 KB": 200 KiB of random bytes
SMALL_FILE_BYTES = 4 * 1024  # scaling and the 100k-file memory backlog
CHUNK = 64 * 1024  # Django's File.DEFAULT_CHUNK_SIZE
# The daemon's [validation] accepts only allowed types by magic bytes, so every generated file is
# a PDF header followed by random bytes.
PDF_HEADER = b"%PDF-1.7\n"


def pdf_bytes(size):
    return PDF_HEADER + os.urandom(size - len(PDF_HEADER))
PART_SIZE = 5 * 1024 * 1024  # the daemon's default part_size_bytes / multipart threshold
MIB = 1024 * 1024

TARGETS = {
    "latency_p50_ms": 30.0,
    "latency_p99_ms": 200.0,
    "hash_ratio": 0.9,  # the daemon's hasher over openssl dgst -sha256
    "big_file_vs_rclone": 0.9,  # the 2 GiB upload's MB/s over rclone copy's
    "rss_mib": 40.0,
    "scaling_tolerance": 0.20,
}


# The backlog's size curve: "a small text PDF, a scanned page, a phone photo". KB and MB in the
# labels are KiB and MiB, as "200 KB" (BACKLOG_FILE_BYTES) has always been; the tables print the
# exact byte counts. 2 MiB stays below the 5 MiB multipart threshold: one PUT per file for all.
BACKLOG_SIZES = (
    # label, tag (names and prefixes), bytes, files in the full run, files with --quick, stands for
    {"label": "20 KB", "tag": "20k", "file_bytes": 20 * 1024, "full": 5000, "quick": 60,
     "stands_for": "a small text PDF"},
    {"label": "200 KB", "tag": "200k", "file_bytes": BACKLOG_FILE_BYTES, "full": 2000, "quick": 150,
     "stands_for": "a scanned page"},
    {"label": "2 MB", "tag": "2m", "file_bytes": 2 * MIB, "full": 1000, "quick": 60,
     "stands_for": "a phone photo"},
)
# Round 1 runs the contenders in this order; each later round starts one further along it, so no
# contender always runs first (cold server) or right after the heaviest one.
BACKLOG_ORDER = ("d", "a", "e", "b", "c")
# The files of the untimed run of (a) and (c) through the round-trip counting proxy, per size.
ROUND_TRIP_FILES = 300

# The goals of the backlog's ratios of files/s, confronta-sync (a) over another contender, by
# (file bytes, server, ratio) -> (what the goal reads, whether a ratio meets it); a server of None
# stands for every server. Every other size/server/ratio is reported without a goal, so a reader
# sees the whole curve without mistaking a point on it for a promise.
BACKLOG_GOALS = {
    # ahead of rclone move at the daemon's parallelism (issue 16) where it was set as a goal,
    # level with it at the other sizes and on garage
    (BACKLOG_FILE_BYTES, "seaweedfs", "a/e"): ("≥ 1.10", lambda r: r >= 1.1),
    (BACKLOG_FILE_BYTES, "garage", "a/e"): ("≥ 1.00", lambda r: r >= 1.0),
    (20 * 1024, "seaweedfs", "a/e"): ("≥ 1.00", lambda r: r >= 1.0),
    (2 * MIB, "seaweedfs", "a/e"): ("≥ 1.00", lambda r: r >= 1.0),
    (BACKLOG_FILE_BYTES, "seaweedfs", "a/d"): ("≥ 0.90", lambda r: r >= 0.9),  # close to the ingest limit
    (BACKLOG_FILE_BYTES, None, "a/b"): ("> 1.00", lambda r: r > 1.0),  # ahead of rclone move at its defaults
    (BACKLOG_FILE_BYTES, None, "a/c"): ("> 1.00", lambda r: r > 1.0),  # ahead of the seed's Python path
}
# The ratios every backlog table shows, (a) over each of these.
BACKLOG_RATIOS = ("e", "d", "b", "c")


def backlog_goal(file_bytes, kind, ratio):
    """(goal text, test) of a backlog ratio at this size on this server, or None: reported only."""
    return BACKLOG_GOALS.get((file_bytes, kind, ratio)) or BACKLOG_GOALS.get((file_bytes, None, ratio))


# How the tables name each backlog contender beside a ratio.
BACKLOG_SHORT = {
    "e": "rclone move --checksum --transfers 16",
    "d": "the ingest limit",
    "b": "rclone move --checksum, 4 transfers",
    "c": "the seed's Python path",
}


class MeasurementError(Exception):
    pass


def daemon_max_in_flight(repo):
    """`pipeline.max_in_flight`'s default, read from the checkout's src/config (the daemon
    prints no config), so the results say the parallelism rclone (e) is matched against."""
    import glob
    for path in [os.path.join(repo, "src", "config.rs")] + sorted(glob.glob(os.path.join(repo, "src", "config", "*.rs"))):
        try:
            with open(path) as f:
                found = re.search(r"max_in_flight:\s*(\d+)", f.read())
        except OSError:
            continue
        if found:
            return int(found.group(1))
    return None


def log(message):
    print(f"[bench {datetime.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def proc_cpu_s(pid):
    """utime + stime of a process, in seconds (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_rss_kib(pid):
    """Current resident set (VmRSS) of a process, in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, int(-(-p * len(ordered) // 100)))  # ceil(p/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def fmt(x, digits=1):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def met(ok):
    if ok is None:
        return "n/a"
    return "**met**" if ok else "**missed**"


class PgCpuSampler:
    """Follows the CPU time of every PostgreSQL backend connected to the bench database (except
    its own) while a contender runs: the database's share of the work per file."""

    def __init__(self, pg_url):
        import threading
        self.pg_url = pg_url
        self.last = {}
        self.first = {}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        try:
            with psycopg.connect(self.pg_url, autocommit=True) as conn:
                while not self.stop_flag.is_set():
                    pids = [r[0] for r in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchall()]
                    for pid in pids:
                        cpu = proc_cpu_s(pid)
                        if cpu is not None:
                            self.first.setdefault(pid, cpu)
                            self.last[pid] = cpu
                    self.stop_flag.wait(0.05)
        except Exception:  # sampling is best effort
            pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(5)

    def cpu_s(self):
        """CPU used by the backends seen: from 0 for backends that started during the run (their
        first 50 ms are then counted from the first sample: a lower bound)."""
        return sum(self.last[p] for p in self.last)


class PgRoundTripProxy:
    """A counting TCP proxy in front of the bench's PostgreSQL: listens on 127.0.0.1:<free port>,
    forwards every byte both ways and reads the frontend (client -> server) stream to count its
    messages by type. A client waits for the server once per Sync ('S', the end of an extended-
    protocol pipeline) and once per simple Query ('Q'): their sum is the round trips it made,
    however many statements it pipelined before each Sync. Parse ('P') counts the statements the
    server had to parse (one-shot unnamed ones and prepared ones alike: a client that reuses its
    prepared statements sends few). Never in a timed run: every byte goes through Python here.

    The startup packet has no type byte (int32 length, int32 code); an SSLRequest or
    GSSENCRequest in its place is answered 'N' (plain text only) by the proxy itself and not
    forwarded, and the real startup packet follows."""

    SSL_REQUEST = 80877103
    GSSENC_REQUEST = 80877104

    def __init__(self, pg_url):
        parts = urllib.parse.urlsplit(pg_url)
        self.pg_url = pg_url
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.messages = collections.Counter()
        self.connections = 0
        self.live = []
        self.closing = False

    @property
    def url(self):
        """The bench's URL with its host:port replaced by the proxy's (user, database and query kept)."""
        parts = urllib.parse.urlsplit(self.pg_url)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def __enter__(self):
        threading.Thread(target=self.accept_loop, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.closing = True
        # shutdown() wakes the accept() blocked in accept_loop (close() alone does not on Linux).
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def accept_loop(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:  # the listener was closed
                return
            thread = threading.Thread(target=self.serve, args=(client,), daemon=True)
            with self.lock:
                self.connections += 1
                self.live.append(thread)
            thread.start()

    def reset(self):
        """Forgets the counts (between two contenders)."""
        self.settle()
        with self.lock:
            self.messages.clear()
            self.connections = 0

    def settle(self, timeout=10):
        """Waits until every connection made so far has closed: each adds its counts when its client
        hangs up, and a contender's last messages may still be in flight when it exits."""
        deadline = time.monotonic() + timeout
        with self.lock:
            live = list(self.live)
        for thread in live:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            self.live = [t for t in self.live if t.is_alive()]

    def counts(self):
        self.settle()
        with self.lock:
            return dict(self.messages), self.connections

    @staticmethod
    def pump(src, dst):
        """server -> client, as it comes."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve(self, client):
        seen = collections.Counter()
        upstream = None
        try:
            upstream = socket.create_connection(self.upstream)
            back = threading.Thread(target=self.pump, args=(upstream, client), daemon=True)
            back.start()
            buf = bytearray()
            startup = True
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buf += data
                out = bytearray()
                # Only whole messages are forwarded, so each is counted exactly once.
                while True:
                    if startup:
                        if len(buf) < 8:
                            break
                        length, code = struct.unpack("!ii", buf[:8])
                        if len(buf) < length:
                            break
                        if code in (self.SSL_REQUEST, self.GSSENC_REQUEST):
                            client.sendall(b"N")
                        else:
                            out += buf[:length]
                            startup = False
                        del buf[:length]
                    else:
                        if len(buf) < 5:
                            break
                        length = int.from_bytes(buf[1:5], "big")
                        if len(buf) < 1 + length:
                            break
                        seen[chr(buf[0])] += 1
                        out += buf[:1 + length]
                        del buf[:1 + length]
                if out:
                    upstream.sendall(out)
            upstream.shutdown(socket.SHUT_WR)
            back.join(10)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    sock.close()
            with self.lock:
                self.messages.update(seen)


class S3Server:
    """One S3 test server started by run.sh: its kind (seaweedfs, garage), the env lines
    scripts/s3-test-server.sh printed into DIR/env, its pid and its binary."""

    def __init__(self, kind, folder, binary):
        self.kind = kind
        self.binary = binary
        env = {}
        with open(os.path.join(folder, "env")) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                env[key] = value
        self.endpoint = env["CONFRONTA_TEST_S3_ENDPOINT"]
        self.access_key = env["CONFRONTA_TEST_S3_ACCESS_KEY"]
        self.secret_key = env["CONFRONTA_TEST_S3_SECRET_KEY"]
        self.bucket = env["CONFRONTA_TEST_S3_BUCKET"]
        with open(os.path.join(folder, "server.pid")) as f:
            self.pid = int(f.read().strip())


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.work = args.work
        self.binary = args.binary
        self.servers = [S3Server(*s) for s in args.server]
        self.secret_file = os.path.join(self.work, "minio-secret")
        self.use_server(self.servers[0])
        self.children = []
        self.run_id = datetime.datetime.now().strftime("%H%M%S")
        self.results = {"errors": []}
        if self.quick:
            self.sizes = dict(repeats=args.repeats or 1, watch_s=10, watch_rate=50,
                              hash_bytes=256 * MIB, big_bytes=256 * MIB, scaling=[200, 1000],
                              memory_backlog=1000, operator_rows=50000, operator_objects=500,
                              operator_orphans=500, deep_object_bytes=16 * MIB, soak_s=20,
                              soak_orphans=2000, soak_rate=2)
        else:
            self.sizes = dict(repeats=args.repeats or 3, watch_s=60, watch_rate=50,
                              hash_bytes=1024 * MIB, big_bytes=2048 * MIB,
                              scaling=[1000, 10000, 100000], memory_backlog=100000,
                              operator_rows=1000000, operator_objects=2000, operator_orphans=2000,
                              deep_object_bytes=64 * MIB, soak_s=600, soak_orphans=2000, soak_rate=2)
        # The backlog's file counts per size; BENCH_BACKLOG_SCALE multiplies them (a shorter look at
        # the size curve and the round trips than the full run's).
        scale = float(os.environ.get("BENCH_BACKLOG_SCALE") or 1)
        self.sizes["backlog_sizes"] = {
            size["label"]: max(10, round(size["quick" if self.quick else "full"] * scale)) for size in BACKLOG_SIZES}
        # The 200 KB count under its old name, for readers of older results.
        self.sizes["backlog"] = self.sizes["backlog_sizes"]["200 KB"]
        # A shorter or longer soak, to look into memory without the whole ten minutes.
        if os.environ.get("BENCH_SOAK_S"):
            self.sizes["soak_s"] = int(os.environ["BENCH_SOAK_S"])

    # ---------------------------------------------------------------- plumbing

    def use_server(self, server):
        """Points every later run (daemon configs, rclone, the seed path, the S3 client and the
        server CPU figures) at `server`."""
        self.server = server
        self.endpoint, self.bucket = server.endpoint, server.bucket
        self.access_key, self.secret_key = server.access_key, server.secret_key
        self.server_pid = server.pid
        with open(self.secret_file, "w") as f:
            f.write(self.secret_key)
        os.chmod(self.secret_file, 0o600)
        self.s3 = Minio(self.endpoint.split("://", 1)[1], access_key=self.access_key,
                        secret_key=self.secret_key, secure=False, region="us-east-1")

    def db(self):
        return psycopg.connect(self.args.pg_url, autocommit=True)

    def reset_table(self, rows=(), trigger=False):
        """Recreates the sales table (with the confronta index) and loads (numero, confronta)."""
        with self.db() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE} CASCADE")
            conn.execute("DROP TABLE IF EXISTS bench_commit_times")
            conn.execute("DROP FUNCTION IF EXISTS bench_note_commit()")
            conn.execute(DDL)
            conn.execute(INDEX)
            if rows:
                with conn.cursor().copy(f"COPY {TABLE} (numero, confronta) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            if trigger:
                # The commit time of each row's record: the daemon's compare-and-set is one
                # autocommit statement, so the trigger's clock_timestamp() is taken microseconds
                # before its commit.
                conn.execute("CREATE TABLE bench_commit_times (id bigint PRIMARY KEY, t timestamptz NOT NULL)")
                conn.execute("""CREATE FUNCTION bench_note_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN INSERT INTO bench_commit_times VALUES (NEW.id, clock_timestamp())
                          ON CONFLICT (id) DO NOTHING; RETURN NEW; END $$""")
                conn.execute(f"""CREATE TRIGGER bench_note_commit AFTER UPDATE ON {TABLE} FOR EACH ROW
                    WHEN (NEW.confronta_subido_a_minio AND NOT OLD.confronta_subido_a_minio)
                    EXECUTE FUNCTION bench_note_commit()""")
            conn.execute(f"ANALYZE {TABLE}")

    def count_uploaded_rows(self):
        with self.db() as conn:
            return conn.execute(f"SELECT count(*) FROM {TABLE} WHERE confronta_subido_a_minio").fetchone()[0]

    def count_objects(self, prefix):
        return sum(1 for _ in self.s3.list_objects(self.bucket, prefix=prefix + "/", recursive=True))

    def media(self, name):
        """A fresh MEDIA_ROOT with an empty confrontas/ folder."""
        root = os.path.join(self.work, name)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(os.path.join(root, "confrontas"))
        return root

    def write_config(self, name, media_root, prefix, settle_ms=None, overrides=None, pg_url=None):
        """The daemon's config for one run. Only what the run needs is set; every other key is
        the daemon's default. `overrides` maps "table.key" to a TOML value text; `pg_url` replaces
        the bench's database URL (the round-trip counting proxy's)."""
        # Beside MEDIA_ROOT, not in it: the default quarantine sits beside the journal, and the
        # daemon refuses a quarantine inside MEDIA_ROOT (which Django serves).
        journal = os.path.join(self.work, f"{name}-state", "journal.sqlite3")
        os.makedirs(os.path.dirname(journal), exist_ok=True)
        settings = {"minio.region": "us-east-1"}
        if settle_ms is not None:
            settings["watch.settle_ms"] = settle_ms
        settings.update({dotted: testconfig.toml_value(text) for dotted, text in (overrides or {}).items()})
        placeholders = {
            "MEDIA_ROOT": media_root, "DATABASE_URL": pg_url or self.args.pg_url, "S3_ENDPOINT": self.endpoint,
            "S3_BUCKET": self.bucket, "S3_ACCESS_KEY": self.access_key, "SECRET_KEY_FILE": self.secret_file,
            "PREFIX": prefix, "JOURNAL": journal,
        }
        text = testconfig.render(placeholders, settings,
                                 header="# written by bench/bench.py; every key not set here is the daemon's default")
        path = os.path.join(self.work, name, "config.toml")
        with open(path, "w") as f:
            f.write(text)
        # The daemon refuses a config holding a database password that other users can read.
        os.chmod(path, 0o600)
        return path

    def timed(self, name, cmd, env=None, stdout_path=None):
        """Runs cmd under /usr/bin/time; returns wall (own clock), CPU, peak RSS, S3 server CPU, load."""
        logs = os.path.join(self.work, "logs")
        os.makedirs(logs, exist_ok=True)
        time_file = os.path.join(logs, f"{name}.time")
        stdout_path = stdout_path or os.path.join(logs, f"{name}.stdout")
        stderr_path = os.path.join(logs, f"{name}.stderr")
        load_before = loadavg()
        server_before = proc_cpu_s(self.server_pid)
        started = time.monotonic()
        with open(stdout_path, "w") as out, open(stderr_path, "w") as err, PgCpuSampler(self.args.pg_url) as pg:
            proc = subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", time_file] + cmd,
                                    stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            self.children.append(proc)
            rc = proc.wait()
            self.children.remove(proc)
        wall = time.monotonic() - started
        server_after = proc_cpu_s(self.server_pid)
        with open(time_file) as f:
            last = f.read().strip().splitlines()[-1].split()
        return {
            "rc": rc,
            "wall_s": wall,
            "user_s": float(last[1]),
            "sys_s": float(last[2]),
            "max_rss_mib": int(last[3]) / 1024,
            "server_cpu_s": None if server_before is None or server_after is None else server_after - server_before,
            "postgres_cpu_s": pg.cpu_s(),
            "load_before": load_before,
            "load_after": loadavg(),
            "stdout_path": stdout_path,
            "stderr_path": stderr_path,
        }

    @staticmethod
    def tail(path, n=15):
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def daemon_json(self, run):
        with open(run["stdout_path"]) as f:
            lines = [line for line in f.read().splitlines() if line.strip().startswith("{")]
        if not lines:
            raise MeasurementError(f"no JSON summary on stdout (exit {run['rc']}); stderr:\n{self.tail(run['stderr_path'])}")
        return json.loads(lines[-1])

    def rclone_env(self):
        # The endpoint is plain HTTP on 127.0.0.1: a CA bundle from the environment only makes
        # rclone's AWS SDK fail ("unable to load custom CA bundle"), so it is not passed on.
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE" and not k.startswith("RCLONE_")}
        conf = os.path.join(self.work, "rclone.conf")
        open(conf, "a").close()
        env.update({
            "RCLONE_CONFIG": conf,
            "RCLONE_CONFIG_BENCHS3_TYPE": "s3",
            "RCLONE_CONFIG_BENCHS3_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCHS3_ENDPOINT": self.endpoint,
            "RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID": self.access_key,
            "RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY": self.secret_key,
            "RCLONE_CONFIG_BENCHS3_REGION": "us-east-1",
            "RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE": "true",
        })
        return env

    def cleanup(self):
        # Each child leads its own process group (start_new_session), so /usr/bin/time and the
        # program it runs stop together.
        for proc in list(self.children):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                except ProcessLookupError:
                    pass

    # ---------------------------------------------------------------- data

    @staticmethod
    def make_files(folder, n, size, stem="confronta"):
        """n files of `size` random bytes in folder; returns their names."""
        os.makedirs(folder, exist_ok=True)
        names = []
        for i in range(n):
            name = f"{stem}_{i:06d}.pdf"
            with open(os.path.join(folder, name), "wb") as f:
                f.write(pdf_bytes(size))
            names.append(name)
        return names

    @staticmethod
    def rows_for(names, numero_prefix="PORTA"):
        return [(f"{numero_prefix}-{i:08d}", f"confrontas/{name}") for i, name in enumerate(names)]

    # ---------------------------------------------------------------- 1. backlog

    def backlog(self):
        """The backlog at each of BACKLOG_SIZES, on each server. results["backlog_sizes"] lists one
        dict per size; results["backlog"] is the 200 KB one (the layout older results have)."""
        in_flight = daemon_max_in_flight(self.args.repo)
        # (e) runs rclone at the daemon's parallelism: the comparison a user weighing the two would
        # make (issue 16); (b) stays at rclone's default.
        contenders = {
            "d": "ingest limit: rclone copy --transfers 32, every check off, no DB, nothing deleted",
            "a": f"confronta-sync --rescan ({in_flight or '?'} files in flight: `pipeline.max_in_flight`'s default; "
                 "hash, one PUT with SHA-256 verified by its answer (a HEAD first where PUTs cannot be conditional), "
                 "row CAS, unlink; journal fsyncs)",
            "e": "rclone move --checksum --transfers 16 --checkers 16 (the daemon's parallelism; upload, verify, "
                 "delete; no DB)",
            "b": "rclone move --checksum (rclone's defaults: 4 transfers, 8 checkers; upload, verify, delete; no DB)",
            "c": "seed-style Python: fput_object, UPDATE, os.remove, one file after another",
        }
        contenders = {key: contenders[key] for key in BACKLOG_ORDER}
        repeats = self.sizes["repeats"]
        round_orders = [self.round_order(rep) for rep in range(1, repeats + 1)]
        self.results["backlog_sizes"] = []
        for size in BACKLOG_SIZES:
            n = self.sizes["backlog_sizes"][size["label"]]
            entry = {"label": size["label"], "stands_for": size["stands_for"], "files": n,
                     "file_bytes": size["file_bytes"], "repeats": repeats, "daemon_max_in_flight": in_flight,
                     "order": list(BACKLOG_ORDER), "round_orders": round_orders, "servers": {}}
            self.results["backlog_sizes"].append(entry)
            if size["file_bytes"] == BACKLOG_FILE_BYTES:
                self.results["backlog"] = entry
            started = time.monotonic()
            # One size's failure is recorded and the next size still runs; within a size the
            # figures are filled server by server, so one server's failure keeps the other's.
            try:
                self.backlog_size(size, n, entry, contenders)
            except Exception as e:
                self.cleanup()
                log(f"backlog {size['label']} FAILED: {e}")
                self.results["errors"].append({"section": f"backlog {size['label']}", "error": str(e),
                                               "trace": traceback.format_exc(limit=3)})
            entry["section_s"] = time.monotonic() - started

    @staticmethod
    def round_order(rep):
        """The contenders' order in round `rep` (from 1): BACKLOG_ORDER rotated by rep - 1."""
        shift = (rep - 1) % len(BACKLOG_ORDER)
        return list(BACKLOG_ORDER[shift:] + BACKLOG_ORDER[:shift])

    def backlog_size(self, size, n, entry, contenders):
        log(f"backlog {size['label']}: generating {n} x {size['file_bytes']} bytes")
        master = os.path.join(self.work, f"backlog-master-{size['tag']}")
        names = self.make_files(master, n, size["file_bytes"])
        rows = self.rows_for(names)
        try:
            for server in self.servers:
                self.use_server(server)
                entry["servers"][server.kind] = self.backlog_on(server, size, master, rows, contenders)
                if server is self.servers[0]:
                    # Untimed, after the timed rounds: the proxy would slow the runs it watched.
                    try:
                        entry["pg_round_trips"] = self.backlog_round_trips(size, master, names, rows)
                    except Exception as e:  # the timed figures stand without it
                        self.cleanup()
                        log(f"backlog {size['label']}: round trips FAILED: {e}")
                        self.results["errors"].append({"section": f"backlog {size['label']} round trips",
                                                       "error": str(e), "trace": traceback.format_exc(limit=3)})
        finally:
            self.use_server(self.servers[0])
            shutil.rmtree(master, ignore_errors=True)

    def backlog_on(self, server, size, master, rows, contenders):
        n = len(rows)
        total_bytes = n * size["file_bytes"]
        runs = {k: [] for k in contenders}
        for rep in range(1, self.sizes["repeats"] + 1):
            for position, key in enumerate(self.round_order(rep), 1):
                prefix = f"bench-{self.run_id}-{size['tag']}-{key}{rep}"
                name = f"backlog-{size['tag']}-{server.kind}-{key}{rep}"
                media_root = os.path.join(self.work, name)
                shutil.rmtree(media_root, ignore_errors=True)
                os.makedirs(media_root)
                # A real copy (the daemon refuses hard-linked files); freshly written, so the
                # bytes are in the page cache for every contender alike.
                subprocess.run(["cp", "-r", master, os.path.join(media_root, "confrontas")], check=True)
                self.reset_table(rows)
                log(f"backlog {size['label']} ({server.kind}): {key} (round {rep}) "
                    f"{contenders[key].split(':')[0].split(' (')[0]}")
                run = getattr(self, f"backlog_{key}")(media_root, prefix, n, name)
                run["files_per_s"] = n / run["wall_s"]
                run["mb_per_s"] = total_bytes / run["wall_s"] / 1e6
                run["prefix"] = prefix
                run["round"] = rep
                run["position"] = position
                log(f"backlog {size['label']} ({server.kind}): {key} round {rep}: {run['files_per_s']:.0f} files/s, "
                    f"{run['wall_s']:.2f} s, load {run['load_before'][0]:.2f}")
                runs[key].append(run)
                shutil.rmtree(media_root, ignore_errors=True)
                # Every contender starts on the same (empty) prefix space, and the 2 MB size's
                # 15 copies of 2 GB per server never fill the disk.
                self.remove_objects(prefix)
        summary = {}
        for key, rs in runs.items():
            summary[key] = {
                "what": contenders[key],
                "files_per_s_median": statistics.median(r["files_per_s"] for r in rs),
                "mb_per_s_median": statistics.median(r["mb_per_s"] for r in rs),
                "files_per_s_runs": [r["files_per_s"] for r in rs],
                "cpu_s_per_file_median": statistics.median((r["user_s"] + r["sys_s"]) / n for r in rs),
                "server_cpu_s_per_file_median": statistics.median(
                    (r["server_cpu_s"] or 0) / n for r in rs),
                "postgres_cpu_s_per_file_median": statistics.median(r["postgres_cpu_s"] / n for r in rs),
                "max_rss_mib": max(r["max_rss_mib"] for r in rs),
                "runs": rs,
            }
        fps = {k: v["files_per_s_median"] for k, v in summary.items()}
        ratios = {f"a/{k}": fps["a"] / fps[k] for k in BACKLOG_RATIOS}
        goals = {ratio: backlog_goal(size["file_bytes"], server.kind, ratio) for ratio in ratios}
        # None where the ratio is reported without a goal.
        targets = {ratio: goal[1](ratios[ratio]) if goal else None for ratio, goal in goals.items()}
        return {"contenders": summary, "ratios": ratios, "goals": {r: g[0] if g else None for r, g in goals.items()},
                "targets_met": targets}

    def backlog_round_trips(self, size, master, names, rows):
        """(a) and (c) once more, untimed, on the first ROUND_TRIP_FILES files of this size with their
        PostgreSQL URL pointed at a PgRoundTripProxy: the round trips (Sync + simple Query messages)
        and Parse messages per file moved."""
        k = min(ROUND_TRIP_FILES, len(names))
        out = {"server": self.server.kind, "files": k}
        with PgRoundTripProxy(self.args.pg_url) as proxy:
            for key in ("a", "c"):
                prefix = f"bench-{self.run_id}-{size['tag']}-{key}rt"
                name = f"backlog-{size['tag']}-{self.server.kind}-{key}-roundtrips"
                media_root = os.path.join(self.work, name)
                shutil.rmtree(media_root, ignore_errors=True)
                os.makedirs(os.path.join(media_root, "confrontas"))
                for file_name in names[:k]:
                    shutil.copyfile(os.path.join(master, file_name), os.path.join(media_root, "confrontas", file_name))
                self.reset_table(rows[:k])
                proxy.reset()
                log(f"backlog {size['label']}: {key} through the round-trip counting proxy, {k} files")
                run = getattr(self, f"backlog_{key}")(media_root, prefix, k, name, pg_url=proxy.url)
                messages, connections = proxy.counts()
                trips = messages.get("S", 0) + messages.get("Q", 0)
                out[key] = {
                    "round_trips": trips,
                    "round_trips_per_file": trips / k,
                    "syncs": messages.get("S", 0),
                    "simple_queries": messages.get("Q", 0),
                    "parses": messages.get("P", 0),
                    "parses_per_file": messages.get("P", 0) / k,
                    "connections": connections,
                    "messages": messages,
                    "wall_s": run["wall_s"],
                }
                log(f"backlog {size['label']}: {key}: {trips / k:.2f} round trips/file, "
                    f"{messages.get('P', 0) / k:.2f} Parse/file, {connections} connection(s)")
                shutil.rmtree(media_root, ignore_errors=True)
                self.remove_objects(prefix)
        return out

    def remove_objects(self, prefix):
        """Deletes every object under prefix/ (outside any timed run)."""
        from minio.deleteobjects import DeleteObject
        doomed = (DeleteObject(o.object_name) for o in self.s3.list_objects(self.bucket, prefix=prefix + "/", recursive=True))
        errors = list(self.s3.remove_objects(self.bucket, doomed))
        if errors:
            raise MeasurementError(f"deleting {prefix}/: {len(errors)} objects not deleted, e.g. {errors[0]}")

    def check_folder_empty(self, media_root, what):
        left = os.listdir(os.path.join(media_root, "confrontas"))
        if left:
            raise MeasurementError(f"{what}: {len(left)} files left in the folder")

    def backlog_a(self, media_root, prefix, n, name, pg_url=None):
        config = self.write_config(name, media_root, prefix, pg_url=pg_url)
        run = self.timed(name, [self.binary, "--config", config, "--rescan", "--json"])
        summary = self.daemon_json(run)
        run["daemon_elapsed_s"] = summary.get("elapsed_s")
        if run["rc"] != 0 or summary.get("moved") != n:
            raise MeasurementError(f"confronta-sync --rescan moved {summary.get('moved')} of {n} (exit {run['rc']}): "
                                   f"{summary.get('reasons')}; first problems: {(summary.get('problems') or [])[:5]}")
        self.check_folder_empty(media_root, "confronta-sync")
        if self.count_uploaded_rows() != n:
            raise MeasurementError("confronta-sync: not every row was recorded")
        return run

    def backlog_b(self, media_root, prefix, n, name, parallelism=()):
        run = self.timed(name, ["rclone", "move", "--checksum", *parallelism, os.path.join(media_root, "confrontas"),
                                f"benchs3:{self.bucket}/{prefix}"], env=self.rclone_env())
        if run["rc"] != 0:
            raise MeasurementError(f"rclone move failed (exit {run['rc']}):\n{self.tail(run['stderr_path'])}")
        self.check_folder_empty(media_root, "rclone move")
        if self.count_objects(prefix) != n:
            raise MeasurementError("rclone move: object count differs")
        return run

    def backlog_e(self, media_root, prefix, n, name):
        return self.backlog_b(media_root, prefix, n, name, parallelism=("--transfers", "16", "--checkers", "16"))

    def backlog_c(self, media_root, prefix, n, name, pg_url=None):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed_path.py")
        run = self.timed(name, [sys.executable, script, "--pg-url", pg_url or self.args.pg_url, "--endpoint", self.endpoint,
                                "--access-key", self.access_key, "--secret-key-file", self.secret_file,
                                "--bucket", self.bucket, "--media-root", media_root, "--prefix", prefix])
        summary = self.daemon_json(run)
        if run["rc"] != 0 or summary.get("moved") != n:
            raise MeasurementError(f"seed-style Python moved {summary.get('moved')} of {n}:\n{self.tail(run['stderr_path'])}")
        self.check_folder_empty(media_root, "seed-style Python")
        if self.count_uploaded_rows() != n:
            raise MeasurementError("seed-style Python: not every row was recorded")
        return run

    def backlog_d(self, media_root, prefix, n, name):
        run = self.timed(name, ["rclone", "copy", "--transfers", "32", "--s3-no-head", "--no-check-dest",
                                "--ignore-checksum", "--s3-disable-checksum",
                                os.path.join(media_root, "confrontas"), f"benchs3:{self.bucket}/{prefix}"],
                         env=self.rclone_env())
        if run["rc"] != 0:
            raise MeasurementError(f"rclone copy failed (exit {run['rc']}):\n{self.tail(run['stderr_path'])}")
        if self.count_objects(prefix) != n:
            raise MeasurementError("rclone copy: object count differs")
        return run

    # ---------------------------------------------------------------- 2. watch-mode latency

    def latency(self):
        out = {}
        for label, settle in (("settle_default_500ms", None), ("settle_0ms", 0)):
            out[label] = self.latency_run(label, settle)
        targets = {}
        for label, r in out.items():
            targets[label] = {"p50": r["p50_ms"] is not None and r["p50_ms"] <= TARGETS["latency_p50_ms"],
                              "p99": r["p99_ms"] is not None and r["p99_ms"] <= TARGETS["latency_p99_ms"]}
        self.results["latency"] = {"rate_per_s": self.sizes["watch_rate"], "duration_s": self.sizes["watch_s"],
                                   "file_bytes": BACKLOG_FILE_BYTES, "runs": out, "targets_met": targets}

    def latency_run(self, label, settle_ms):
        rate, duration = self.sizes["watch_rate"], self.sizes["watch_s"]
        n = rate * duration
        name = f"watch-{label}"
        media_root = self.media(name)
        upload_tmp = os.path.join(self.work, name, "upload-tmp")  # outside the watched folder
        os.makedirs(upload_tmp, exist_ok=True)
        self.reset_table(trigger=True)
        prefix = f"bench-{self.run_id}-w{settle_ms if settle_ms is not None else 'd'}"
        config = self.write_config(name, media_root, prefix, settle_ms=settle_ms)
        log_path = os.path.join(self.work, "logs", f"{name}.stderr")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        log(f"latency: {label}: starting the daemon; {rate} files/s for {duration} s")
        load_before = loadavg()
        with open(log_path, "w") as err:
            daemon = subprocess.Popen([self.binary, "--config", config], stdout=subprocess.DEVNULL, stderr=err,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self.children.append(daemon)
        try:
            deadline = time.monotonic() + 30
            while "watching" not in self.tail(log_path, 50):
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise MeasurementError(f"the daemon did not start watching:\n{self.tail(log_path)}")
                time.sleep(0.05)
            cpu_before = proc_cpu_s(daemon.pid)
            server_before = proc_cpu_s(self.server_pid)
            closes = {}
            row_delays = []
            late = []
            conn = self.db()
            started = time.monotonic()
            for i in range(n):
                target = started + i / rate
                pause = target - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                late.append(max(0.0, time.monotonic() - target))
                rel = f"confrontas/w_{i:06d}.pdf"
                final = os.path.join(media_root, rel)
                data = pdf_bytes(BACKLOG_FILE_BYTES)
                renamed = i % 5 == 4
                # Django's FileSystemStorage._save: small uploads are written in place (O_EXCL,
                # 64 KiB chunks, close); large ones are renamed in from the upload temp file.
                where = os.path.join(upload_tmp, f"tmp_{i:06d}.upload") if renamed else final
                fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                for off in range(0, len(data), CHUNK):
                    os.write(fd, data[off:off + CHUNK])
                os.close(fd)
                if renamed:
                    os.rename(where, final)
                closed = time.time()
                # The row commits right after the file is saved.
                venta_id = conn.execute(f"INSERT INTO {TABLE} (numero, confronta) VALUES (%s, %s) RETURNING id",
                                        (f"WATCH-{i:08d}", rel)).fetchone()[0]
                row_delays.append((time.time() - closed) * 1000)
                closes[venta_id] = closed
            writer_s = time.monotonic() - started
            # Wait for the stragglers (a file whose row was not there yet waits for its backoff).
            wait_deadline = time.monotonic() + 90
            while True:
                done = conn.execute("SELECT count(*) FROM bench_commit_times").fetchone()[0]
                if done >= n or time.monotonic() > wait_deadline:
                    break
                time.sleep(0.2)
            commits = dict(conn.execute("SELECT id, extract(epoch FROM t)::float8 FROM bench_commit_times").fetchall())
            conn.close()
            cpu_after = proc_cpu_s(daemon.pid)
            server_after = proc_cpu_s(self.server_pid)
            hwm = proc_hwm_kib(daemon.pid)
        finally:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
            self.children.remove(daemon)
        latencies = [(commits[i] - closes[i]) * 1000 for i in closes if i in commits]
        missing = n - len(latencies)
        r = {
            "settle_ms": 500 if settle_ms is None else settle_ms,
            "settle_source": "default (key not set)" if settle_ms is None else "settle_ms = 0",
            "files": n,
            "recorded": len(latencies),
            "not_recorded_in_time": missing,
            "writer_s": writer_s,
            "writer_late_ms_max": max(late) * 1000,
            "row_after_close_ms_p50": percentile(row_delays, 50),
            "row_after_close_ms_p99": percentile(row_delays, 99),
            "p50_ms": percentile(latencies, 50) if latencies else None,
            "p90_ms": percentile(latencies, 90) if latencies else None,
            "p99_ms": percentile(latencies, 99) if latencies else None,
            "max_ms": max(latencies) if latencies else None,
            "mean_ms": statistics.fmean(latencies) if latencies else None,
            "over_900ms": sum(1 for x in latencies if x > 900),
            "daemon_cpu_s_per_file": None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / n,
            "server_cpu_s_per_file": None if server_before is None or server_after is None else (server_after - server_before) / n,
            "daemon_peak_rss_mib": None if hwm is None else hwm / 1024,
            "load_before": load_before,
            "load_after": loadavg(),
        }
        log(f"latency: {label}: p50 {fmt(r['p50_ms'])} ms, p99 {fmt(r['p99_ms'])} ms, "
            f"{r['over_900ms']} over 900 ms, {missing} not recorded")
        if missing:
            raise MeasurementError(f"latency {label}: {missing} of {n} files were not recorded within 90 s "
                                   f"of the last write:\n{self.tail(log_path)}")
        left = os.listdir(os.path.join(media_root, "confrontas"))
        if left:
            raise MeasurementError(f"latency {label}: {len(left)} files left in the folder")
        shutil.rmtree(media_root, ignore_errors=True)
        return r

    # ---------------------------------------------------------------- 3. hashing

    def hashing(self):
        size = self.sizes["hash_bytes"]
        path = os.path.join(self.work, "hash.bin")
        log(f"hashing: writing {size // MIB} MiB of random bytes")
        with open(path, "wb") as f:
            for _ in range(size // (8 * MIB)):
                f.write(os.urandom(8 * MIB))
        subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        reps = 3
        # openssl uses the CPU's SHA instructions where there are some, coreutils' sha256sum does
        # not: openssl is the target, sha256sum the older reference (issue 16).
        timings = {"openssl": [], "sha256sum": [], "hash_file": [], "hash_file_parts": []}
        digests = set()
        load_before = loadavg()
        for _ in range(reps):
            for key, cmd in (("openssl", ["openssl", "dgst", "-sha256", "-r", path]),
                             ("sha256sum", ["sha256sum", path]),
                             ("hash_file", [self.args.hasher, path, "1"]),
                             ("hash_file_parts", [self.args.hasher, path, "1", str(PART_SIZE)])):
                started = time.monotonic()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                elapsed = time.monotonic() - started
                if proc.returncode != 0:
                    raise MeasurementError(f"{cmd[0]} failed: {proc.stderr}")
                out = proc.stdout.strip()
                digests.add(json.loads(out)["sha256"] if key.startswith("hash_file") else out.split()[0])
                timings[key].append(size / elapsed / 1e6)
        if len(digests) != 1:
            raise MeasurementError(f"the hashers disagree: {digests}")
        med = {k: statistics.median(v) for k, v in timings.items()}
        self.results["hashing"] = {
            "bytes": size,
            "repeats": reps,
            "mb_per_s_median": med,
            "mb_per_s_runs": timings,
            # "hash_file/openssl" is hash_file's MB/s over openssl's.
            "ratios": {f"{ours}/{ref}": med[ours] / med[ref]
                       for ours in ("hash_file", "hash_file_parts") for ref in ("openssl", "sha256sum")},
            "load_before": load_before,
            "load_after": loadavg(),
            "targets_met": {ours: med[ours] / med["openssl"] >= TARGETS["hash_ratio"]
                            for ours in ("hash_file", "hash_file_parts")},
        }
        log(f"hashing: openssl {med['openssl']:.0f} MB/s, sha256sum {med['sha256sum']:.0f} MB/s, "
            f"hash_file {med['hash_file']:.0f} MB/s, with part digests {med['hash_file_parts']:.0f} MB/s")
        os.remove(path)

    # ---------------------------------------------------------------- 4 + 5. memory and scaling

    def big_file(self):
        size = self.sizes["big_bytes"]
        name = "memory-big"
        media_root = self.media(name)
        path = os.path.join(media_root, "confrontas", "grande.pdf")
        with open(path, "wb") as f:
            f.write(PDF_HEADER)
            f.truncate(size)  # sparse after the header
        self.reset_table([("BIG-00000001", "confrontas/grande.pdf")])
        # What a user would do instead: rclone copy of the same file to the same server, with
        # rclone's defaults (5 MiB chunks, 4 at a time, its MD5 of the file). First, since the
        # daemon removes the file.
        log(f"memory: rclone copy of the {size // MIB} MiB sparse file")
        rclone_prefix = f"bench-{self.run_id}-big-rclone"
        rclone = self.timed(f"{name}-rclone-copy", ["rclone", "copy", path, f"benchs3:{self.bucket}/{rclone_prefix}"],
                            env=self.rclone_env())
        if rclone["rc"] != 0 or self.count_objects(rclone_prefix) != 1:
            raise MeasurementError(f"rclone copy of the big file failed (exit {rclone['rc']}):\n"
                                   f"{self.tail(rclone['stderr_path'])}")
        rclone["mb_per_s"] = size / rclone["wall_s"] / 1e6
        # The default [validation] max_bytes (50 MiB) would quarantine it.
        config = self.write_config(name, media_root, f"bench-{self.run_id}-big",
                                   overrides={"validation.max_bytes": "0"})
        log(f"memory: one {size // MIB} MiB sparse file through --rescan")
        run = self.timed(name, [self.binary, "--config", config, "--rescan", "--json"])
        summary = self.daemon_json(run)
        if run["rc"] != 0 or summary.get("moved") != 1:
            raise MeasurementError(f"the big file did not move (exit {run['rc']}): {summary.get('problems')}")
        run["bytes"] = size
        run["mb_per_s"] = size / run["wall_s"] / 1e6
        run["server"] = self.server.kind
        run["rclone_copy"] = rclone
        run["ratio_vs_rclone_copy"] = run["mb_per_s"] / rclone["mb_per_s"]
        run["targets_met"] = {"rss": run["max_rss_mib"] <= TARGETS["rss_mib"],
                              "vs_rclone_copy": run["ratio_vs_rclone_copy"] >= TARGETS["big_file_vs_rclone"]}
        self.results["memory_big_file"] = run
        log(f"memory: big file peak RSS {run['max_rss_mib']:.1f} MiB, {run['mb_per_s']:.0f} MB/s; "
            f"rclone copy {rclone['mb_per_s']:.0f} MB/s, peak RSS {rclone['max_rss_mib']:.1f} MiB")
        # Two copies of 2 GiB would otherwise stay on the server's disk for the rest of the run.
        for prefix in (rclone_prefix, f"bench-{self.run_id}-big"):
            for obj in self.s3.list_objects(self.bucket, prefix=prefix + "/", recursive=True):
                self.s3.remove_object(self.bucket, obj.object_name)
        shutil.rmtree(media_root, ignore_errors=True)

    def scaling(self):
        per_size = []
        for n in self.sizes["scaling"]:
            name = f"scaling-{n}"
            media_root = self.media(name)
            log(f"scaling: generating {n} x {SMALL_FILE_BYTES} bytes")
            names = self.make_files(os.path.join(media_root, "confrontas"), n, SMALL_FILE_BYTES)
            self.reset_table(self.rows_for(names, "SCALE"))
            config = self.write_config(name, media_root, f"bench-{self.run_id}-s{n}")
            entry = {"files": n, "file_bytes": SMALL_FILE_BYTES}
            if n == self.sizes["memory_backlog"]:
                log(f"scaling: --rescan --dry-run over {n} files")
                dry = self.timed(f"{name}-dry-run", [self.binary, "--config", config, "--rescan", "--dry-run", "--json"])
                summary = self.daemon_json(dry)
                if dry["rc"] != 0 or summary.get("would_move") != n:
                    raise MeasurementError(f"dry run over {n} files: would_move {summary.get('would_move')} (exit {dry['rc']})")
                dry.pop("stdout_path")
                entry["dry_run"] = dry
            log(f"scaling: --rescan over {n} files")
            run = self.timed(name, [self.binary, "--config", config, "--rescan", "--json"])
            summary = self.daemon_json(run)
            if run["rc"] != 0 or summary.get("moved") != n:
                raise MeasurementError(f"rescan of {n} files moved {summary.get('moved')} (exit {run['rc']}): {summary.get('reasons')}")
            self.check_folder_empty(media_root, f"scaling {n}")
            run["daemon_elapsed_s"] = summary["elapsed_s"]
            run["ms_per_file"] = summary["elapsed_s"] * 1000 / n
            run["wall_ms_per_file"] = run["wall_s"] * 1000 / n
            run["files_per_s"] = n / summary["elapsed_s"]
            entry["rescan"] = run
            per_size.append(entry)
            log(f"scaling: {n} files: {run['ms_per_file']:.2f} ms/file, peak RSS {run['max_rss_mib']:.1f} MiB")
            shutil.rmtree(media_root, ignore_errors=True)
        base = per_size[0]["rescan"]["ms_per_file"]
        for entry in per_size:
            entry["vs_smallest"] = entry["rescan"]["ms_per_file"] / base - 1
        flat = all(abs(e["vs_smallest"]) <= TARGETS["scaling_tolerance"] for e in per_size)
        self.results["scaling"] = {"sizes": per_size, "targets_met": {"flat": flat}}
        mem = next((e for e in per_size if e["files"] == self.sizes["memory_backlog"]), None)
        if mem:
            self.results["memory_backlog"] = {
                "files": mem["files"],
                "dry_run_max_rss_mib": mem["dry_run"]["max_rss_mib"],
                "rescan_max_rss_mib": mem["rescan"]["max_rss_mib"],
            }

    # ---------------------------------------------------------------- 6. operator commands

    def put_objects(self, names, data):
        """Uploads `data` under every name, a few at a time, with the SHA-256 metadata the daemon
        attaches (python minio sends objects over 5 MiB in parts, which carry no whole-content
        checksum; `verify` then reads the metadata)."""
        import concurrent.futures
        import hashlib
        import io
        meta = {"sha256": hashlib.sha256(data).hexdigest()}

        def put(name):
            self.s3.put_object(self.bucket, name, io.BytesIO(data), len(data), content_type="application/pdf",
                               metadata=meta)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(put, names))

    def operator(self):
        """verify, verify --deep (a sample) and orphans --delete-objects on a table of
        `operator_rows` rows made with generate_series: peak RSS from /usr/bin/time."""
        import hashlib
        n, with_object = self.sizes["operator_rows"], self.sizes["operator_objects"]
        orphans, big_bytes = self.sizes["operator_orphans"], self.sizes["deep_object_bytes"]
        prefix = f"bench-{self.run_id}-ops"
        name = "operator"
        media_root = self.media(name)
        small = pdf_bytes(4096)
        small_sha = hashlib.sha256(small).hexdigest()
        big = pdf_bytes(big_bytes)
        big_sha = hashlib.sha256(big).hexdigest()
        big_rows = 4
        log(f"operator: {n:,} rows in MinIO, {with_object:,} of them with their object "
            f"({big_rows} of {big_bytes // MIB} MiB), and {orphans:,} unreferenced objects")
        self.reset_table()
        with self.db() as conn:
            # Row n names object venta_n: the first `with_object` rows have theirs (rows 1..4 a big
            # one), the others point at objects that were never uploaded (each a MISMATCH line).
            conn.execute(f"""INSERT INTO {TABLE} (numero, confronta, confronta_minio_object_name,
                               confronta_subido_a_minio, confronta_sha256)
                             SELECT 'OPS-' || g, '', %s || '/venta_' || lpad(g::text, 8, '0') || '.pdf', true,
                                    CASE WHEN g <= %s THEN %s ELSE %s END
                             FROM generate_series(1, %s) AS g""",
                         (prefix, big_rows, big_sha, small_sha, n))
            conn.execute(f"ANALYZE {TABLE}")
        self.put_objects([f"{prefix}/venta_{g:08d}.pdf" for g in range(1, big_rows + 1)], big)
        self.put_objects([f"{prefix}/venta_{g:08d}.pdf" for g in range(big_rows + 1, with_object + 1)], small)
        # Unreferenced objects with names the config's template could have made (`orphans` only
        # ever lists, and deletes, those; see ARCHITECTURE.md), for ids no row has.
        self.put_objects([f"{prefix}/venta_HUERFANO-{g:06d}_confronta_{n + 1 + g}_{g:012x}.pdf"
                          for g in range(orphans)], small)
        config = self.write_config(name, media_root, prefix)
        out = {"rows": n, "objects_present": with_object, "orphan_objects": orphans,
               "deep_object_bytes": big_bytes, "deep_sample_rows": 200}
        runs = (("verify", ["verify"], f"verify: {n} rows checked, {with_object} ok, {n - with_object} mismatched"),
                ("verify_deep", ["verify", "--deep", "--limit", "200"], "verify: 200 rows checked, 200 ok, 0 mismatched"),
                ("orphans", ["orphans", "--older-than", "0s", "--delete-objects"],
                 f"orphans older than 0s: 0 files, {orphans} objects, {orphans} objects deleted"))
        for key, args, expected in runs:
            log(f"operator: {' '.join(args)}")
            run = self.timed(f"operator-{key}", [self.binary, "--config", config] + args)
            with open(run.pop("stdout_path"), errors="replace") as f:
                last = (f.read().strip().splitlines() or [""])[-1]
            if last != expected:
                raise MeasurementError(f"{' '.join(args)}: expected {expected!r}, got {last!r} (exit {run['rc']}):\n"
                                       f"{self.tail(run['stderr_path'])}")
            run["summary"] = last
            out[key] = run
            log(f"operator: {key}: peak RSS {run['max_rss_mib']:.1f} MiB, {run['wall_s']:.1f} s")
        left = self.count_objects(prefix)
        if left != with_object:
            raise MeasurementError(f"orphans --delete-objects left {left} objects, expected {with_object}")
        out["targets_met"] = {k: out[k]["max_rss_mib"] <= TARGETS["rss_mib"] for k in ("verify", "verify_deep", "orphans")}
        self.results["operator"] = out
        for obj in self.s3.list_objects(self.bucket, prefix=prefix + "/", recursive=True):
            self.s3.remove_object(self.bucket, obj.object_name)
        self.reset_table()
        shutil.rmtree(media_root, ignore_errors=True)

    # ---------------------------------------------------------------- 7. soak

    def soak(self):
        """The daemon as a service for `soak_s` with `soak_rate` files/s (each with its row) and
        `soak_orphans` files no row points at: its RSS and CPU, sampled, should stay flat."""
        duration, rate, orphans = self.sizes["soak_s"], self.sizes["soak_rate"], self.sizes["soak_orphans"]
        name = "soak"
        media_root = self.media(name)
        folder = os.path.join(media_root, "confrontas")
        self.make_files(folder, orphans, SMALL_FILE_BYTES, stem="huerfano")
        self.reset_table()
        prefix = f"bench-{self.run_id}-soak"
        # Orphans are due again after a second and reconcile runs every 5 s (issue 17 item 3's
        # case), so any re-work they cause shows within the run.
        config = self.write_config(name, media_root, prefix, overrides={
            "watch.orphan_after_s": "1", "watch.reconcile_interval_s": "5"})
        log_path = os.path.join(self.work, "logs", f"{name}.stderr")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        log(f"soak: {orphans} orphan files, then {rate} files/s for {duration} s")
        interval = 1.0 if self.quick else 5.0
        samples = []
        n = 0
        with open(log_path, "w") as err:
            daemon = subprocess.Popen([self.binary, "--config", config], stdout=subprocess.DEVNULL, stderr=err,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self.children.append(daemon)
        try:
            deadline = time.monotonic() + 60
            while "watching" not in self.tail(log_path, 50):
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise MeasurementError(f"the daemon did not start watching:\n{self.tail(log_path)}")
                time.sleep(0.05)
            conn = self.db()
            started = time.monotonic()
            next_sample = started
            while time.monotonic() - started < duration:
                now = time.monotonic()
                if now >= next_sample:
                    samples.append({"t_s": now - started, "rss_mib": proc_rss_kib(daemon.pid) / 1024,
                                    "cpu_s": proc_cpu_s(daemon.pid)})
                    next_sample += interval
                if now >= started + n / rate:
                    rel = f"confrontas/soak_{n:06d}.pdf"
                    with open(os.path.join(media_root, rel), "wb") as f:
                        f.write(pdf_bytes(SMALL_FILE_BYTES))
                    conn.execute(f"INSERT INTO {TABLE} (numero, confronta) VALUES (%s, %s)", (f"SOAK-{n:08d}", rel))
                    n += 1
                    continue
                time.sleep(max(0.0, min(started + n / rate, next_sample) - time.monotonic()))
            samples.append({"t_s": time.monotonic() - started, "rss_mib": proc_rss_kib(daemon.pid) / 1024,
                            "cpu_s": proc_cpu_s(daemon.pid)})
            wait_deadline = time.monotonic() + 60
            while self.count_uploaded_rows() < n and time.monotonic() < wait_deadline:
                time.sleep(0.2)
            moved = self.count_uploaded_rows()
            conn.close()
            hwm = proc_hwm_kib(daemon.pid)
        finally:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
            self.children.remove(daemon)
        if moved < n:
            raise MeasurementError(f"soak: {n - moved} of {n} trickle files were not recorded:\n{self.tail(log_path)}")
        # Flat: compare the second quarter of the run with the last one (the first quarter is
        # warm-up: the start-up walk finds the orphans).
        q = len(samples) // 4

        def quarter(i):
            part = samples[i * q:(i + 1) * q + 1] if i < 3 else samples[3 * q:]
            span = part[-1]["t_s"] - part[0]["t_s"]
            cpu = (part[-1]["cpu_s"] - part[0]["cpu_s"]) / span * 100 if span > 0 else None
            return {"rss_mib_max": max(x["rss_mib"] for x in part), "cpu_percent": cpu}
        second, last = quarter(1), quarter(3)
        rss_flat = last["rss_mib_max"] <= second["rss_mib_max"] + max(2.0, 0.05 * second["rss_mib_max"])
        cpu_flat = last["cpu_percent"] is not None and second["cpu_percent"] is not None and \
            last["cpu_percent"] <= 1.5 * second["cpu_percent"] + 1.0
        self.results["soak"] = {
            "duration_s": duration, "rate_per_s": rate, "orphans": orphans, "files": n, "moved": moved,
            "sample_interval_s": interval, "second_quarter": second, "last_quarter": last,
            "rss_mib_start": samples[0]["rss_mib"], "rss_mib_end": samples[-1]["rss_mib"],
            "daemon_peak_rss_mib": None if hwm is None else hwm / 1024,
            "cpu_percent_overall": (samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / (samples[-1]["t_s"] - samples[0]["t_s"]) * 100,
            "samples": samples, "targets_met": {"rss_flat": rss_flat, "cpu_flat": cpu_flat},
        }
        log(f"soak: RSS {samples[0]['rss_mib']:.1f} -> {samples[-1]['rss_mib']:.1f} MiB, CPU "
            f"{fmt(second['cpu_percent'])} % -> {fmt(last['cpu_percent'])} %, {moved}/{n} moved")
        shutil.rmtree(media_root, ignore_errors=True)

    # ---------------------------------------------------------------- machine and report

    def machine(self):
        def cmd(*c):
            try:
                return subprocess.run(c, capture_output=True, text=True, timeout=20).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                return None

        def server_version(binary):
            if not binary:
                return None
            # SeaweedFS answers `weed version`, garage `garage --version`.
            flag = "version" if os.path.basename(binary) == "weed" else "--version"
            return f"{os.path.basename(binary)} " + ((cmd(binary, flag) or "").splitlines() or [""])[0]
        meminfo = open("/proc/meminfo").read()
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
        cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
        flags = open("/proc/cpuinfo").read()
        with self.db() as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
        repo = self.args.repo
        dirty = cmd("git", "-C", repo, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock")
        self.results["machine"] = {
            "cores": os.cpu_count(),
            "ram_gib": mem_kib / 1024 / 1024,
            "cpu": cpu.group(1) if cpu else platform.processor(),
            "sha_ni": " sha_ni" in flags,
            "kernel": platform.release(),
            "loadavg_start": loadavg(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        import hashlib
        with open(self.binary, "rb") as f:
            binary_sha = hashlib.sha256(f.read()).hexdigest()[:16]
        built = datetime.datetime.fromtimestamp(os.path.getmtime(self.binary)).astimezone().isoformat(timespec="seconds")
        self.results["versions"] = {
            "confronta-sync": cmd(self.binary, "--version"),
            "binary": f"{self.binary} (sha256 {binary_sha}…, built {built})",
            "binary_source": os.environ.get("BENCH_BINARY_NOTE") or "this checkout (see git_commit)",
            "git_commit": cmd("git", "-C", repo, "rev-parse", "--short", "HEAD"),
            "src_uncommitted_changes": bool(dirty),
            "rustc": cmd("rustc", "--version"),
            **{f"s3_server ({srv.kind})": server_version(srv.binary) for srv in self.servers},
            "rclone": (cmd("rclone", "version") or "").splitlines()[0],
            "python": platform.python_version(),
            "python-minio": minio_pkg.__version__,
            "psycopg": psycopg.__version__,
            "postgresql": pg,
            "sha256sum": (cmd("sha256sum", "--version") or "").splitlines()[0],
            "openssl": cmd("openssl", "version"),
        }
        self.results["mode"] = "quick" if self.quick else "full"
        self.results["sizes"] = self.sizes

    def profile(self, n, size, wrap, settings):
        """One --rescan of n files of `size` bytes under a wrapper command (perf, strace,
        valgrind…), with optional extra config lines; prints the summary and where logs are."""
        name = f"profile-{n}"
        media_root = self.media(name)
        log(f"profile: generating {n} x {size} bytes")
        names = self.make_files(os.path.join(media_root, "confrontas"), n, size)
        self.reset_table(self.rows_for(names, "PROF"))
        overrides = dict(item.split("=", 1) for item in settings.split(";") if item.strip())
        config = self.write_config(name, media_root, f"bench-{self.run_id}-p{n}",
                                   overrides={k.strip(): v.strip() for k, v in overrides.items()})
        cmd = wrap.split() + [self.binary, "--config", config, "--rescan", "--json"]
        log(f"profile: {' '.join(cmd)}")
        run = self.timed(name, cmd)
        summary = self.daemon_json(run)
        run.pop("stdout_path")
        print(json.dumps({"files": n, "file_bytes": size, "moved": summary.get("moved"),
                          "summary": {k: v for k, v in summary.items() if k != "problems"},
                          "problems": (summary.get("problems") or [])[:10],
                          "daemon_elapsed_s": summary.get("elapsed_s"),
                          "files_per_s": n / summary["elapsed_s"] if summary.get("elapsed_s") else None,
                          "cpu_ms_per_file": (run["user_s"] + run["sys_s"]) * 1000 / n,
                          "server_cpu_ms_per_file": (run["server_cpu_s"] or 0) * 1000 / n,
                          "postgres_cpu_ms_per_file": run["postgres_cpu_s"] * 1000 / n, **run}, indent=2))
        return 0 if summary.get("moved") == n else 1

    def run(self):
        self.machine()
        sections = [("hashing", self.hashing), ("backlog", self.backlog), ("latency", self.latency),
                    ("memory_big_file", self.big_file), ("scaling", self.scaling),
                    ("operator", self.operator), ("soak", self.soak)]
        if self.args.only:
            wanted = set(self.args.only.split(","))
            unknown = wanted - {name for name, _ in sections}
            if unknown:
                raise SystemExit(f"unknown section(s) {', '.join(sorted(unknown))}")
            sections = [(name, fn) for name, fn in sections if name in wanted]
        for name, fn in sections:
            started = time.monotonic()
            try:
                fn()
            except Exception as e:  # a measurement failed: record it, carry on, exit 1 at the end
                self.cleanup()
                log(f"{name} FAILED: {e}")
                self.results["errors"].append({"section": name, "error": str(e),
                                               "trace": traceback.format_exc(limit=3)})
            self.results.setdefault("section_s", {})[name] = time.monotonic() - started
        self.results["machine"]["loadavg_end"] = loadavg()
        self.results["harness_s"] = time.time() - self.args.harness_started
        self.write()
        return 1 if self.results["errors"] else 0

    def write(self):
        os.makedirs(self.args.out, exist_ok=True)
        stem = "partial" if self.args.only else "quick" if self.quick else "latest"
        with open(os.path.join(self.args.out, f"{stem}.json"), "w") as f:
            json.dump(self.results, f, indent=2, default=str)
            f.write("\n")
        with open(os.path.join(self.args.out, f"{stem}.md"), "w") as f:
            f.write(render_markdown(self.results))
        log(f"results: {os.path.join(self.args.out, stem)}.md and .json")


def ratio_goal(entry, kind, sb, ratio):
    """The goal text of a backlog ratio as the run recorded it (None: reported without a goal)."""
    if "goals" in sb:
        return sb["goals"].get(ratio)
    goal = backlog_goal(entry["file_bytes"], kind, ratio)
    return goal[0] if goal else None


def size_label(entry):
    """"200 KB (204,800 bytes)" for a backlog size (older results: the byte count alone)."""
    if entry.get("label"):
        return f"{entry['label']} ({entry['file_bytes']:,} bytes)"
    return f"{entry['file_bytes']:,} bytes"


def render_backlog(r, sizes, add):
    """Section 1: the size curve, then one table per size and server."""
    first = sizes[0]
    orders = first.get("round_orders") or [first.get("order", list(BACKLOG_ORDER))] * first["repeats"]
    servers = list(dict.fromkeys(kind for entry in sizes for kind in entry["servers"]))
    add(f"## 1. Backlog: {len(sizes)} file size(s), {first['repeats']} round(s) on each server\n")
    add("Sizes: " + "; ".join(f"{size_label(e)} × {e['files']:,} files"
                              + (f" ({e['stands_for']})" if e.get("stands_for") else "") for e in sizes)
        + f". Servers: {', '.join(servers)}.\n")
    add(("Each round runs the contenders in a rotated order: "
         + "; ".join(f"round {i} {', '.join(order)}" for i, order in enumerate(orders, 1))
         if first.get("round_orders") else f"Each round runs the contenders in the order {', '.join(orders[0])}")
        + ". Each run gets a freshly copied folder, freshly loaded rows and a fresh object prefix (deleted "
        "after the run). files/s and MB/s (10^6 bytes) are the median over the rounds, from wall time "
        "including process start. CPU is the contender's own user+sys; S3 server CPU is the server's; "
        "PostgreSQL CPU is that of the backends connected to the bench database. The daemon runs with "
        f"`pipeline.max_in_flight` = {first.get('daemon_max_in_flight') or '?'} (its default, not set by the "
        "harness), so (e) gives rclone the same number of files in flight.\n")
    add("PG round trips/file: (a) and (c) run once more, untimed, on up to "
        f"{ROUND_TRIP_FILES} files of the size, on the first server, with their PostgreSQL URL pointed at a counting "
        "proxy: the frontend's Sync and simple Query messages (the times the client waits for the server; "
        "statements pipelined before one Sync count once) over the files moved. The other contenders do not "
        "use the database.\n")
    add("### Size curve\n")
    add("| size | files | server | ours (a) files/s | rclone16 (e) files/s | limit (d) files/s | a/e | a/d |")
    add("|---|---|---|---|---|---|---|---|")
    for entry in sizes:
        for kind, sb in entry["servers"].items():
            c = sb["contenders"]
            add(f"| {size_label(entry)} | {entry['files']:,} | {kind} | {c['a']['files_per_s_median']:.0f} | "
                f"{c['e']['files_per_s_median']:.0f} | {c['d']['files_per_s_median']:.0f} | "
                f"{sb['ratios']['a/e']:.2f} | {sb['ratios']['a/d']:.2f} |")
    add("")
    for entry in sizes:
        rt = entry.get("pg_round_trips")
        for kind, sb in entry["servers"].items():
            version = r["versions"].get(f"s3_server ({kind})") or kind
            add(f"### {size_label(entry)} × {entry['files']:,} files: {kind} ({version})\n")
            with_rt = rt is not None and rt.get("server") == kind
            add("| contender | files/s | MB/s | each round (files/s) | own CPU ms/file | S3 server CPU ms/file | "
                "PostgreSQL CPU ms/file | " + ("PG round trips/file | " if with_rt else "") + "peak RSS MiB |")
            add("|---|---|---|---|---|---|---|" + ("---|" if with_rt else "") + "---|")
            for key in ("a", "e", "b", "c", "d"):
                c = sb["contenders"][key]
                trips = ""
                if with_rt:
                    trips = f"{rt[key]['round_trips_per_file']:.2f} | " if key in rt else "— | "
                add(f"| ({key}) {c['what']} | {c['files_per_s_median']:.0f} | {c['mb_per_s_median']:.1f} | "
                    f"{', '.join(f'{x:.0f}' for x in c['files_per_s_runs'])} | {c['cpu_s_per_file_median'] * 1000:.2f} | "
                    f"{c['server_cpu_s_per_file_median'] * 1000:.2f} | {c['postgres_cpu_s_per_file_median'] * 1000:.2f} | "
                    f"{trips}{c['max_rss_mib']:.1f} |")
            add("")
            if with_rt:
                add(f"Round trips counted on {rt['files']:,} files: " + "; ".join(
                    f"({key}) {rt[key]['round_trips']:,} ({rt[key]['syncs']:,} Sync + {rt[key]['simple_queries']:,} "
                    f"simple Query), {rt[key]['parses_per_file']:.2f} Parse messages (statements parsed) per file, "
                    f"{rt[key]['connections']} connection(s)" for key in ("a", "c") if key in rt) + ".\n")
            elif rt is not None:
                add(f"PG round trips/file: measured on {rt.get('server')} only (its table of this size).\n")
            add("| ratio (files/s) | value | goal | result |\n|---|---|---|---|")
            for key in BACKLOG_RATIOS:
                ratio = f"a/{key}"
                goal = ratio_goal(entry, kind, sb, ratio)
                add(f"| {ratio} (vs {BACKLOG_SHORT[key]}) | {sb['ratios'][ratio]:.2f} | {goal or '—'} | "
                    f"{met(sb['targets_met'][ratio]) if goal else 'reported'} |")
            add("")
            add("Load average (1 min) before each run, round by round: " + "; ".join(
                f"{k}: " + ", ".join(f"{run['load_before'][0]:.2f}" for run in sb["contenders"][k]["runs"])
                for k in BACKLOG_ORDER if k in sb["contenders"]) + "\n")


def render_markdown(r):
    m, v = r["machine"], r["versions"]
    L = []
    add = L.append
    add(f"# confronta-sync benchmark ({r['mode']} run)\n")
    add(f"Written by `bench/run.sh{' --quick' if r['mode'] == 'quick' else ''}` on {m['started']}; "
        f"the harness took {r['harness_s']:.0f} s. See `bench/README.md` for what each figure means.")
    if r["mode"] == "quick":
        add("**Quick mode:** sizes are reduced to prove the harness runs; the figures are not the ones "
            "that count and missed targets do not fail it.")
    add("")
    add("## Machine\n")
    add("| | |\n|---|---|")
    add(f"| CPU | {m['cpu']} ({m['cores']} cores{', SHA-NI' if m['sha_ni'] else ''}) |")
    add(f"| RAM | {m['ram_gib']:.1f} GiB |")
    add(f"| kernel | {m['kernel']} |")
    add(f"| load average at start (1/5/15 min) | {' / '.join(f'{x:.2f}' for x in m['loadavg_start'])} |")
    add(f"| load average at end | {' / '.join(f'{x:.2f}' for x in m['loadavg_end'])} |")
    add("")
    add("The machine is shared (other builds and tests run at the same time), so absolute figures are "
        "noisy; the load average before each run is listed with it.\n")
    add("## Versions\n")
    add("| | |\n|---|---|")
    for k, val in v.items():
        add(f"| {k} | {val} |")
    add("")
    if r["errors"]:
        add("## Failed measurements\n")
        for e in r["errors"]:
            add(f"- **{e['section']}**: {e['error']}")
        add("")

    add("## Targets\n")
    add("| target | figure | goal | result |\n|---|---|---|---|")
    b = r.get("backlog")
    # Older results have one backlog size only.
    sizes = r.get("backlog_sizes") or ([b] if b else [])
    for entry in sizes:
        for kind, sb in entry["servers"].items():
            for key in BACKLOG_RATIOS:
                ratio = f"a/{key}"
                goal = ratio_goal(entry, kind, sb, ratio)
                # a/e and a/d at every size and server (the curve), a/b and a/c where they have a goal.
                if key in ("e", "d") or goal:
                    add(f"| backlog files/s {ratio} ({BACKLOG_SHORT[key]}), {size_label(entry)}, {kind} | "
                        f"{sb['ratios'][ratio]:.2f} | {goal or '—'} | "
                        f"{met(sb['targets_met'][ratio]) if goal else 'reported'} |")
    lat = r.get("latency")
    if lat:
        for label, run in lat["runs"].items():
            tm = lat["targets_met"][label]
            add(f"| latency p50, settle_ms = {run['settle_ms']} | {fmt(run['p50_ms'])} ms | ≤ 30 ms | {met(tm['p50'])} |")
            add(f"| latency p99, settle_ms = {run['settle_ms']} | {fmt(run['p99_ms'])} ms | ≤ 200 ms | {met(tm['p99'])} |")
    h = r.get("hashing")
    if h:
        add(f"| hashing vs openssl dgst -sha256 (hash_file, whole-file digest) | {h['ratios']['hash_file/openssl']:.2f}× | ≥ 0.90× | {met(h['targets_met']['hash_file'])} |")
        add(f"| hashing vs openssl dgst -sha256 (with {PART_SIZE // MIB} MiB part digests, as the daemon does above {PART_SIZE // MIB} MiB) | {h['ratios']['hash_file_parts/openssl']:.2f}× | ≥ 0.90× | {met(h['targets_met']['hash_file_parts'])} |")
    big = r.get("memory_big_file")
    if big:
        add(f"| one {big['bytes'] // MIB} MiB file: MB/s vs rclone copy, {big['server']} | {big['ratio_vs_rclone_copy']:.2f}× "
            f"({big['mb_per_s']:.0f} vs {big['rclone_copy']['mb_per_s']:.0f} MB/s) | ≥ 0.90× | {met(big['targets_met']['vs_rclone_copy'])} |")
        add(f"| peak RSS, one {big['bytes'] // MIB} MiB file | {big['max_rss_mib']:.1f} MiB | ≤ 40 MiB | {met(big['targets_met']['rss'])} |")
    mb = r.get("memory_backlog")
    if mb:
        add(f"| peak RSS, {mb['files']:,}-file backlog, --dry-run | {mb['dry_run_max_rss_mib']:.1f} MiB | ≤ 40 MiB | {met(mb['dry_run_max_rss_mib'] <= 40)} |")
        add(f"| peak RSS, {mb['files']:,}-file backlog, real run | {mb['rescan_max_rss_mib']:.1f} MiB | ≤ 40 MiB | {met(mb['rescan_max_rss_mib'] <= 40)} |")
    ops = r.get("operator")
    if ops:
        for key, what in (("verify", "verify"), ("verify_deep", "verify --deep (200-row sample)"), ("orphans", "orphans --delete-objects")):
            add(f"| peak RSS, {what} on {ops['rows']:,} rows | {ops[key]['max_rss_mib']:.1f} MiB | ≤ 40 MiB | {met(ops['targets_met'][key])} |")
    soak = r.get("soak")
    if soak:
        add(f"| soak: daemon RSS flat over {soak['duration_s']} s | {soak['second_quarter']['rss_mib_max']:.1f} → {soak['last_quarter']['rss_mib_max']:.1f} MiB | last quarter ≤ second + max(2 MiB, 5 %) | {met(soak['targets_met']['rss_flat'])} |")
        add(f"| soak: daemon peak RSS over {soak['duration_s']} s | {fmt(soak['daemon_peak_rss_mib'])} MiB | ≤ 40 MiB | {met(None if soak['daemon_peak_rss_mib'] is None else soak['daemon_peak_rss_mib'] <= TARGETS['rss_mib'])} |")
        add(f"| soak: daemon CPU flat over {soak['duration_s']} s | {fmt(soak['second_quarter']['cpu_percent'])} → {fmt(soak['last_quarter']['cpu_percent'])} % | last quarter ≤ 1.5 × second + 1 point | {met(soak['targets_met']['cpu_flat'])} |")
    s = r.get("scaling")
    if s:
        worst = max(s["sizes"], key=lambda e: abs(e["vs_smallest"]))
        add(f"| scaling: time per file flat (±20 %) | worst {worst['vs_smallest'] * 100:+.0f} % at {worst['files']:,} files | ±20 % | {met(s['targets_met']['flat'])} |")
    add("")

    if sizes:
        render_backlog(r, sizes, add)
    if lat:
        add(f"## 2. Watch-mode latency: {lat['rate_per_s']} files/s for {lat['duration_s']} s, "
            f"{lat['file_bytes']:,} bytes each\n")
        add("The daemon runs as a service (not `--rescan`). A writer saves each file the way Django does "
            "(O_EXCL create, 64 KiB writes, close; every fifth renamed in from a temp folder) and inserts its "
            "row right after. Latency is from the close (or rename) to the commit of the row's record "
            "(a trigger stores clock_timestamp() of the daemon's compare-and-set).\n")
        add("| settle_ms | files | p50 ms | p90 ms | p99 ms | max ms | mean ms | files > 900 ms | "
            "row after close p50/p99 ms | daemon CPU ms/file | daemon peak RSS MiB | load before |")
        add("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for label, run in lat["runs"].items():
            add(f"| {run['settle_ms']} ({run['settle_source']}) | {run['recorded']:,}/{run['files']:,} | "
                f"{fmt(run['p50_ms'])} | {fmt(run['p90_ms'])} | {fmt(run['p99_ms'])} | {fmt(run['max_ms'])} | "
                f"{fmt(run['mean_ms'])} | {run['over_900ms']} | {run['row_after_close_ms_p50']:.1f} / "
                f"{run['row_after_close_ms_p99']:.1f} | "
                f"{fmt(None if run['daemon_cpu_s_per_file'] is None else run['daemon_cpu_s_per_file'] * 1000, 2)} | "
                f"{fmt(run['daemon_peak_rss_mib'])} | {run['load_before'][0]:.2f} |")
        add("")
        add("A file the watcher sees closed after writing (or renamed in) is taken at once; `settle_ms` only "
            "delays files found without that signal (the start-up walk, the poller, reconcile passes). Both "
            "runs therefore measure the same path; the second shows that the setting does not matter here.\n")
    if h:
        add(f"## 3. Hashing: {h['bytes'] // MIB} MiB of random bytes, warm page cache, {h['repeats']} runs each\n")
        add("| hasher | MB/s (median) | runs | vs openssl | vs sha256sum |\n|---|---|---|---|---|")
        for key, what in (("openssl", "openssl dgst -sha256 (the target's reference)"),
                          ("sha256sum", "coreutils sha256sum"),
                          ("hash_file", f"confronta_sync hash_file (whole-file digest; files ≤ {PART_SIZE // MIB} MiB)"),
                          ("hash_file_parts", f"hash_file with {PART_SIZE // MIB} MiB part digests (files > {PART_SIZE // MIB} MiB)")):
            med = h["mb_per_s_median"]
            add(f"| {what} | {med[key]:.0f} | {', '.join(f'{x:.0f}' for x in h['mb_per_s_runs'][key])} | "
                f"{med[key] / med['openssl']:.2f}× | {med[key] / med['sha256sum']:.2f}× |")
        add(f"\nLoad average before: {h['load_before'][0]:.2f}. Wall time of each process, start included.\n")
    if big or mb:
        add("## 4. Memory (peak RSS from /usr/bin/time)\n")
        add("| run | peak RSS MiB | wall s | CPU s | load before |\n|---|---|---|---|---|")
        if big:
            rc = big["rclone_copy"]
            add(f"| one {big['bytes'] // MIB} MiB sparse file, --rescan, {big['server']} ({big['mb_per_s']:.0f} MB/s) | "
                f"{big['max_rss_mib']:.1f} | {big['wall_s']:.1f} | {big['user_s'] + big['sys_s']:.1f} | {big['load_before'][0]:.2f} |")
            add(f"| the same file, rclone copy (its defaults), {big['server']} ({rc['mb_per_s']:.0f} MB/s) | "
                f"{rc['max_rss_mib']:.1f} | {rc['wall_s']:.1f} | {rc['user_s'] + rc['sys_s']:.1f} | {rc['load_before'][0]:.2f} |")
        if s:
            for e in s["sizes"]:
                if "dry_run" in e:
                    d = e["dry_run"]
                    add(f"| {e['files']:,}-file backlog, --rescan --dry-run | {d['max_rss_mib']:.1f} | {d['wall_s']:.1f} | "
                        f"{d['user_s'] + d['sys_s']:.1f} | {d['load_before'][0]:.2f} |")
                run = e["rescan"]
                add(f"| {e['files']:,}-file backlog, --rescan | {run['max_rss_mib']:.1f} | {run['wall_s']:.1f} | "
                    f"{run['user_s'] + run['sys_s']:.1f} | {run['load_before'][0]:.2f} |")
        add("")
    if s:
        add(f"## 5. Scaling: --rescan of {SMALL_FILE_BYTES:,}-byte files\n")
        add("ms/file is the daemon's own elapsed time (from its JSON summary, after start-up checks) over the "
            "file count; the deviation is against the smallest backlog.\n")
        add("| files | ms/file | files/s | wall s | vs smallest | CPU ms/file | S3 server CPU ms/file | PostgreSQL CPU ms/file | peak RSS MiB | load before |")
        add("|---|---|---|---|---|---|---|---|---|---|")
        for e in s["sizes"]:
            run = e["rescan"]
            add(f"| {e['files']:,} | {run['ms_per_file']:.2f} | {run['files_per_s']:.0f} | {run['wall_s']:.1f} | "
                f"{e['vs_smallest'] * 100:+.0f} % | {(run['user_s'] + run['sys_s']) * 1000 / e['files']:.2f} | "
                f"{(run['server_cpu_s'] or 0) * 1000 / e['files']:.2f} | {run['postgres_cpu_s'] * 1000 / e['files']:.2f} | "
                f"{run['max_rss_mib']:.1f} | {run['load_before'][0]:.2f} |")
        add("")
    if ops:
        add(f"## 6. Operator commands on {ops['rows']:,} rows\n")
        add(f"A table of {ops['rows']:,} rows marked as in MinIO, made with `generate_series`; {ops['objects_present']:,} "
            f"of them have their object (4 of {ops['deep_object_bytes'] // MIB} MiB, for `--deep`), the others name "
            f"objects never uploaded (each a MISMATCH line); {ops['orphan_objects']:,} objects no row references. "
            "Peak RSS from /usr/bin/time; stdout goes to a file.\n")
        add("| command | peak RSS MiB | wall s | CPU s | PostgreSQL CPU s | last line |\n|---|---|---|---|---|---|")
        for key, what in (("verify", "verify"), ("verify_deep", "verify --deep --limit 200"),
                          ("orphans", "orphans --older-than 0s --delete-objects")):
            run = ops[key]
            add(f"| {what} | {run['max_rss_mib']:.1f} | {run['wall_s']:.1f} | {run['user_s'] + run['sys_s']:.1f} | "
                f"{run['postgres_cpu_s']:.1f} | {run['summary']} |")
        add("")
    if soak:
        add(f"## 7. Soak: the daemon for {soak['duration_s']} s, {soak['rate_per_s']} files/s plus {soak['orphans']:,} orphan files\n")
        add("The daemon runs as a service with `orphan_after_s = 1` and `reconcile_interval_s = 5`; the orphans "
            "are in the folder before it starts; each trickle file gets its row right after it is written. "
            f"RSS (VmRSS) and CPU (utime+stime) sampled every {soak['sample_interval_s']:.0f} s; the first "
            "quarter is warm-up.\n")
        add("| | RSS MiB (max) | CPU % |\n|---|---|---|")
        add(f"| second quarter | {soak['second_quarter']['rss_mib_max']:.1f} | {fmt(soak['second_quarter']['cpu_percent'])} |")
        add(f"| last quarter | {soak['last_quarter']['rss_mib_max']:.1f} | {fmt(soak['last_quarter']['cpu_percent'])} |")
        add(f"| whole run | start {soak['rss_mib_start']:.1f}, end {soak['rss_mib_end']:.1f}, peak {fmt(soak['daemon_peak_rss_mib'])} | "
            f"{soak['cpu_percent_overall']:.1f} |")
        add(f"\n{soak['moved']:,} of {soak['files']:,} trickle files recorded.\n")
    add("## Section times\n")
    add("| section | s |\n|---|---|")
    for k, val in r.get("section_s", {}).items():
        add(f"| {k} | {val:.0f} |")
    add("")
    return "\n".join(L)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--hasher", required=True)
    parser.add_argument("--server", nargs=3, action="append", required=True, metavar=("KIND", "DIR", "BINARY"),
                        help="an S3 server run.sh started (repeatable; the first runs every section but the backlog)")
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--harness-started", type=float, default=time.time())
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--only", help="comma-separated sections: hashing,backlog,latency,memory_big_file,scaling,operator,soak")
    parser.add_argument("--profile", type=int, metavar="N")
    parser.add_argument("--profile-bytes", type=int, default=BACKLOG_FILE_BYTES)
    parser.add_argument("--profile-wrap", default="")
    parser.add_argument("--profile-config", default="")
    args = parser.parse_args()
    bench = Bench(args)

    def stop(signum, _frame):
        bench.cleanup()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if args.profile:
            return bench.profile(args.profile, args.profile_bytes, args.profile_wrap, args.profile_config)
        return bench.run()
    finally:
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())
