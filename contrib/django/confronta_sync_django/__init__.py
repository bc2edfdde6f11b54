"""Django side of confronta-sync.

The sidecar daemon (confronta-sync) uploads each confronta that Django saves under
MEDIA_ROOT/confrontas/ to MinIO, records it in the venta's row and deletes the local file. This
app holds what stays in Django: the row's MinIO fields (as a model mixin), the download view
with its permission rule, the "mark for re-upload" view and the template fragments for the
detail and correction pages. Nothing here uploads.
"""

__version__ = "0.2.0"
