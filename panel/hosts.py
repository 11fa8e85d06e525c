"""The hosts the web tier answers: SITE_URL's (Django's ALLOWED_HOSTS), and the mail-client
setup hosts autoconfig.<domain> and autodiscover.<domain> of the domains we host.

Customers point those names here (the DNS page says so), and there are as many as there are
hosted domains, so they cannot be listed in ALLOWED_HOSTS. This middleware runs before
Django's host check: for such a host it serves the setup URLs itself and nothing else; for any
other host it steps aside, and Django refuses what ALLOWED_HOSTS does not name (400).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.urls import Resolver404, resolve

from mailcore import clientconfig

SETUP_URLCONF = "panel.autoconfig.urls"


def client_setup_domain(host: str) -> str | None:
    """Return the hosted domain an autoconfig./autodiscover. host names, or None."""
    name, _ = split_domain_port(host.lower())
    label, dot, domain = name.partition(".")
    if not dot or label not in settings.CLIENT_SETUP_HOSTS or not domain:
        return None
    hosted = clientconfig.hosted_domain_for(f"user@{domain}")
    return hosted.name if hosted else None


class ClientSetupHostMiddleware:
    """Answer the mail-client setup URLs on autoconfig./autodiscover. hosts of hosted domains."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw_host = request.META.get("HTTP_HOST", "")
        label = raw_host.partition(".")[0].lower()
        if label not in settings.CLIENT_SETUP_HOSTS:
            return self.get_response(request)  # the usual path, and Django's host check
        domain = client_setup_domain(raw_host)
        if domain is None:
            return self.get_response(request)  # not ours: Django refuses it
        # The rest of the stack (sessions, CSRF, login) has nothing to do on these hosts, and
        # would ask Django's host check, which does not know them.
        request.client_setup_domain = domain
        try:
            match = resolve(request.path_info, urlconf=SETUP_URLCONF)
        except Resolver404:
            return HttpResponse("Not found\n", status=404, content_type="text/plain")
        try:
            response = match.func(request, *match.args, **match.kwargs)
        except Http404:
            return HttpResponse("Not found\n", status=404, content_type="text/plain")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
