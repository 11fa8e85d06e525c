"""allauth's account adapter: panel logins go through mailcore's login throttle, and the
links in account mail point at SITE_URL.

allauth's own "login_failed" limit counts per login name ("5/5m/key"), so anyone could
lock a customer out by failing five times with their email. Here the panel's password
logins (and re-authentications) are throttled as mail logins are (mailcore.ratelimit):
the failing address waits and is refused in the end, the customer's right password from
elsewhere still works. allauth's remaining IP-based limits see the real client address.

allauth builds mail links from the request, that is from its Host header. Django's host
check already refuses hosts other than SITE_URL's; building the links from SITE_URL as well
means a reset key can never be mailed under someone else's name, whatever reaches this far.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from django import forms
from django.conf import settings
from django.http import HttpRequest

from mailcore import ratelimit
from panel.clientip import client_ip

log = logging.getLogger("panel.accounts")


def too_many_attempts(seconds: int) -> str:
    return f"Too many failed login attempts. Try again in {seconds} second{'s' * (seconds != 1)}."


@dataclass(frozen=True)
class PublicSite:
    """What account mail says about the site (allauth's templates use name and domain)."""

    name: str
    domain: str


def on_site(url: str) -> str:
    """Return a link (absolute, or a path) moved onto SITE_URL's scheme and host."""
    site = urlsplit(settings.SITE_URL)
    parts = urlsplit(url)
    if parts.scheme and parts.scheme not in ("http", "https"):
        return url
    return urlunsplit((site.scheme, site.netloc, parts.path, parts.query, parts.fragment))


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        if settings.SITE_URL:
            context = {key: on_site(value) if key.endswith("_url") and isinstance(value, str)
                       else value for key, value in context.items()}
            host = urlsplit(settings.SITE_URL).netloc
            context["current_site"] = PublicSite(name=host, domain=host)
        super().send_mail(template_prefix, email, context)

    def get_client_ip(self, request: HttpRequest) -> str:
        return client_ip(request) or super().get_client_ip(request)

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        # Replaced by the throttle in authenticate(): no lock-out by login name.
        pass

    def authenticate(self, request: HttpRequest, **credentials: Any):
        login = str(credentials.get("email") or credentials.get("username") or "")
        ip = client_ip(request)
        # A web worker must not sleep: an attempt before the "not before" time of this
        # address (or of this address for this login) is answered at once, unchecked.
        wait = ratelimit.wait_before(login, ip)
        if wait:
            raise forms.ValidationError(too_many_attempts(wait))
        try:
            attempt = ratelimit.begin(login, ip)
        except ratelimit.Refused as refused:
            log.info("panel login refused user=%s ip=%s rate_limited=True",
                     _printable(login), ip)
            raise forms.ValidationError(too_many_attempts(refused.retry_after)) from None
        try:
            user = super().authenticate(request, **credentials)
        except BaseException:
            attempt.abandon()
            raise
        if user is None:
            ratelimit.hold(login, ip, attempt.failed())
            log.info("panel login failed user=%s ip=%s rate_limited=False",
                     _printable(login), ip)
        else:
            attempt.succeeded()
        return user


def _printable(text: str) -> str:
    # A login name is the client's text: no line breaks or controls in our log lines.
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:200]
