"""DNS records a hosted domain should publish, and a check of what it actually publishes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import dns.exception
import dns.resolver
from django.conf import settings

from mailcore import clientconfig, dkim
from mailcore.models import Domain
from mailcore.queue.routing import resolver

OWNERSHIP_PREFIX = "mailhost-verify="


class Need(Enum):
    REQUIRED = "required"        # mail does not arrive (or the domain is not proven) without it
    RECOMMENDED = "recommended"  # deliverability: SPF, DKIM, DMARC
    OPTIONAL = "optional"        # client auto-configuration


class Status(Enum):
    RIGHT = "right"
    MISSING = "missing"
    WRONG = "wrong"
    ERROR = "error"      # the lookup itself failed (timeout, no answer from the servers)
    UNCHECKED = "unchecked"


@dataclass
class Record:
    """One record to publish: its owner name, type, value (zone-file form) and purpose."""

    key: str
    name: str
    rtype: str
    value: str
    purpose: str
    need: Need

    def zone_line(self) -> str:
        value = self.value
        if self.rtype == "TXT":
            # A TXT string holds at most 255 bytes; longer values are split (RFC 7208 3.3).
            chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
            value = " ".join(f'"{c}"' for c in chunks)
        return f"{self.name}. 3600 IN {self.rtype} {value}"


@dataclass
class Result:
    record: Record
    status: Status = Status.UNCHECKED
    found: list[str] = field(default_factory=list)
    detail: str = ""


@dataclass
class Report:
    results: list[Result]

    def result(self, key: str) -> Result:
        return next(r for r in self.results if r.record.key == key)

    @property
    def ownership_proven(self) -> bool:
        return self.result("ownership").status is Status.RIGHT

    @property
    def all_required_right(self) -> bool:
        return all(r.status is Status.RIGHT for r in self.results
                   if r.record.need is Need.REQUIRED)


def _host() -> str:
    return settings.MAIL_HOSTNAME.rstrip(".").lower()


def verification_record(domain: Domain) -> tuple[str, str]:
    """Return (name, TXT value) that proves the customer controls the domain."""
    return f"_mailhost-verify.{domain.name}", f"{OWNERSHIP_PREFIX}{domain.verification_token}"


def expected_records(domain: Domain) -> list[Record]:
    """Return the records the domain should publish, required ones first."""
    name = domain.name
    host = _host()
    ownership_name, ownership_value = verification_record(domain)
    records = [
        Record("mx", name, "MX", f"10 {host}.", "Delivers the domain's mail to this server.",
               Need.REQUIRED),
        Record("ownership", ownership_name, "TXT", ownership_value,
               "Proves you control the domain; it receives mail once this is seen.",
               Need.REQUIRED),
        Record("spf", name, "TXT", "v=spf1 mx ~all",
               "SPF: lets receivers accept mail this server sends for the domain.",
               Need.RECOMMENDED),
    ]
    if domain.dkim_private_key:
        dkim_name, dkim_value = dkim.dns_record(domain)
        records.append(Record("dkim", dkim_name, "TXT", dkim_value,
                              "DKIM: the public key that checks this server's signatures.",
                              Need.RECOMMENDED))
    records += [
        Record("dmarc", f"_dmarc.{name}", "TXT", "v=DMARC1; p=quarantine; adkim=r; aspf=r",
               "DMARC: tells receivers what to do with mail that fails SPF and DKIM.",
               Need.RECOMMENDED),
        Record("autoconfig", f"autoconfig.{name}", "CNAME", f"{host}.",
               "Thunderbird and others find their settings here.", Need.OPTIONAL),
        Record("autodiscover", f"autodiscover.{name}", "CNAME", f"{host}.",
               "Outlook finds its settings here.", Need.OPTIONAL),
    ]
    for server in clientconfig.servers():
        records.append(Record(
            f"srv{server.srv_service}", f"{server.srv_service}.{name}", "SRV",
            f"0 1 {server.port} {host}.",
            f"{server.label} ({server.security_label}) for mail clients (RFC 6186).",
            Need.OPTIONAL))
    return records


# Checking ------------------------------------------------------------------------------------

def _lookup(res: dns.resolver.Resolver, name: str, rtype: str) -> list:
    try:
        return list(res.resolve(name, rtype))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []


def _txt(rdata) -> str:
    return b"".join(rdata.strings).decode("utf-8", "replace")


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip()).lower()


def _tags(text: str) -> dict[str, str]:
    tags = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = re.sub(r"\s+", "", value)
    return tags


def _name(text: str) -> str:
    return text.rstrip(".").lower()


def _check_mx(record: Record, rdatas: list) -> tuple[Status, list[str], str]:
    found = [f"{r.preference} {r.exchange.to_text()}" for r in rdatas]
    if not rdatas:
        return Status.MISSING, found, ""
    others = [r for r in rdatas if _name(r.exchange.to_text()) != _host()]
    if len(others) == len(rdatas):
        return Status.WRONG, found, "No MX record points at this server."
    if others:
        return Status.WRONG, found, "Other MX hosts would receive some of the domain's mail."
    return Status.RIGHT, found, ""


def _check_txt(predicate: Callable[[str], bool], prefix: str, unique: bool = False
               ) -> Callable[[Record, list], tuple[Status, list[str], str]]:
    def check(record: Record, rdatas: list) -> tuple[Status, list[str], str]:
        values = [_txt(r) for r in rdatas]
        relevant = [v for v in values if _squash(v).startswith(prefix)]
        if not relevant:
            return Status.MISSING, values, ""
        if unique and len(relevant) > 1:
            return Status.WRONG, relevant, "There must be only one such record."
        if any(predicate(v) for v in relevant):
            return Status.RIGHT, relevant, ""
        return Status.WRONG, relevant, ""
    return check


def _spf_allows_us(value: str) -> bool:
    terms = _squash(value).split()
    host = _host()
    return any(t in ("mx", "+mx", f"a:{host}", f"+a:{host}", f"mx:{host}") for t in terms)


def _dkim_matches(record: Record) -> Callable[[str], bool]:
    return lambda value: _tags(value).get("p") == _tags(record.value)["p"]


def _check_cname(record: Record, rdatas: list) -> tuple[Status, list[str], str]:
    found = [r.target.to_text() for r in rdatas]
    if not rdatas:
        return Status.MISSING, found, ""
    ok = all(_name(t) == _host() for t in found)
    return (Status.RIGHT if ok else Status.WRONG), found, ""


def _check_srv(record: Record, rdatas: list) -> tuple[Status, list[str], str]:
    found = [f"{r.priority} {r.weight} {r.port} {r.target.to_text()}" for r in rdatas]
    if not rdatas:
        return Status.MISSING, found, ""
    port = int(record.value.split()[2])
    ok = any(_name(r.target.to_text()) == _host() and r.port == port for r in rdatas)
    return (Status.RIGHT if ok else Status.WRONG), found, ""


def _checker(record: Record) -> Callable[[Record, list], tuple[Status, list[str], str]]:
    if record.key == "mx":
        return _check_mx
    if record.key == "ownership":
        return _check_txt(lambda v: v.strip() == record.value, OWNERSHIP_PREFIX)
    if record.key == "spf":
        return _check_txt(_spf_allows_us, "v=spf1", unique=True)
    if record.key == "dkim":
        return _check_txt(_dkim_matches(record), "")  # v=DKIM1 is optional
    if record.key == "dmarc":
        return _check_txt(lambda v: True, "v=dmarc1", unique=True)
    if record.rtype == "CNAME":
        return _check_cname
    return _check_srv


def check(domain: Domain) -> Report:
    """Look up every expected record with the configured resolver and judge what is there."""
    res = resolver()
    results = []
    unreachable = False
    for record in expected_records(domain):
        result = Result(record)
        if unreachable:
            # One timeout is enough: waiting DNS_TIMEOUT for each record would hang the page.
            result.status, result.detail = Status.ERROR, "Not checked: DNS did not answer."
            results.append(result)
            continue
        try:
            rdatas = _lookup(res, record.name, record.rtype)
        except dns.exception.Timeout as exc:
            unreachable = True
            result.status, result.detail = Status.ERROR, f"The lookup failed: {exc}"
        except dns.exception.DNSException as exc:
            result.status, result.detail = Status.ERROR, f"The lookup failed: {exc}"
        else:
            result.status, result.found, result.detail = _checker(record)(record, rdatas)
        results.append(result)
    return Report(results)


def unchecked(domain: Domain) -> Report:
    """Return the expected records without looking anything up."""
    return Report([Result(r) for r in expected_records(domain)])
