"""Webmail logins: a mailbox signed in within the browser session, apart from the panel's user.

The session holds, under its own key, the mailbox id and a fingerprint of the credential
that opened it (the mailbox password, or one app password together with the mailbox
password). A changed mailbox password or a revoked app password no longer matches, and
ends the webmail session on its next request: changing the password signs every web
session of the mailbox out, but the one that changed it (which signs in again).
The panel's login (django.contrib.auth) never reads or writes this key, nor does this
module touch the panel's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.crypto import constant_time_compare, salted_hmac

from mailcore.models import AppPassword, Mailbox
from mailcore.principal import Principal

SESSION_KEY = "webmail"
# The webmail pages' own policy: nothing but this site's files, no inline script.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
               "script-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
               "form-action 'self'; frame-ancestors 'none'")


def _fingerprint(kind: str, key: int, stored_hash: str) -> str:
    return salted_hmac("webmail.credential", f"{kind}:{key}:{stored_hash}").hexdigest()


def _stored(mailbox: Mailbox, kind: str, key: int) -> str | None:
    """Return what the session's fingerprint covers: the hashes its credential rests on."""
    if kind == "password":
        return mailbox.password_hash
    app = (AppPassword.objects.for_mailbox(mailbox).filter(pk=key)
           .values_list("password_hash", flat=True).first())
    return None if app is None else f"{app}:{mailbox.password_hash}"


def log_in(request: HttpRequest, principal: Principal) -> None:
    """Sign the principal in to webmail in this session (the panel's login is left alone)."""
    kind, key = principal.credential, principal.credential_id
    stored = _stored(Mailbox.objects.get(pk=principal.mailbox_id), kind, key)
    # A new session key, against fixation; the panel's login, if any, carries over.
    request.session.cycle_key()
    request.session[SESSION_KEY] = {"mailbox": principal.mailbox_id, "kind": kind, "key": key,
                                    "fingerprint": _fingerprint(kind, key, stored)}


def log_out(request: HttpRequest) -> None:
    """Sign webmail out; a panel login in the same browser stays."""
    request.session.pop(SESSION_KEY, None)
    request.session.cycle_key()


def current_principal(request: HttpRequest) -> Principal | None:
    """Return the principal signed in to webmail, if its credential still holds."""
    data = request.session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    mailbox = (Mailbox.objects.select_related("domain")
               .filter(pk=data.get("mailbox"), is_active=True, domain__is_active=True,
                       domain__verified_at__isnull=False).first())
    if mailbox is None:
        return None
    kind = "password" if data.get("kind") == "password" else "app"
    key = int(data.get("key") or 0)
    stored = _stored(mailbox, kind, key)
    if stored is None or not constant_time_compare(
            _fingerprint(str(data.get("kind")), key, stored), str(data.get("fingerprint", ""))):
        return None
    return Principal.of(mailbox, kind, key)


def _protect(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)  # private mail: no copies in caches
    response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def mailbox_required(view: Callable[..., HttpResponse] | None = None, *, api: bool = False):
    """Let a signed-in mailbox through (as request.principal); others go to the login page.

    With api, answer 401 with JSON instead (the page's scripts then show the login link).
    """
    def decorate(function: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(function)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            principal = current_principal(request)
            if principal is None:
                request.session.pop(SESSION_KEY, None)
                login = reverse("webmail:login")
                if api:
                    return JsonResponse({"login": login}, status=401)
                return redirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
            request.principal = principal
            return _protect(function(request, *args, **kwargs))

        return wrapper

    return decorate(view) if view is not None else decorate


def protect(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Give a page that needs no login (the login page) the same headers."""
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return _protect(view(request, *args, **kwargs))

    return wrapper
