"""Address rules: what the directory accepts as a domain, local part and address."""

from __future__ import annotations

import pytest

from mailcore.addresses import AddressError, normalize_address, normalize_domain, split_address


@pytest.mark.parametrize("given, expected", [
    ("Example.COM", "example.com"),
    ("example.com.", "example.com"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("a-b.c-d.test", "a-b.c-d.test"),
])
def test_it_normalises_domain_names(given, expected):
    assert normalize_domain(given) == expected


@pytest.mark.parametrize("bad", ["", "localhost", "-a.test", "a-.test", "a..test",
                                 "a b.test", "a_b.test", "x" * 64 + ".test", "a.test/x"])
def test_it_rejects_invalid_domain_names(bad):
    with pytest.raises(AddressError):
        normalize_domain(bad)


def test_it_lower_cases_and_strips_angle_brackets():
    assert normalize_address("<Alice.Smith@Example.TEST>") == "alice.smith@example.test"
    assert split_address("o'neil+tag@example.test") == ("o'neil+tag", "example.test")


@pytest.mark.parametrize("bad", ["alice", "@example.test", "alice@", ".a@example.test",
                                 "a..b@example.test", "a b@example.test", "a@b@",
                                 "x" * 65 + "@example.test"])
def test_it_rejects_invalid_addresses(bad):
    with pytest.raises(AddressError):
        normalize_address(bad)


def test_it_accepts_utf8_local_parts():
    assert normalize_address("Jörg@example.test") == "jörg@example.test"


@pytest.mark.parametrize("bad", [
    "jörg\x01@example.test",  # an ASCII control beside non-ASCII text
    "jö\u0085rg@example.test",  # a C1 control
    "jö\u200erg@example.test",  # a format character (left-to-right mark)
    "jö rg@example.test", "jörg.@example.test", "jö..rg@example.test", "jö<rg@example.test",
    "ö" * 33 + "@example.test",  # 33 characters, 66 octets: over RFC 5321's 64 octets
])
def test_it_rejects_utf8_local_parts_that_break_the_rules(bad):
    with pytest.raises(AddressError):
        normalize_address(bad)
