"""DMARC (RFC 7489): does an aligned SPF or DKIM pass vouch for the From domain, and if not,
what does the domain ask receivers to do?

The organisational domain (RFC 7489 section 3.2) comes from the Public Suffix List as the
publicsuffixlist package carries it (updated with each release; nothing is downloaded at
run time). Failure reports (ruf) and aggregate reports (rua) are not sent.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import getaddresses

from publicsuffixlist import PublicSuffixList

from mailcore.inbound.lookups import Resolver, TempError
from mailcore.inbound.signatures import Signature, header_fields
from mailcore.inbound.spf import SPFResult

_PSL = PublicSuffixList()
_POLICIES = ("none", "quarantine", "reject")


def organisational_domain(domain: str) -> str:
    """Return the registered domain under its public suffix (RFC 7489 section 3.2)."""
    domain = domain.lower().rstrip(".")
    return _PSL.privatesuffix(domain) or domain


@dataclass(frozen=True)
class Record:
    """A DMARC policy record (RFC 7489 section 6.3), as found for a From domain."""

    policy: str  # p=, or sp= for a subdomain found through its organisational domain
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


@dataclass(frozen=True)
class DMARCResult:
    """The outcome for the From domain: result pass, fail, none, temperror or permerror,
    and the policy to apply (none, quarantine, reject; sampled by pct)."""

    result: str
    from_domain: str = ""
    policy: str = "none"  # what the domain asks for failing mail (after pct sampling)
    published: str = ""  # the record's policy as published, for the header
    reason: str = ""

    @property
    def enforce(self) -> str:
        """Return the policy to apply to this message: none unless it failed."""
        return self.policy if self.result == "fail" else "none"


def from_domain(content: bytes) -> str | None:
    """Return the domain of the message's single From address (RFC 7489 section 6.6.1),
    or None when there is not exactly one From field with one address in it."""
    values = [v for n, v in header_fields(content) if n.lower() == b"from"]
    if len(values) != 1:
        return None
    text = re.sub(r"\r?\n", "", values[0].decode("utf-8", "replace"))
    addresses = [a for _, a in getaddresses([text]) if a]
    if len(addresses) != 1 or "@" not in addresses[0]:
        return None
    domain = addresses[0].rpartition("@")[2].strip().lower().rstrip(".")
    return domain or None


def parse_record(text: bytes) -> dict[str, str] | None:
    """Return a DMARC record's tags, or None if the text is not one (section 6.4)."""
    try:
        decoded = text.decode("ascii")
    except UnicodeDecodeError:
        return None
    parts = [p.strip() for p in decoded.split(";")]
    if not parts or parts[0].replace(" ", "") != "v=DMARC1":
        return None
    tags = {}
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        if eq:
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


async def _records_at(name: str, resolver: Resolver) -> dict[str, str] | None:
    """Return the one DMARC record at _dmarc.<name>; None for none (or several)."""
    found = [t for t in (parse_record(r) for r in await resolver.txt(f"_dmarc.{name}")) if t]
    return found[0] if len(found) == 1 else None  # section 6.6.3: several means none


async def find_record(domain: str, resolver: Resolver) -> Record | None:
    """Return the policy record for the From domain, or its organisational domain's
    (section 6.6.3). Raise TempError when DNS fails for now."""
    tags = await _records_at(domain, resolver)
    subdomain = False
    if tags is None:
        org = organisational_domain(domain)
        if org != domain:
            tags = await _records_at(org, resolver)
            subdomain = True
    if tags is None:
        return None
    policy = tags.get("p", "").lower()
    if policy not in _POLICIES:
        # Step 6: a record without a valid p= is p=none if it has a rua, else no record.
        return Record("none") if "rua" in tags else None
    if subdomain and tags.get("sp", "").lower() in _POLICIES:
        policy = tags["sp"].lower()
    try:
        pct = min(max(int(tags.get("pct", "100")), 0), 100)
    except ValueError:
        pct = 100
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    return Record(policy, adkim, aspf, pct)


def aligned(identifier: str, domain: str, mode: str) -> bool:
    """Return whether an authenticated domain aligns with the From domain (section 3.1)."""
    identifier, domain = identifier.lower().rstrip("."), domain.lower().rstrip(".")
    if mode == "s":
        return identifier == domain
    return organisational_domain(identifier) == organisational_domain(domain)


async def evaluate(content: bytes, spf: SPFResult, signatures: Sequence[Signature],
                   resolver: Resolver, sample: random.Random | None = None) -> DMARCResult:
    """Return the DMARC result for a message, given its SPF (MAIL FROM) and DKIM results."""
    domain = from_domain(content)
    if domain is None:
        return DMARCResult("none", reason="no single From address")
    try:
        record = await find_record(domain, resolver)
    except TempError:
        return DMARCResult("temperror", domain, reason="DMARC record lookup failed")
    if record is None:
        return DMARCResult("none", domain)
    dkim_ok = any(s.result == "pass" and aligned(s.domain, domain, record.adkim)
                  for s in signatures)
    spf_ok = spf.result == "pass" and aligned(spf.identity, domain, record.aspf)
    if dkim_ok or spf_ok:
        return DMARCResult("pass", domain, "none", record.policy)
    # No aligned pass. If an aligned identifier could not be checked for now, the outcome
    # is unknown: temperror, not fail (a retry may pass).
    pending = (spf.result == "temperror" and aligned(spf.identity, domain, record.aspf)) or any(
        s.result == "temperror" and aligned(s.domain, domain, record.adkim) for s in signatures)
    if pending:
        return DMARCResult("temperror", domain, "none", record.policy,
                           "SPF or DKIM lookup failed")
    return DMARCResult("fail", domain, _sampled(record, sample or random), record.policy)


def _sampled(record: Record, sample) -> str:
    """Return the policy to apply to this failing message: pct (section 6.6.4) applies the
    policy to that share of mail and the next milder one to the rest."""
    if record.pct >= 100 or sample.randrange(100) < record.pct:
        return record.policy
    return {"reject": "quarantine", "quarantine": "none"}.get(record.policy, "none")
