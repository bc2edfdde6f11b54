from django.contrib import admin
from django.urls import include, path

from tests.telefonica.admin import sitio_simple

urlpatterns = [
    path("admin/", admin.site.urls),
    path("admin-simple/", sitio_simple.urls),
    path("telefonica/", include("tests.telefonica.urls")),
]
