"""The web client's address: the socket's, or the one our own reverse proxies report."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """Return the address of the client that sent this request.

    With TRUSTED_PROXY_HOPS = n > 0, each of our n proxies appended the address it took
    the request from to X-Forwarded-For, so the client is the n-th entry from the right;
    entries further left are the client's own to invent. Without enough entries (a
    request that bypassed the proxies) or with a malformed one, REMOTE_ADDR is used.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_HOPS
    if hops > 0:
        forwarded = [part.strip() for part in
                     request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            try:
                return str(ipaddress.ip_address(forwarded[-hops]))
            except ValueError:
                pass
    return remote
