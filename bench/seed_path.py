"""Contender (c) of the backlog benchmark: the seed plan's per-file path, re-implemented.

The seed's management command `migrar_confrontas_minio` walks the ventas whose confronta is
still local and, for each one inside `transaction.atomic()`, calls `_subir_confronta_a_minio`:
upload with the python `minio` client (`fput_object`), save the three MinIO columns, remove the
local file, then clear `confronta` (a second save). One file after another, no hashing of its
own, no verification beyond what the client library does.

Run by bench/bench.py; prints one JSON line {"moved": N, "bytes": B, "elapsed_s": S}.
"""

import argparse
import json
import mimetypes
import os
import sys
import time
from urllib.parse import urlparse

import psycopg
from minio import Minio

TABLE = "telefonica_ventaportabilidad"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key-file", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--media-root", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()

    began = time.monotonic()
    endpoint = urlparse(args.endpoint)
    with open(args.secret_key_file) as f:
        secret = f.read().strip()
    client = Minio(
        endpoint.netloc,
        access_key=args.access_key,
        secret_key=secret,
        secure=endpoint.scheme == "https",
        region="us-east-1",
    )
    conn = psycopg.connect(args.pg_url)
    # VentaPortabilidad.objects.filter(confronta__isnull=False, confronta_subido_a_minio=False)
    rows = conn.execute(
        f"SELECT id, numero, confronta FROM {TABLE} "
        "WHERE confronta IS NOT NULL AND confronta <> '' AND NOT confronta_subido_a_minio ORDER BY id"
    ).fetchall()
    conn.commit()

    moved = 0
    total_bytes = 0
    errors = 0
    for venta_id, numero, confronta in rows:
        path = os.path.join(args.media_root, confronta)
        try:
            with conn.transaction():
                ext = os.path.splitext(confronta)[1].lower()
                object_name = f"{args.prefix}/venta_{numero}_confronta_{venta_id}{ext}"
                content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
                size = os.path.getsize(path)
                client.fput_object(args.bucket, object_name, path, content_type=content_type)
                url = f"{args.endpoint}/{args.bucket}/{object_name}"
                conn.execute(
                    f"UPDATE {TABLE} SET confronta_minio_url = %s, confronta_minio_object_name = %s, "
                    "confronta_subido_a_minio = TRUE WHERE id = %s",
                    (url, object_name, venta_id),
                )
                # _eliminar_confronta_local: remove, then clear the FileField.
                if os.path.exists(path):
                    os.remove(path)
                    conn.execute(f"UPDATE {TABLE} SET confronta = NULL WHERE id = %s", (venta_id,))
            moved += 1
            total_bytes += size
        except Exception as e:  # the seed logs and carries on
            errors += 1
            print(f"venta {venta_id}: {e}", file=sys.stderr)
    conn.close()
    print(json.dumps({"moved": moved, "bytes": total_bytes, "errors": errors,
                      "elapsed_s": time.monotonic() - began}))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
