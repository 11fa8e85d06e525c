"""DNS for the inbound checks: asynchronous lookups, bounded by a timeout, cached for their TTL.

SPF, DKIM, DMARC and ARC ask the same few names over and over (a busy sender's SPF
include chain, its DKIM key, its DMARC record), so answers are kept for their TTL, and
names that do not exist (or hold no record of the type asked) for NEGATIVE_TTL seconds
(RFC 2308 caps negative caching; a short fixed time keeps a new record visible soon).
Failures are never cached: the next message asks again. Concurrent asks for one name
share one query. Everything runs on the event loop through dnspython's async resolver.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
from django.conf import settings

NEGATIVE_TTL = 60
MIN_TTL = 1


class TempError(Exception):
    """DNS did not answer for now (timeout, SERVFAIL, no server reachable): try later."""


class Resolver:
    """Cached asynchronous lookups against the configured server (DNS_RESOLVER) or the
    system's."""

    def __init__(self, nameserver: str = "", timeout: float = 5.0, size: int = 10000) -> None:
        if nameserver:
            host, _, port = nameserver.rpartition(":")
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [host.strip("[]")]
            self._resolver.port = int(port)
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = timeout
        self._size = size
        self._cache: OrderedDict[tuple[str, str], tuple[float, tuple]] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future] = {}
        self.queries = 0  # asked of the server (not answered from the cache): for tests

    async def lookup(self, name: str, rdtype: str) -> tuple:
        """Return the records (dnspython rdata) of a type at a name; () for none.

        Raise TempError when DNS fails for now.
        """
        key = (name.lower().rstrip("."), rdtype.upper())
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            records = await self._ask(*key)
        except BaseException as exc:
            # Those waiting for this query learn it failed (a cancelled one too: they were
            # not cancelled themselves).
            failure = exc if isinstance(exc, TempError) else TempError(
                f"DNS lookup of {key[0]} {key[1]} was abandoned")
            future.set_exception(failure)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(records)
            return records
        finally:
            del self._pending[key]

    async def txt(self, name: str) -> list[bytes]:
        """Return each TXT record at name, its strings joined (RFC 7208 section 3.3)."""
        return [b"".join(record.strings) for record in await self.lookup(name, "TXT")]

    async def _ask(self, name: str, rdtype: str) -> tuple:
        self.queries += 1
        try:
            if not name or len(name) > 253 or not all(0 < len(p) < 64 for p in name.split(".")):
                raise dns.resolver.NXDOMAIN  # not a name DNS can hold: nothing there
            answer = await self._resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.name.EmptyLabel,
                dns.name.LabelTooLong, dns.name.NameTooLong):
            self._store((name, rdtype), (), NEGATIVE_TTL)
            return ()
        except (dns.exception.Timeout, dns.resolver.NoNameservers,
                dns.resolver.YXDOMAIN) as exc:
            raise TempError(f"DNS lookup of {name} {rdtype} failed: {exc}") from None
        except dns.exception.DNSException as exc:  # anything else the server got wrong
            raise TempError(f"DNS lookup of {name} {rdtype} failed: {exc}") from None
        records = tuple(answer)
        self._store((name, rdtype), records, answer.rrset.ttl if answer.rrset else NEGATIVE_TTL)
        return records

    def _store(self, key: tuple[str, str], records: tuple, ttl: int) -> None:
        self._cache[key] = (time.monotonic() + max(ttl, MIN_TTL), records)
        self._cache.move_to_end(key)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)


_resolvers: dict[tuple, Resolver] = {}


def resolver() -> Resolver:
    """Return this process's resolver for the current settings (one per configuration)."""
    key = (settings.DNS_RESOLVER, settings.INBOUND_DNS_TIMEOUT, settings.INBOUND_DNS_CACHE_SIZE)
    found = _resolvers.get(key)
    if found is None:
        found = _resolvers[key] = Resolver(*key)
    return found
