"""SPF (RFC 7208): may this client send for the MAIL FROM (and the HELO) domain?

pyspf (the reference implementation of RFC 7208, used by Debian's and Postfix's SPF
policy servers) evaluates the record: mechanisms, macros, the 10-lookup and 2-void-lookup
limits, redirect and exp. Its DNS goes through our asynchronous, cached resolver: pyspf
runs in a worker thread, and each lookup it makes is sent to the event loop and awaited
there (the thread waits, the loop does not). The whole check is bounded by
INBOUND_SPF_TIMEOUT (RFC 7208 section 4.6.4 suggests 20 seconds at least).
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
from dataclasses import dataclass

import spf as pyspf
from django.conf import settings

from mailcore.inbound.lookups import Resolver, TempError

log = logging.getLogger("mailcore.inbound")

# The loop and resolver the current check's lookups go to (set in the check's thread).
_current: contextvars.ContextVar[tuple[asyncio.AbstractEventLoop, Resolver]] = (
    contextvars.ContextVar("spf_resolver"))


@dataclass(frozen=True)
class SPFResult:
    """One identity's SPF result (RFC 7208 section 2.6): pass, fail, softfail, neutral,
    none, temperror or permerror."""

    result: str
    identity: str  # the domain checked
    explanation: str = ""


async def check(client_ip: str, sender: str, helo: str, resolver: Resolver) -> SPFResult:
    """Return the SPF result for the MAIL FROM identity (RFC 7208 section 2.4).

    A null reverse-path is checked as postmaster@<HELO>, as the RFC says.
    """
    domain = sender.rpartition("@")[2] if sender else helo
    identity = sender if sender else f"postmaster@{helo}"
    return await _run(client_ip, identity, helo, domain, resolver)


async def check_helo(client_ip: str, helo: str, resolver: Resolver) -> SPFResult:
    """Return the SPF result for the HELO identity (RFC 7208 section 2.3).

    An address literal or a name without a dot has no SPF record: none.
    """
    if not helo or "." not in helo or helo.startswith("[") or _is_address(helo):
        return SPFResult("none", helo, "HELO is no domain name")
    return await _run(client_ip, f"postmaster@{helo}", helo, helo, resolver)


async def _run(client_ip: str, identity: str, helo: str, domain: str,
               resolver: Resolver) -> SPFResult:
    limit = settings.INBOUND_SPF_TIMEOUT
    _current.set((asyncio.get_running_loop(), resolver))
    try:
        query = pyspf.query(i=client_ip, s=identity, h=helo, timeout=limit, querytime=limit)
        # to_thread carries the context (and so _current) into the thread.
        result, _code, explanation = await asyncio.wait_for(
            asyncio.to_thread(query.check), limit + 1)
    except TimeoutError:
        return SPFResult("temperror", domain, "SPF check timed out")
    except (ValueError, UnicodeError) as exc:
        # RFC 7208 section 4.3: an identity that is no valid domain name has no record.
        return SPFResult("none", domain, str(exc)[:100])
    except Exception:  # pyspf on input it did not foresee: a result, never a crash
        log.warning("SPF check of %s failed", identity, exc_info=True)
        return SPFResult("temperror", domain, "SPF check failed")
    return SPFResult(result, domain.lower(), explanation if result == "fail" else "")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _lookup(name: str, qtype: str, strict: object = True, timeout: float = 20) -> list:
    """pyspf's DNS function: ask our resolver on the event loop and wait for it here.

    Return [((name, type), value), ...] in the shapes pyspf's own dnspython driver returns.
    """
    loop, resolver = _current.get()
    future = asyncio.run_coroutine_threadsafe(resolver.lookup(name, qtype), loop)
    try:
        records = future.result(timeout + 1)
    except TempError as exc:
        raise pyspf.TempError(str(exc)) from None
    except TimeoutError:
        future.cancel()
        raise pyspf.TempError(f"DNS lookup of {name} timed out") from None
    found = []
    for record in records:
        if qtype in ("A", "AAAA"):
            value: object = record.address
        elif qtype == "MX":
            value = (record.preference, record.exchange)
        elif qtype == "PTR":
            value = record.target.to_text(True)
        elif qtype in ("TXT", "SPF"):
            value = record.strings
        else:
            continue
        found.append(((name, qtype), value))
    return found


# pyspf looks its DNS function up by this module-level name on every query (spf.DNSLookup).
pyspf.DNSLookup = _lookup
