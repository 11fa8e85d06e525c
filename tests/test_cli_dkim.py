"""Tests for `manage.py domain dkim NAME`: the DKIM DNS record an operator publishes."""

from __future__ import annotations

import io
import re

import dkim as dkimpy
import pytest
from django.core.management import CommandError, call_command

from mailcore import directory
from mailcore.dkim import sign
from mailcore.models import Domain

pytestmark = pytest.mark.django_db

RAW = (b"From: alice@example.com\r\nTo: bob@remote.test\r\nSubject: Hello\r\n"
       b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <hello@example.com>\r\n"
       b"\r\nHi Bob.\r\n")


def dkim_output(name: str) -> str:
    out = io.StringIO()
    call_command("domain", "dkim", name, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def fields(output: str) -> dict[str, str]:
    return dict(re.findall(r"^(Name|Type|Value): +(.+)$", output, re.MULTILINE))


def zone_line(output: str) -> tuple[str, list[str]]:
    """Return the owner name and the character-strings of the zone file line."""
    [line] = [row for row in output.splitlines() if " IN TXT " in row]
    owner = line.split()[0]
    return owner, re.findall(r'"((?:[^"\\]|\\.)*)"', line)


def verifies(raw: bytes, records: dict[str, str]) -> bool:
    """Return whether raw's DKIM signature verifies against these published TXT records."""
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        value = records.get(name.decode().rstrip("."))
        return value.encode() if value is not None else None

    return dkimpy.verify(raw, dnsfunc=lookup)


def test_it_prints_the_record_name_and_value_that_verify_the_domains_signatures() -> None:
    domain = directory.add_domain("example.com")
    output = dkim_output("example.com")
    record = fields(output)
    assert record["Name"] == f"{domain.dkim_selector}._domainkey.example.com"
    assert record["Type"] == "TXT"
    assert record["Value"].startswith("v=DKIM1; k=rsa; p=MII")
    assert verifies(sign(RAW, domain), {record["Name"]: record["Value"]})
    assert not verifies(sign(RAW, directory.add_domain("other.com")),
                        {record["Name"]: record["Value"]})


def test_it_prints_a_zone_file_line_in_strings_of_at_most_255_characters() -> None:
    directory.add_domain("example.com")
    output = dkim_output("example.com")
    owner, strings = zone_line(output)
    assert owner == fields(output)["Name"] + "."
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings)
    assert "".join(strings) == fields(output)["Value"]


def test_it_accepts_the_name_in_any_case() -> None:
    directory.add_domain("example.com")
    assert fields(dkim_output("Example.COM"))["Name"] == "mail._domainkey.example.com"


def test_it_refuses_an_unknown_domain() -> None:
    with pytest.raises(CommandError, match="no such domain: nope.example"):
        dkim_output("nope.example")


def test_it_says_so_when_a_domain_has_no_key() -> None:
    directory.add_domain("example.com")
    Domain.objects.filter(name="example.com").update(dkim_private_key="")
    with pytest.raises(CommandError, match="example.com has no DKIM key"):
        dkim_output("example.com")
