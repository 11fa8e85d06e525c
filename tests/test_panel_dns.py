"""The DNS records a domain should publish, and the check against a loopback DNS server."""

from __future__ import annotations

import pytest
from django.urls import reverse

from mailcore import directory, dkim, dnscheck, selfservice
from mailcore.dnscheck import Status
from mailcore.models import Domain
from tests.dns_server import DNSServer
from tests.panel_cast import *  # noqa: F403
from tests.panel_cast import published_records

pytestmark = pytest.mark.django_db

HOST = "mx.host.test"


@pytest.fixture(autouse=True)
def _hostname(settings):
    settings.MAIL_HOSTNAME = HOST


@pytest.fixture
def pending(alice_user) -> Domain:
    return directory.add_domain("alice.test", owner=alice_user, verified=False)


def statuses(report: dnscheck.Report) -> dict[str, str]:
    return {r.record.key: r.status.value for r in report.results}


def test_it_asks_for_mx_spf_dkim_dmarc_ownership_autoconfig_and_srv(pending, settings) -> None:
    records = {r.key: r for r in dnscheck.expected_records(pending)}
    assert records["mx"].value == f"10 {HOST}."
    assert records["spf"].value == "v=spf1 mx ~all"
    assert (records["dkim"].name, records["dkim"].value) == dkim.dns_record(pending)
    assert records["dmarc"].name == "_dmarc.alice.test"
    assert records["ownership"].name == "_mailhost-verify.alice.test"
    assert records["ownership"].value == f"mailhost-verify={pending.verification_token}"
    assert records["autoconfig"].value == records["autodiscover"].value == f"{HOST}."
    srv = {r.name: r.value for r in records.values() if r.rtype == "SRV"}
    for service in ("_submission", "_imap", "_imaps", "_pop3", "_pop3s"):
        assert f"{service}._tcp.alice.test" in srv
    assert srv["_pop3s._tcp.alice.test"].split()[2] == str(settings.POP3S_PORT)


def test_a_long_dkim_value_is_split_into_strings_in_the_zone_line(pending) -> None:
    record = next(r for r in dnscheck.expected_records(pending) if r.key == "dkim")
    line = record.zone_line()
    assert line.startswith(f"{record.name}. 3600 IN TXT \"v=DKIM1;")
    assert line.count('" "') >= 1


def test_everything_right_verifies_the_domain(pending, settings) -> None:
    with DNSServer(published_records(pending)) as server:
        settings.DNS_RESOLVER = server.address
        report = selfservice.check_dns(pending)
    assert set(statuses(report).values()) == {"right"}
    pending.refresh_from_db()
    assert pending.verified_at is not None
    assert directory.resolve("anyone@alice.test").route is directory.Route.UNKNOWN_USER


def test_missing_and_wrong_records_are_reported_with_what_was_found(pending, settings) -> None:
    records = published_records(pending)
    del records[("_dmarc.alice.test", "TXT")]
    records[("alice.test", "MX")] = ["10 mx.other-provider.test."]
    records[("alice.test", "TXT")] = ['"v=spf1 include:other-provider.test -all"']
    records[("_mailhost-verify.alice.test", "TXT")] = ['"mailhost-verify=not-the-token"']
    records[("autoconfig.alice.test", "CNAME")] = ["elsewhere.test."]
    records[("_imaps._tcp.alice.test", "SRV")] = [f"0 1 1993 {HOST}."]
    with DNSServer(records) as server:
        settings.DNS_RESOLVER = server.address
        report = selfservice.check_dns(pending)
    got = statuses(report)
    assert got["dmarc"] == "missing"
    assert got["mx"] == got["spf"] == got["ownership"] == got["autoconfig"] == "wrong"
    assert got["srv_imaps._tcp"] == "wrong"
    assert got["dkim"] == got["autodiscover"] == "right"
    assert report.result("mx").found == ["10 mx.other-provider.test."]
    assert report.result("spf").found == ["v=spf1 include:other-provider.test -all"]
    pending.refresh_from_db()
    assert pending.verified_at is None


def test_two_spf_records_are_wrong(pending, settings) -> None:
    records = published_records(pending)
    records[("alice.test", "TXT")] = ['"v=spf1 mx ~all"', '"v=spf1 a -all"']
    with DNSServer(records) as server:
        settings.DNS_RESOLVER = server.address
        report = dnscheck.check(pending)
    assert report.result("spf").status is Status.WRONG
    assert "only one" in report.result("spf").detail


def test_a_domain_with_nothing_published_is_all_missing(pending, settings) -> None:
    with DNSServer({("unrelated.test", "A"): ["192.0.2.1"]}) as server:
        settings.DNS_RESOLVER = server.address
        report = dnscheck.check(pending)
    assert set(statuses(report).values()) == {"missing"}


def test_an_unreachable_dns_server_is_an_error_not_missing(pending, settings) -> None:
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives, never answers
    settings.DNS_RESOLVER = f"127.0.0.1:{silent.getsockname()[1]}"
    settings.DNS_TIMEOUT = 0.3
    try:
        report = dnscheck.check(pending)
    finally:
        silent.close()
    assert set(statuses(report).values()) == {"error"}


def test_the_dns_page_shows_records_with_copy_buttons(as_alice, pending) -> None:
    page = as_alice.get(reverse("domain_dns", args=[pending.pk])).content.decode()
    assert f"mailhost-verify={pending.verification_token}" in page
    assert page.count('class="copy"') >= 2 * len(dnscheck.expected_records(pending))
    assert "Check DNS" in page


def test_checking_from_the_page_verifies_and_says_so(as_alice, pending, settings) -> None:
    records = published_records(pending)
    del records[("_dmarc.alice.test", "TXT")]
    with DNSServer(records) as server:
        settings.DNS_RESOLVER = server.address
        response = as_alice.post(reverse("domain_dns", args=[pending.pk]))
    page = response.content.decode()
    assert "Ownership of alice.test is proven" in page
    assert 'data-key="dmarc" data-status="missing"' in page
    assert 'data-key="mx" data-status="right"' in page
    assert "v=DMARC1; p=quarantine" in page  # the exact value expected
    pending.refresh_from_db()
    assert pending.verified_at is not None
