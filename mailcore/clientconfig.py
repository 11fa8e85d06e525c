"""Mail client settings: the servers, ports and security a client uses, and the documents
that configure clients automatically (Thunderbird autoconfig, Outlook autodiscover, Apple
configuration profiles).
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from django.conf import settings

from mailcore.addresses import AddressError, normalize_address
from mailcore.models import Domain, Mailbox

# Security of a listener: implicit TLS from the first byte, or a STARTTLS upgrade.
SSL = "SSL"
STARTTLS = "STARTTLS"


@dataclass(frozen=True)
class Server:
    protocol: str       # "imap", "pop3" or "smtp"
    hostname: str
    port: int
    security: str       # SSL or STARTTLS
    srv_service: str    # the RFC 6186 / RFC 8314 SRV service label

    @property
    def label(self) -> str:
        return {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}[self.protocol]

    @property
    def security_label(self) -> str:
        return "SSL/TLS" if self.security == SSL else "STARTTLS"


def _port(name: str, embedded: int, standard: int) -> int:
    # IMAP's settings may not exist yet; production (DEBUG off) runs on the standard ports.
    return int(getattr(settings, name, standard if not settings.DEBUG else embedded))


def servers() -> list[Server]:
    """Return every listener a mail client may use, preferred first within each protocol.

    A port set to 0 disables its listener, so it is not offered.
    """
    host = settings.MAIL_HOSTNAME
    candidates = [
        Server("imap", host, _port("IMAPS_PORT", 2993, 993), SSL, "_imaps._tcp"),
        Server("imap", host, _port("IMAP_PORT", 2143, 143), STARTTLS, "_imap._tcp"),
        Server("pop3", host, _port("POP3S_PORT", 2995, 995), SSL, "_pop3s._tcp"),
        Server("pop3", host, _port("POP3_PORT", 2110, 110), STARTTLS, "_pop3._tcp"),
        Server("smtp", host, _port("SUBMISSIONS_PORT", 2465, 465), SSL, "_submissions._tcp"),
        Server("smtp", host, _port("SUBMISSION_PORT", 2587, 587), STARTTLS, "_submission._tcp"),
    ]
    return [s for s in candidates if s.port]


def preferred(protocol: str) -> Server | None:
    return next((s for s in servers() if s.protocol == protocol), None)


def self_signed() -> bool:
    """Return whether the listeners use the generated self-signed certificate."""
    return not settings.TLS_CERT_FILE


def hosted_domain_for(address: str) -> Domain | None:
    """Return the hosted domain of an address, or None (unknown, a pending claim, no address)."""
    try:
        domain_name = normalize_address(address).rpartition("@")[2]
    except AddressError:
        return None
    return Domain.objects.receiving().filter(name=domain_name).first()


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# Thunderbird: https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat

def autoconfig_xml(domain: Domain) -> bytes:
    """Return the clientConfig document for the domain (the user name is the address)."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain.name)
    _text(provider, "domain", domain.name)
    _text(provider, "displayName", f"Mail for {domain.name}")
    _text(provider, "displayShortName", domain.name)
    for server in servers():
        tag = "outgoingServer" if server.protocol == "smtp" else "incomingServer"
        element = ET.SubElement(provider, tag, type=server.protocol)
        _text(element, "hostname", server.hostname)
        _text(element, "port", str(server.port))
        _text(element, "socketType", server.security)
        _text(element, "authentication", "password-cleartext")
        _text(element, "username", "%EMAILADDRESS%")
    return _xml(root)


# Outlook: [MS-OXDSCLI] Autodiscover Publishing and Lookup Protocol, POX responses.

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def autodiscover_address(body: bytes) -> str | None:
    """Return the EMailAddress of an autodiscover request, or None if there is none."""
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, LookupError, ValueError):  # LookupError: an unknown encoding
        return None
    for element in root.iter():
        if element.tag.rpartition("}")[2] == "EMailAddress" and element.text:
            return element.text.strip()
    return None


def autodiscover_xml(address: str, display_name: str = "") -> bytes:
    """Return the POX response that configures Outlook for address."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=OUTLOOK_NS)
    user = ET.SubElement(response, "User")
    _text(user, "DisplayName", display_name or address)
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    for server in servers():
        protocol = ET.SubElement(account, "Protocol")
        _text(protocol, "Type", {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}[server.protocol])
        _text(protocol, "Server", server.hostname)
        _text(protocol, "Port", str(server.port))
        _text(protocol, "DomainRequired", "off")
        _text(protocol, "LoginName", address)
        _text(protocol, "SPA", "off")
        if server.security == SSL:
            _text(protocol, "SSL", "on")
        else:
            _text(protocol, "Encryption", "TLS")
        _text(protocol, "AuthRequired", "on")
        if server.protocol == "smtp":
            _text(protocol, "UsePOPAuth", "on")
    return _xml(root)


def autodiscover_error_xml(code: int = 600, message: str = "Invalid Request") -> bytes:
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = ET.SubElement(root, "Response")
    error = ET.SubElement(response, "Error", Id="0")
    _text(error, "ErrorCode", str(code))
    _text(error, "Message", message)
    _text(error, "DebugData", "")
    return _xml(root)


# Apple: Configuration Profile Reference, com.apple.mail.managed.

def mobileconfig(mailbox: Mailbox) -> bytes:
    """Return an unsigned configuration profile with the mailbox's IMAP and SMTP account.

    The identifiers derive from the address, so installing it again replaces the profile;
    the password is not in it (the device asks for it).
    """
    address = mailbox.address
    imap, smtp = preferred("imap"), preferred("smtp")
    if imap is None or smtp is None:
        raise ValueError("IMAP or SMTP submission is disabled on this server")
    reverse_host = ".".join(reversed(settings.MAIL_HOSTNAME.split(".")))
    identifier = f"{reverse_host}.mailhost.{address}"
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.account",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{address}#account")).upper(),
        "PayloadDisplayName": address,
        "PayloadDescription": f"Mail account {address}",
        "EmailAccountDescription": address,
        "EmailAccountName": mailbox.display_name or address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": imap.hostname,
        "IncomingMailServerPortNumber": imap.port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": smtp.hostname,
        "OutgoingMailServerPortNumber": smtp.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
        "SMIMEEnabled": False,
        "allowMailDrop": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{address}")).upper(),
        "PayloadDisplayName": f"Mail: {address}",
        "PayloadDescription": f"Sets up {address} (IMAP and SMTP) on this device.",
        "PayloadOrganization": settings.MAIL_HOSTNAME,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
