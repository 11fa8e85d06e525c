"""The panel's URL map: customer pages at /, accounts, the operator's dashboard and admin,
webmail, the well-known URLs mail clients configure themselves from, and /healthz."""

from __future__ import annotations

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from panel.health import healthz

# The admin logs in through allauth, so staff get the same rate limits and 2FA.
admin.site.login = secure_admin_login(admin.site.login)


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico on pages that name no icon: send them to ours."""
    # Resolved per request: the manifest of hashed names may not exist at import time.
    return HttpResponsePermanentRedirect(static("panel/favicon.svg"))


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon),
    path("", include("panel.customers.urls")),
    path("", include("panel.autoconfig.urls")),
    path("dashboard/", include("panel.dashboard.urls")),
    path("webmail/", include("panel.webmail.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
