"""allauth's adapter for the panel: the links in account mail point at SITE_URL.

allauth builds them from the request, that is from its Host header. Django's host check
already refuses hosts other than SITE_URL's; building the links from SITE_URL as well means
a reset key can never be mailed under someone else's name, whatever reaches this far.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings


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
