from django.conf import settings
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django.views.static import serve

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("telefonica/", include("telefonica.urls")),
    path("", RedirectView.as_view(url="/telefonica/venta/nueva/")),
    # Local confrontas (before the sidecar moves them), as a front server would serve them.
    re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
]
