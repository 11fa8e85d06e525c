"""Login throttling for every protocol and web login: delays per address and account.

Modelled on Dovecot's auth penalty and fail2ban, and built so that nobody can use it to
lock someone else out:

- Per source address: every attempt reserves a slot in the address's counter *before*
  the password is checked (cache.add + cache.incr, atomic in Redis, in LocMemCache and in
  mailcore.filecache), and a success gives its slot back. So N concurrent attempts from
  one address get at most AUTH_MAX_FAILURES password checks: the others are told the
  address is busy (mail sessions wait for a slot without holding a thread). Once the
  address has AUTH_MAX_FAILURES failures it is refused outright, without a check, until
  AUTH_FAILURE_WINDOW has passed. That address only: an IPv6 client counts by its /64,
  which one host usually holds whole.
- Per normalised account (the spellings the login itself accepts share one count):
  failures only add delay, never refusal, and a success resets the count. Whoever guesses
  a user's password from anywhere cannot stop the user's own right password.
- The delay doubles from AUTH_FAILURE_DELAY per failure of the address or the account,
  whichever has more, up to AUTH_FAILURE_DELAY_MAX. Mail sessions spend it with
  asyncio.sleep before their failure reply (only that session waits); web logins, which
  must not hold a worker, note a "not before" time for the address and for the pair
  (account, address) instead, and answer an earlier attempt at once.

Everything lives in Django's cache, shared by every process (Redis in production).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from mailcore.addresses import AddressError, normalize_address


class Refused(Exception):
    """No password check for this address now: it failed too often, or is busy.

    busy: all its slots are held by checks still running (not failures): it may try
    again as soon as one ends. Otherwise it may try again after retry_after seconds.
    """

    def __init__(self, retry_after: int, busy: bool = False) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after} s")
        self.retry_after = retry_after
        self.busy = busy


def account_key(user: str) -> str:
    """Return the account a login name counts against, normalised as logins are.

    An address is normalised as authentication does (whitespace, angle brackets, a
    trailing dot of the domain, case); anything else the same way as raw text, so that
    neither can be respelt to dodge the count.
    """
    try:
        return normalize_address(user)
    except AddressError:
        text = user.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1].strip()
        return text.rstrip(".").casefold()


def address_key(ip: str) -> str:
    """Return the source a client address counts as: itself, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip.strip()
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _digest(text: str) -> str:
    # Any text may be a login name; cache keys must stay short and printable.
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _address_counter(source: str) -> str:
    # Failures and checks in progress: the slots.
    return f"auth:addr:{_digest(source)}"


def _address_failures(source: str) -> str:
    return f"auth:fail:{_digest(source)}"


def _account_counter(account: str) -> str:
    return f"auth:acct:{_digest(account)}"


def delay_for(failures: int) -> float:
    """Return the delay after this many failures: doubling, up to AUTH_FAILURE_DELAY_MAX."""
    base = settings.AUTH_FAILURE_DELAY
    if failures <= 0 or base <= 0:
        return 0.0
    cap = max(settings.AUTH_FAILURE_DELAY_MAX, base)
    return min(base * 2 ** min(failures - 1, 32), cap)


def _incr(key: str, timeout: int) -> int:
    """Add one to a counter made with this timeout if missing; return the new count."""
    for _ in range(3):
        cache.add(key, 0, timeout)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            continue
    return 1


def _decr(key: str) -> None:
    try:
        cache.decr(key)
    except ValueError:  # the window passed meanwhile: nothing to give back
        pass


@dataclass
class Attempt:
    """One login attempt holding a slot in its source address's counter."""

    account: str
    source: str
    open: bool = True

    def failed(self) -> float:
        """Keep the slot as a failure, count one for the account; return the delay."""
        self.open = False
        window = settings.AUTH_FAILURE_WINDOW
        account_failures = _incr(_account_counter(self.account), window)
        address_failures = _incr(_address_failures(self.source), window)
        return delay_for(max(account_failures, address_failures))

    def succeeded(self) -> None:
        """Give the slot back and reset the account's count."""
        if self.open:
            self.open = False
            _decr(_address_counter(self.source))
        cache.delete(_account_counter(self.account))

    def abandon(self) -> None:
        """Give the slot back: the check did not happen (an internal error)."""
        if self.open:
            self.open = False
            _decr(_address_counter(self.source))


def begin(user: str, ip: str) -> Attempt:
    """Reserve a password check for user from ip, or raise Refused for that address."""
    source = address_key(ip)
    counter, failures = _address_counter(source), _address_failures(source)
    window, limit = settings.AUTH_FAILURE_WINDOW, settings.AUTH_MAX_FAILURES
    # The counters and the end of their window (for the reply) start together.
    cache.add(f"{counter}:ends", time.time() + window, window)
    cache.add(failures, 0, window)
    if cache.get(failures, 0) < limit:
        if _incr(counter, window) <= limit:
            return Attempt(account_key(user), source)
        _decr(counter)
        if cache.get(failures, 0) < limit:
            raise Refused(1, busy=True)
    ends = cache.get(f"{counter}:ends") or time.time() + window
    raise Refused(max(1, math.ceil(ends - time.time())))


# Web logins: a "not before" time instead of a sleep -----------------------------------------

def _not_before_keys(user: str, ip: str) -> tuple[str, str]:
    source = address_key(ip)
    return (f"auth:nb:addr:{_digest(source)}",
            f"auth:nb:pair:{_digest(account_key(user) + chr(0) + source)}")


def hold(user: str, ip: str, delay: float) -> None:
    """Note that neither ip nor (user, ip) may try again for delay seconds."""
    if delay <= 0:
        return
    until = time.time() + delay
    for key in _not_before_keys(user, ip):
        cache.set(key, until, math.ceil(delay) + 1)


def wait_before(user: str, ip: str) -> int:
    """Return the whole seconds ip must wait before trying user again (0: it may now).

    Only the address's own failures and the pair's count: a fresh address is never held.
    """
    now = time.time()
    until = max((t for t in cache.get_many(_not_before_keys(user, ip)).values()
                 if isinstance(t, (int, float))), default=0.0)
    return math.ceil(until - now) if until > now else 0
