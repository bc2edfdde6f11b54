"""Issue 28 item 4: on a server without conditional writes (garage), is one LIST per batch of 16
new object names cheaper than one HEAD per name? Prints the server's CPU and the wall time per
name for both, for a prefix that already holds EXISTING objects.

Names follow the daemon's default template (`{prefix}venta_{numero}_confronta_{id}_{sha12}.pdf`),
so a batch's 16 names are spread over the prefix: the one LIST that answers for all of them
reads everything from the batch's first name to its last.

    CONFRONTA_TEST_S3_SERVER=garage scripts/s3-test-server.sh start /tmp/g4 > /tmp/g4.env
    ~/.cache/confronta-sync/bench-venv/bin/python bench/list_vs_head.py /tmp/g4.env \
        "$(pgrep -f 'garage -c /tmp/g4')" EXISTING PREFIX/
    scripts/s3-test-server.sh stop /tmp/g4
"""
import hashlib
import io
import os
import random
import sys
import time

from minio import Minio

env_file, pid, existing, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
env = dict(line.strip().split("=", 1) for line in open(env_file) if "=" in line)
client = Minio(env["CONFRONTA_TEST_S3_ENDPOINT"].split("//")[1], access_key=env["CONFRONTA_TEST_S3_ACCESS_KEY"],
               secret_key=env["CONFRONTA_TEST_S3_SECRET_KEY"], secure=False, region="us-east-1")
bucket = env["CONFRONTA_TEST_S3_BUCKET"]
NEW = 2000


def server_cpu_s():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def name(i):
    numero = random.Random(i).randrange(10**9, 10**10)
    return f"{prefix}venta_{numero}_confronta_{i}_{hashlib.sha256(str(i).encode()).hexdigest()[:12]}.pdf"


for i in range(existing):
    client.put_object(bucket, name(i), io.BytesIO(b"x"), 1)
new = [name(existing + i) for i in range(NEW)]
batches = [sorted(new[i:i + 16]) for i in range(0, NEW, 16)]


def head_each():
    for object_name in new:
        try:
            client.stat_object(bucket, object_name)
        except Exception:  # absent: what the daemon expects before an upload
            pass


def list_each_batch():
    for batch in batches:
        for listed in client.list_objects(bucket, prefix=prefix + "venta_", start_after=batch[0][:-1],
                                          recursive=True):
            if listed.object_name > batch[-1]:
                break


for label, run in (("HEAD per name", head_each), ("LIST per batch of 16", list_each_batch)):
    cpu0, t0 = server_cpu_s(), time.monotonic()
    run()
    cpu1, t1 = server_cpu_s(), time.monotonic()
    print(f"{existing} objects under {prefix}, {NEW} new names: {label}: "
          f"server CPU {1000 * (cpu1 - cpu0) / NEW:.3f} ms/name, wall {1000 * (t1 - t0) / NEW:.3f} ms/name")
