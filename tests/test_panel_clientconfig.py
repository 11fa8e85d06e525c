"""Automatic client configuration: Thunderbird autoconfig, Outlook autodiscover, Apple profiles."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET

import pytest
from django.test import Client
from django.urls import reverse

from mailcore import clientconfig, directory
from tests.panel_cast import *  # noqa: F403

pytestmark = pytest.mark.django_db

HOST = "mx.host.test"
AUTODISCOVER_REQUEST = b"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>Hello@Alice.test</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""
NS = {"r": clientconfig.RESPONSE_NS, "o": clientconfig.OUTLOOK_NS}


@pytest.fixture(autouse=True)
def _ports(settings):
    settings.MAIL_HOSTNAME = HOST
    settings.IMAPS_PORT, settings.IMAP_PORT = 993, 143
    settings.POP3S_PORT, settings.POP3_PORT = 995, 110
    settings.SUBMISSIONS_PORT, settings.SUBMISSION_PORT = 465, 587


def _servers(root: ET.Element, tag: str) -> dict[tuple[str, str], ET.Element]:
    return {(s.get("type"), s.findtext("socketType")): s
            for s in root.iter(tag)}


@pytest.mark.parametrize("path", ["/.well-known/autoconfig/mail/config-v1.1.xml",
                                  "/mail/config-v1.1.xml"])
def test_autoconfig_describes_imap_pop3_and_smtp(client: Client, alice_domain, path) -> None:
    response = client.get(path, {"emailaddress": "hello@alice.test"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "clientConfig"
    provider = root.find("emailProvider")
    assert provider.get("id") == "alice.test"
    assert provider.findtext("domain") == "alice.test"
    incoming = _servers(root, "incomingServer")
    assert set(incoming) == {("imap", "SSL"), ("imap", "STARTTLS"), ("pop3", "SSL"),
                             ("pop3", "STARTTLS")}
    imaps = incoming[("imap", "SSL")]
    assert (imaps.findtext("hostname"), imaps.findtext("port")) == (HOST, "993")
    assert imaps.findtext("username") == "%EMAILADDRESS%"
    assert imaps.findtext("authentication") == "password-cleartext"
    outgoing = _servers(root, "outgoingServer")
    assert outgoing[("smtp", "STARTTLS")].findtext("port") == "587"
    assert outgoing[("smtp", "SSL")].findtext("port") == "465"


def test_autoconfig_finds_the_domain_from_the_autoconfig_host(client: Client, alice_domain
                                                              ) -> None:
    response = client.get("/mail/config-v1.1.xml", HTTP_HOST="autoconfig.alice.test")
    assert response.status_code == 200
    assert b"<domain>alice.test</domain>" in response.content


@pytest.mark.parametrize("address", ["someone@unknown.test", "not-an-address", ""])
def test_autoconfig_knows_only_hosted_domains(client: Client, alice_domain, address) -> None:
    assert client.get("/mail/config-v1.1.xml", {"emailaddress": address}).status_code == 404


def test_a_disabled_listener_is_not_offered(client: Client, alice_domain, settings) -> None:
    settings.POP3_PORT = 0
    root = ET.fromstring(client.get("/mail/config-v1.1.xml",
                                    {"emailaddress": "a@alice.test"}).content)
    assert ("pop3", "STARTTLS") not in _servers(root, "incomingServer")


def test_embedded_defaults_for_imap_when_its_settings_are_missing(settings) -> None:
    del settings.IMAP_PORT
    del settings.IMAPS_PORT
    settings.DEBUG = True
    ports = {(s.protocol, s.security): s.port for s in clientconfig.servers()}
    assert ports[("imap", "SSL")] == 2993 and ports[("imap", "STARTTLS")] == 2143
    settings.DEBUG = False
    ports = {(s.protocol, s.security): s.port for s in clientconfig.servers()}
    assert ports[("imap", "SSL")] == 993 and ports[("imap", "STARTTLS")] == 143


@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml",
                                  "/Autodiscover/Autodiscover.xml"])
def test_autodiscover_answers_outlooks_post_with_pox_settings(client: Client, alice_domain,
                                                              path) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(path, AUTODISCOVER_REQUEST, content_type="text/xml")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == f"{{{clientconfig.RESPONSE_NS}}}Autodiscover"
    account = root.find("o:Response/o:Account", NS)
    assert account.findtext("o:AccountType", namespaces=NS) == "email"
    assert account.findtext("o:Action", namespaces=NS) == "settings"
    protocols = {(p.findtext("o:Type", namespaces=NS), p.findtext("o:Port", namespaces=NS)): p
                 for p in account.findall("o:Protocol", NS)}
    imap = protocols[("IMAP", "993")]
    assert imap.findtext("o:Server", namespaces=NS) == HOST
    assert imap.findtext("o:SSL", namespaces=NS) == "on"
    assert imap.findtext("o:LoginName", namespaces=NS) == "hello@alice.test"
    assert protocols[("SMTP", "587")].findtext("o:Encryption", namespaces=NS) == "TLS"
    assert ("POP3", "995") in protocols


@pytest.mark.parametrize("body", [
    AUTODISCOVER_REQUEST.replace(b"Alice.test", b"unknown.test"),
    b"<not xml",
    b"",
])
def test_autodiscover_answers_an_error_for_anything_else(client: Client, alice_domain, body
                                                         ) -> None:
    response = client.post("/autodiscover/autodiscover.xml", body, content_type="text/xml")
    assert response.status_code == 200
    assert b"<ErrorCode>600</ErrorCode>" in response.content
    assert HOST.encode() not in response.content


def test_the_mobileconfig_profile_holds_an_imap_and_smtp_account(as_alice, alice_mailbox
                                                                  ) -> None:
    response = as_alice.get(reverse("mailbox_mobileconfig", args=[alice_mailbox.pk]))
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    assert 'filename="hello@alice.test.mobileconfig"' in response["Content-Disposition"]
    profile = plistlib.loads(response.content)
    assert profile["PayloadType"] == "Configuration"
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAccountType"] == "EmailTypeIMAP"
    assert account["EmailAddress"] == "hello@alice.test"
    assert account["EmailAccountName"] == "Alice Hello"
    assert (account["IncomingMailServerHostName"], account["IncomingMailServerPortNumber"],
            account["IncomingMailServerUseSSL"]) == (HOST, 993, True)
    assert (account["OutgoingMailServerHostName"], account["OutgoingMailServerPortNumber"]) == (
        HOST, 465)
    assert account["IncomingMailServerUsername"] == "hello@alice.test"
    assert "IncomingPassword" not in account
    # Downloading again gives the same identifiers, so the device replaces the profile.
    again = plistlib.loads(as_alice.get(
        reverse("mailbox_mobileconfig", args=[alice_mailbox.pk])).content)
    assert again["PayloadUUID"] == profile["PayloadUUID"]


def test_the_mobileconfig_of_another_customers_mailbox_is_404(as_bob, alice_mailbox) -> None:
    url = reverse("mailbox_mobileconfig", args=[alice_mailbox.pk])
    assert as_bob.get(url).status_code == 404


def test_an_inactive_domain_gets_no_configuration(client, alice_domain) -> None:
    directory.add_mailbox("x@alice.test", "pw-pw-pw-pw")
    alice_domain.is_active = False
    alice_domain.save()
    assert client.get("/mail/config-v1.1.xml",
                      {"emailaddress": "x@alice.test"}).status_code == 404
