from django.urls import path

from confronta_sync_django.urls import urlpatterns as confronta_sync_urls

from . import views

app_name = "telefonica"

urlpatterns = [
    path("venta/nueva/", views.venta_nueva, name="venta_nueva"),
    path("venta/<int:pk>/", views.detalle_venta_portabilidad, name="detalle_venta_portabilidad"),
    path("venta/<int:pk>/corregir/", views.venta_corregir, name="venta_corregir"),
] + confronta_sync_urls
