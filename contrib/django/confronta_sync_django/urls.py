"""URL patterns to add to the `telefonica` app's URLconf (whose app_name is "telefonica", so the
names resolve as telefonica:descargar_confronta and telefonica:resubir_confronta_minio):

    from confronta_sync_django.urls import urlpatterns as confronta_sync_urls

    app_name = "telefonica"
    urlpatterns = [...] + confronta_sync_urls
"""

from django.urls import path

from . import views

urlpatterns = [
    path(
        "venta/<int:venta_id>/descargar-confronta/",
        views.descargar_confronta,
        name="descargar_confronta",
    ),
    path(
        "venta/<int:venta_id>/resubir-confronta-minio/",
        views.resubir_confronta_minio,
        name="resubir_confronta_minio",
    ),
]
