"""The panel tests' small cast: alice owns a domain, bob is another customer, carol is staff.

Import with `from tests.panel_cast import *`. The web users are alice_user, bob_user and
carol_user (as_alice, as_bob and as_carol: clients signed in as them); conftest's alice and
bob are mailboxes, a name apart.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from mailcore import directory
from mailcore.models import Domain, Mailbox

__all__ = ["PASSWORD", "WEB_PASSWORD", "alice_domain", "alice_mailbox", "alice_user",
           "as_alice", "as_bob", "as_carol", "bob_user", "carol_user", "published_records",
           "removals"]

PASSWORD = "correct horse battery staple"
WEB_PASSWORD = "web-login-Secret-42"


def _user(name: str, staff: bool = False):
    user = get_user_model().objects.create_user(
        name, f"{name}@customers.test", WEB_PASSWORD, is_staff=staff, is_superuser=staff)
    return user


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_user(db):
    return _user("alice")


@pytest.fixture
def bob_user(db):
    return _user("bob")


@pytest.fixture
def carol_user(db):
    return _user("carol", staff=True)


@pytest.fixture
def as_alice(alice_user) -> Client:
    return _client(alice_user)


@pytest.fixture
def as_bob(bob_user) -> Client:
    return _client(bob_user)


@pytest.fixture
def as_carol(carol_user) -> Client:
    return _client(carol_user)


@pytest.fixture
def alice_domain(alice_user) -> Domain:
    return directory.add_domain("alice.test", owner=alice_user, verified=True)


@pytest.fixture
def alice_mailbox(alice_domain) -> Mailbox:
    return directory.add_mailbox("hello@alice.test", PASSWORD, display_name="Alice Hello",
                                 quota_bytes=100 * 1024 ** 2)


@pytest.fixture
def removals(monkeypatch) -> list[int]:
    """Record the domains queued for data removal instead of asking the worker."""
    queued: list[int] = []
    monkeypatch.setattr("mailcore.selfservice._enqueue_removal", queued.append)
    return queued


def published_records(domain: Domain) -> dict[tuple[str, str], list[str]]:
    """Return tests.dns_server records publishing exactly what the domain is asked to."""
    from mailcore import dnscheck

    records: dict[tuple[str, str], list[str]] = {}
    for record in dnscheck.expected_records(domain):
        value = record.value
        if record.rtype == "TXT":
            # Long TXT values travel as several strings, as a zone file splits them.
            value = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
        records.setdefault((record.name, record.rtype), []).append(value)
    return records
