"""The companion's two views, under the names the settings give (by default the seed plan's,
`telefonica:descargar_confronta` and `telefonica:resubir_confronta_minio`). Two ways to wire
them:

    # 1. Into the CRM's own app URLconf (the seed plan's way), whose app_name is the namespace
    #    of CONFRONTA_SYNC_DESCARGA_URL ("telefonica"):
    from confronta_sync_django.urls import urlpatterns as confronta_sync_urls

    app_name = "telefonica"
    urlpatterns = [...] + confronta_sync_urls

    # 2. Or included from the root URLconf, under a namespace of its own: the module declares
    #    app_name, the namespace of CONFRONTA_SYNC_DESCARGA_URL (say "confrontas" with
    #    CONFRONTA_SYNC_DESCARGA_URL = "confrontas:descargar_confronta"):
    path("telefonica/", include("confronta_sync_django.urls")),

`manage.py check` reverses every configured name (confronta_sync.W005/W006).
"""

from django.urls import path

from . import conf, views


def construir_urlpatterns():
    """The patterns, named after the settings as they are now."""
    return [
        path(
            "venta/<int:venta_id>/descargar-confronta/",
            views.descargar_confronta,
            name=conf.espacio_y_nombre(conf.descarga_url_name())[1],
        ),
        path(
            "venta/<int:venta_id>/resubir-confronta-minio/",
            views.resubir_confronta_minio,
            name=conf.espacio_y_nombre(conf.resubir_url_name())[1],
        ),
    ]


def __getattr__(nombre):
    # `urlpatterns` and `app_name` are computed when a URLconf reads them (an import, or
    # include()), not when this module is first imported: they follow the CRM's settings,
    # including a test's override_settings.
    if nombre == "urlpatterns":
        return construir_urlpatterns()
    if nombre == "app_name":
        return conf.espacio_y_nombre(conf.descarga_url_name())[0]
    raise AttributeError(f"module {__name__!r} has no attribute {nombre!r}")
