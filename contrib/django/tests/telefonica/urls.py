"""The detail page the download view sends people back to, and the companion's URLs."""

from django.shortcuts import get_object_or_404, render
from django.urls import path

from confronta_sync_django.urls import urlpatterns as confronta_sync_urls

from .models import VentaPortabilidad

app_name = "telefonica"


def detalle_venta_portabilidad(request, pk):
    venta = get_object_or_404(VentaPortabilidad, pk=pk)
    return render(request, "telefonica/venta_detalle.html", {"venta": venta})


urlpatterns = [
    path("venta/<int:pk>/", detalle_venta_portabilidad, name="detalle_venta_portabilidad"),
] + confronta_sync_urls
