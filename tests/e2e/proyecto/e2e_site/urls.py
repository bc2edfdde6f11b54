from django.urls import include, path
from django.views.generic import RedirectView

# No /media/ route: a local confronta is served only by the companion's permission-checked
# download view (as a front server should not serve MEDIA_ROOT/confrontas/ either).
urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("telefonica/", include("telefonica.urls")),
    path("", RedirectView.as_view(url="/telefonica/venta/nueva/")),
]
