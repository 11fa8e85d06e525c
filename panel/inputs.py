"""Numbers (ids and counters) and ?next= targets read from requests, alike on every page.

A number from a URL or a form ends up in a database query. str.isdigit() says yes to
"²", which int() then refuses; int() takes numbers of any size, which Postgres refuses
for a bigint column ("integer out of range") and SQLite past 2**63 (OverflowError).
Pages read such numbers through parse_id, and forms bound their IntegerFields with the
limits below, so an odd value is a 400, a 404 or a form error, never a 500.
"""

from __future__ import annotations

import re

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

BIGINT_MAX = 2 ** 63 - 1  # BigIntegerField and BigAutoField (ids, UIDs, modseqs, bytes)
INTEGER_MAX = 2 ** 31 - 1  # IntegerField and PositiveIntegerField
MB = 1024 ** 2

_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII digits only


def parse_id(value: object) -> int | None:
    """Return an id or counter sent as decimal text, or None if it is not one a bigint holds."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if number <= BIGINT_MAX else None


def local_url(request: HttpRequest, target: object) -> str | None:
    """Return a ?next= target if it is a path on this site, else None.

    Only a path is taken: redirect() reads anything else ("0", "home") as a URL name,
    and fails with NoReverseMatch.
    """
    if not isinstance(target, str) or not target.startswith("/"):
        return None
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return None
    return target
