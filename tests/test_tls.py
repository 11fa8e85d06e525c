"""The self-signed certificate made on first start: every name a local client may use."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from mailcore import tls


def _make(tmp_path: Path, settings, hostname: str) -> Path:
    settings.TLS_CERT_FILE = settings.TLS_KEY_FILE = ""
    settings.TLS_DIR = tmp_path / "tls"
    settings.MAIL_HOSTNAME = hostname
    cert, _ = tls.certificate_paths()
    return cert


def _handshake(cert: Path, server_name: str) -> None:
    """Complete a TLS handshake in memory, the client checking the name as a client does."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = tls.server_context().wrap_bio(to_server, to_client, server_side=True)
    client = ssl.create_default_context(cafile=str(cert)).wrap_bio(
        to_client, to_server, server_hostname=server_name)
    for _ in range(10):
        done = True
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                done = False
        if done:
            return
    raise AssertionError("handshake did not finish")


def test_the_certificate_names_loopback_addresses_and_the_mail_hostname(tmp_path, settings):
    cert = _make(tmp_path, settings, "mail.example.test")
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "mail.example.test"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]


@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1", "::1", "mail.example.test"])
def test_clients_verify_the_certificate_under_each_local_name(tmp_path, settings, server_name):
    _handshake(_make(tmp_path, settings, "mail.example.test"), server_name)


def test_a_client_using_another_name_is_refused(tmp_path, settings):
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(_make(tmp_path, settings, "mail.example.test"), "other.example.test")


def test_a_mail_hostname_that_is_an_address_is_an_ip_entry(tmp_path, settings):
    cert = _make(tmp_path, settings, "192.0.2.7")
    _handshake(cert, "192.0.2.7")
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert "192.0.2.7" not in names.get_values_for_type(x509.DNSName)
