"""The python `minio` client, configured from CONFRONTA_SYNC_MINIO. Only reads: it presigns GET
URLs and checks that an object exists. Uploading and deleting is the sidecar's job."""

import functools
import posixpath
from datetime import timedelta
from typing import Optional
from urllib.parse import quote

import urllib3
from minio import Minio
from minio.error import S3Error

from .conf import Endpoint, MinioSettings, minio_settings

# S3 error codes that mean "the object (or bucket) is not there", as opposed to "cannot tell".
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "NotFound", "ResourceNotFound"}


class MinioNoDisponible(Exception):
    """MinIO could not be asked (network, credentials, server error)."""


@functools.lru_cache(maxsize=8)
def _cliente(
    endpoint: Endpoint, access_key: str, secret_key: str, region: str, timeout_s: float
) -> Minio:
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
        retries=urllib3.Retry(total=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        maxsize=10,
    )
    # With the region given, presigning is computed locally: no request is made.
    return Minio(
        endpoint.host,
        access_key=access_key,
        secret_key=secret_key,
        secure=endpoint.secure,
        region=region,
        http_client=http,
    )


def cliente(publico: bool = False, config: Optional[MinioSettings] = None) -> Minio:
    """The client for the internal endpoint, or (publico=True) the one presigned URLs are
    signed for, which is the host the browser will be sent to."""
    c = config or minio_settings()
    endpoint = c.public_endpoint if publico else c.endpoint
    return _cliente(endpoint, c.access_key, c.secret_key, c.region, c.timeout_s)


def _content_disposition(disposicion: str, nombre: str) -> str:
    ascii_name = nombre.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    value = f'{disposicion}; filename="{ascii_name}"'
    if ascii_name != nombre:
        value += f"; filename*=UTF-8''{quote(nombre)}"
    return value


def url_descarga(
    object_name: str,
    expires: timedelta = timedelta(days=1),
    nombre_archivo: Optional[str] = None,
) -> str:
    """A presigned GET URL for `object_name`, valid for `expires` (at most 7 days, the S3
    limit). The browser is told to save it as `nombre_archivo` (default: the object's base
    name)."""
    c = minio_settings()
    nombre = nombre_archivo or posixpath.basename(object_name) or "confronta"
    return cliente(publico=True, config=c).presigned_get_object(
        bucket_name=c.bucket,
        object_name=object_name,
        expires=expires,
        response_headers={"response-content-disposition": _content_disposition(c.disposicion, nombre)},
    )


def objeto_existe(object_name: str) -> bool:
    """Whether the object is in the bucket. Raises MinioNoDisponible when MinIO cannot tell."""
    c = minio_settings()
    try:
        cliente(config=c).stat_object(bucket_name=c.bucket, object_name=object_name)
        return True
    except S3Error as e:
        if e.code in _NOT_FOUND:
            return False
        raise MinioNoDisponible(f"{e.code}: {e.message}") from e
    except Exception as e:  # urllib3 errors, invalid responses
        raise MinioNoDisponible(str(e)) from e
