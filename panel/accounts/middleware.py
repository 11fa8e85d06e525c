"""Staff must set up TOTP before using the panel or the admin, when REQUIRE_STAFF_2FA is on."""

from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

# allauth's own pages (log out, email, 2FA setup) stay reachable, or nobody could comply.
EXEMPT_URL_NAME_PREFIXES = ("account_", "mfa_")


class StaffTwoFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs
                     ) -> HttpResponse | None:
        if not getattr(settings, "REQUIRE_STAFF_2FA", False):
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return None
        match = request.resolver_match
        if match is not None and (match.url_name or "").startswith(EXEMPT_URL_NAME_PREFIXES):
            return None
        if Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
            return None
        messages.warning(request, "Operators must use two-factor authentication: "
                                  "set up an authenticator app to continue.")
        return redirect("mfa_activate_totp")
