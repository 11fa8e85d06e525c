"""Where outbound mail for a domain goes: smarthost, a transport override, or its MX hosts."""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.rdatatype
import dns.resolver
from django.conf import settings


@dataclass(frozen=True)
class Hop:
    host: str
    port: int = 25
    tls: str = "opportunistic"  # "opportunistic", "starttls" (required), "tls" (implicit)
    user: str = ""
    password: str = ""


class NoRoute(Exception):
    """No host to deliver to; permanent (a 5xx for the sender) or temporary (retry)."""

    def __init__(self, permanent: bool, status: str, text: str) -> None:
        super().__init__(text)
        self.permanent, self.status, self.text = permanent, status, text


def _host_port(value: str, default_port: int = 25) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    if not sep:
        return value.strip(), default_port
    return host.strip("[]"), int(port)


def transports() -> dict[str, tuple[str, int]]:
    result = {}
    for item in settings.OUTBOUND_TRANSPORTS.split(","):
        if "=" in item:
            domain, target = item.split("=", 1)
            result[domain.strip().lower()] = _host_port(target)
    return result


def resolver() -> dns.resolver.Resolver:
    if settings.DNS_RESOLVER:
        host, port = _host_port(settings.DNS_RESOLVER, 53)
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [host]
        res.port = port
    else:
        res = dns.resolver.Resolver()
    res.lifetime = settings.DNS_TIMEOUT
    return res


def hops_for(domain: str) -> list[Hop]:
    """Return the hosts to try for domain, best first, or raise NoRoute."""
    if settings.OUTBOUND_SMARTHOST:
        host, port = _host_port(settings.OUTBOUND_SMARTHOST, 587)
        tls = settings.OUTBOUND_SMARTHOST_TLS
        return [Hop(host, port, {"none": "opportunistic"}.get(tls, tls),
                    settings.OUTBOUND_SMARTHOST_USER, settings.OUTBOUND_SMARTHOST_PASSWORD)]
    override = transports().get(domain.lower())
    if override:
        return [Hop(*override)]
    return [Hop(host) for host in mx_hosts(domain)]


def mx_hosts(domain: str) -> list[str]:
    """Return the domain's mail exchangers in preference order (RFC 5321 section 5.1)."""
    res = resolver()
    try:
        answer = res.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN:
        raise NoRoute(True, "5.1.2", f"domain {domain} does not exist") from None
    except dns.resolver.NoAnswer:
        return [domain] if _has_address(res, domain) else _no_address(domain)
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise NoRoute(False, "4.4.3", f"DNS lookup for {domain} failed: {exc}") from None
    records = sorted(answer, key=lambda r: r.preference)
    if len(records) == 1 and records[0].exchange.to_text() == ".":
        # RFC 7505: a null MX says the domain accepts no mail.
        raise NoRoute(True, "5.1.10", f"domain {domain} accepts no mail (null MX)")
    return [r.exchange.to_text().rstrip(".") for r in records if r.exchange.to_text() != "."]


def _has_address(res: dns.resolver.Resolver, name: str) -> bool:
    for rdtype in ("A", "AAAA"):
        try:
            res.resolve(name, rdtype)
            return True
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            continue
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise NoRoute(False, "4.4.3", f"DNS lookup for {name} failed: {exc}") from None
    return False


def _no_address(domain: str) -> list[str]:
    raise NoRoute(True, "5.1.2", f"domain {domain} has no MX and no address")
