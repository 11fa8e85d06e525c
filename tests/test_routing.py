"""Outbound routing: MX lookups with fallbacks and null MX, overrides and the smarthost."""

from __future__ import annotations

import pytest

from mailcore.queue.routing import Hop, NoRoute, hops_for
from tests.dns_server import DNSServer

ZONE = {
    ("b.test", "MX"): ["20 mx2.b.test.", "10 mx1.b.test."],
    ("mx1.b.test", "A"): ["127.0.0.1"],
    ("plain.test", "A"): ["127.0.0.1"],
    ("nomail.test", "MX"): ["0 ."],
    ("noaddress.test", "TXT"): ['"v=spf1 -all"'],
}


@pytest.fixture
def dns_server(settings):
    with DNSServer(ZONE) as server:
        settings.DNS_RESOLVER = server.address
        yield server


def test_mx_hosts_are_tried_in_preference_order(dns_server):
    assert [h.host for h in hops_for("b.test")] == ["mx1.b.test", "mx2.b.test"]
    assert hops_for("B.TEST")[0].port == 25


def test_a_domain_without_mx_falls_back_to_its_address(dns_server):
    assert hops_for("plain.test") == [Hop("plain.test")]


def test_a_null_mx_fails_for_good(dns_server):
    with pytest.raises(NoRoute) as refused:
        hops_for("nomail.test")
    assert refused.value.permanent and refused.value.status == "5.1.10"


@pytest.mark.parametrize("domain", ["missing.test", "noaddress.test"])
def test_a_domain_that_cannot_receive_fails_for_good(dns_server, domain):
    with pytest.raises(NoRoute) as refused:
        hops_for(domain)
    assert refused.value.permanent and refused.value.status == "5.1.2"


def test_an_unanswered_lookup_is_temporary(settings):
    settings.DNS_RESOLVER = "127.0.0.1:1"
    with pytest.raises(NoRoute) as refused:
        hops_for("b.test")
    assert not refused.value.permanent


def test_a_transport_override_beats_dns(dns_server, settings):
    settings.OUTBOUND_TRANSPORTS = "b.test=127.0.0.1:2626, c.test=[::1]:2727"
    assert hops_for("b.test") == [Hop("127.0.0.1", 2626)]
    assert hops_for("c.test") == [Hop("::1", 2727)]


def test_the_smarthost_takes_everything(dns_server, settings):
    settings.OUTBOUND_SMARTHOST = "relay.test:587"
    settings.OUTBOUND_SMARTHOST_USER = "u"
    settings.OUTBOUND_SMARTHOST_PASSWORD = "p"
    settings.OUTBOUND_SMARTHOST_TLS = "starttls"
    assert hops_for("b.test") == [Hop("relay.test", 587, "starttls", "u", "p")]
