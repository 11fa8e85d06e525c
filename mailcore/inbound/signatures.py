"""DKIM (RFC 6376) and ARC (RFC 8617) verification of a received message, by dkimpy.

dkimpy verifies; its DNS is ours: the key records every signature and seal names are
looked up first, concurrently, on the event loop (mailcore.inbound.lookups), and dkimpy
then runs in a worker thread (hashing a big body is CPU work) with a DNS function that
only reads those answers. A key whose lookup failed for now makes that signature's
result temperror, as RFC 6376 section 6.1.2 says (TEMPFAIL), not a failure.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from mailcore.inbound.lookups import Resolver, TempError

# Signatures verified per message, top first (each costs a key lookup and a hash); the
# rest are ignored, as OpenDKIM's MaximumSignaturesToVerify does.
MAX_SIGNATURES = 10

_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.M)


@dataclass(frozen=True)
class Signature:
    """One DKIM-Signature's result (RFC 8601 section 2.7.1): pass, fail, neutral,
    temperror or permerror, with the signing domain and selector."""

    result: str
    domain: str = ""
    selector: str = ""
    b: str = ""  # the start of the signature (header.b, RFC 6008), to tell two apart
    reason: str = ""


@dataclass(frozen=True)
class ChainResult:
    """The ARC chain's validation (RFC 8617 section 5.2): none, pass or fail."""

    result: str
    sealer: str = ""  # d= of the latest ARC-Seal
    reason: str = ""
    instance: int = 0  # the latest ARC set's i=


class _Unavailable(Exception):
    """The key record could not be looked up for now."""


def header_fields(content: bytes) -> list[tuple[bytes, bytes]]:
    """Return the header section's (name, value) pairs, in order."""
    head = content.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    return [(m.group(1), m.group(2)) for m in _FIELD.finditer(head)]


def _tags(value: bytes) -> dict[bytes, bytes]:
    try:
        return parse_tag_value(value)
    except (InvalidTagValueList, ValueError):
        return {}


def _key_name(tags: dict[bytes, bytes]) -> str | None:
    selector, domain = tags.get(b"s"), tags.get(b"d")
    if not selector or not domain:
        return None
    try:
        return f"{selector.decode()}._domainkey.{domain.decode()}".lower()
    except UnicodeDecodeError:
        return None


async def _fetch_keys(names: set[str], resolver: Resolver) -> dict[str, bytes | None]:
    """Return each key record (b"" for none), None where the lookup failed for now."""
    async def one(name: str) -> bytes | None:
        try:
            records = await resolver.txt(name)
        except TempError:
            return None
        return records[0] if records else b""
    names_sorted = sorted(names)
    found = await asyncio.gather(*(one(n) for n in names_sorted))
    return dict(zip(names_sorted, found, strict=True))


def _dnsfunc(keys: dict[str, bytes | None]):
    def get_txt(name: bytes, timeout: float = 5) -> bytes:
        key = name.decode("ascii", "replace").lower().rstrip(".")
        value = keys.get(key, b"")
        if value is None:
            raise _Unavailable(key)
        return value
    return get_txt


async def verify_dkim(content: bytes, resolver: Resolver) -> list[Signature]:
    """Return the result of every DKIM-Signature in the message, top first."""
    signatures = [_tags(v) for n, v in header_fields(content)
                  if n.lower() == b"dkim-signature"][:MAX_SIGNATURES]
    if not signatures:
        return []
    keys = await _fetch_keys({n for n in map(_key_name, signatures) if n}, resolver)
    return await asyncio.to_thread(_verify_all, content, signatures, keys)


def _verify_all(content: bytes, signatures: list[dict[bytes, bytes]],
                keys: dict[str, bytes | None]) -> list[Signature]:
    try:
        verifier: dkim.DKIM | None = dkim.DKIM(content, logger=_QUIET)
    except dkim.DKIMException:  # a header section dkimpy cannot read: no signature holds
        verifier = None
    get_txt = _dnsfunc(keys)
    results = []
    for index, tags in enumerate(signatures):
        if verifier is None:
            result, reason = "permerror", "message header unreadable"
        else:
            result, reason = _verify_one(verifier, index, tags, keys, get_txt)
        results.append(Signature(
            result, tags.get(b"d", b"").decode("ascii", "replace").lower(),
            tags.get(b"s", b"").decode("ascii", "replace"),
            re.sub(rb"\s+", b"", tags.get(b"b", b"")).decode("ascii", "replace")[:8], reason))
    return results


def _verify_one(verifier: dkim.DKIM, index: int, tags: dict[bytes, bytes],
                keys: dict[str, bytes | None], get_txt) -> tuple[str, str]:
    """Return (result, reason) for the index'th DKIM-Signature (RFC 6376 section 6.1)."""
    name = _key_name(tags)
    if name is None:
        return "permerror", "signature names no domain or selector"
    if keys.get(name) is None:
        return "temperror", "key lookup failed"
    if keys[name] == b"":
        return "permerror", "no key published"
    try:
        ok = verifier.verify(idx=index, dnsfunc=get_txt)
    except (ValueError, IndexError, KeyError) as exc:  # hostile tag values dkimpy trips on
        return "permerror", str(exc)[:100]
    except dkim.ValidationError as exc:
        if str(exc).startswith("body hash mismatch"):  # RFC 6376 section 6.1.3: PERMFAIL
            return "fail", "body hash did not verify"
        return "permerror", str(exc)[:100]
    except dkim.DKIMException as exc:
        return "permerror", str(exc)[:100]
    return ("pass", "") if ok else ("fail", "signature did not verify")


async def verify_arc(content: bytes, resolver: Resolver) -> ChainResult:
    """Return the validation of the message's ARC chain (none if it has no ARC sets)."""
    fields = header_fields(content)
    arc = [_tags(v) for n, v in fields
           if n.lower() in (b"arc-seal", b"arc-message-signature")]
    if not arc:
        return ChainResult("none")
    keys = await _fetch_keys({n for n in map(_key_name, arc) if n}, resolver)
    if any(value is None for value in keys.values()):
        return ChainResult("fail", reason="key lookup failed")  # see _arc_validate
    return await asyncio.to_thread(_arc_validate, content, keys, fields)


def _arc_validate(content: bytes, keys: dict[str, bytes | None],
                  fields: list[tuple[bytes, bytes]]) -> ChainResult:
    # Deviation: RFC 8617 has no temperror for a chain; a key we could not fetch fails it
    # (section 5.2), and the chain counts for nothing, which is the safe side.
    try:
        cv, results, reason = dkim.ARC(content, logger=_QUIET).verify(dnsfunc=_dnsfunc(keys))
    except (dkim.DKIMException, _Unavailable, ValueError, IndexError, KeyError) as exc:
        # dkimpy's own errors, and what its parsing of hostile tag values lets through.
        return ChainResult("fail", reason=str(exc)[:100])
    seals = [(_tags(v), v) for n, v in fields if n.lower() == b"arc-seal"]
    latest = max(seals, key=lambda s: _instance(s[0]), default=({}, b""))[0]
    sealer = latest.get(b"d", b"").decode("ascii", "replace").lower()
    if cv == dkim.CV_Pass:
        return ChainResult("pass", sealer, instance=_instance(latest))
    return ChainResult("fail", sealer, str(reason)[:100], _instance(latest))


def _instance(tags: dict[bytes, bytes]) -> int:
    try:
        return int(tags.get(b"i", b"0"))
    except ValueError:
        return 0


class _Quiet:
    """A logger for dkimpy that says nothing: a bad signature is a result, not an error."""

    def debug(self, *args: object) -> None: ...
    info = warning = error = debug


_QUIET = _Quiet()
