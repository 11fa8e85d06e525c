"""Sessions act for a frozen Principal from login, never for a Mailbox model instance."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from types import SimpleNamespace

import pytest
from django.db.models import Model
from django.test import RequestFactory

from mailcore import directory, logins
from mailcore.principal import Principal
from mailcore.smtp.submission import SubmissionHandler
from panel.webmail import auth
from tests.conftest import PASSWORD


def test_a_login_gives_a_frozen_principal_with_the_limits_sessions_need(
        alice, django_assert_num_queries) -> None:
    principal = directory.log_in("Alice@example.test", PASSWORD, "127.0.0.1")
    assert principal == Principal(
        mailbox_id=alice.pk, address="alice@example.test", display_name="Alice",
        domain_id=alice.domain_id, credential="password", credential_id=alice.pk,
        send_limit_per_hour=alice.send_limit_per_hour, max_recipients=alice.max_recipients)
    # Plain values: nothing is loaded later, so nothing can query from the event loop.
    with django_assert_num_queries(0):
        dataclasses.astuple(principal)
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.address = "bob@example.test"  # type: ignore[misc]


def test_mail_sessions_log_in_to_a_principal_not_a_model(transactional_db, alice) -> None:
    principal = asyncio.run(logins.log_in("alice@example.test", PASSWORD, "127.0.0.1"))
    assert isinstance(principal, Principal) and not isinstance(principal, Model)


def test_submission_auth_keeps_a_principal_as_the_sessions_auth_data(transactional_db,
                                                                      alice) -> None:
    server = SimpleNamespace(session=SimpleNamespace(peer=("127.0.0.1", 40000)),
                             log=logging.getLogger("tests.submission"))
    result = asyncio.run(SubmissionHandler()._login(server, "PLAIN", "alice@example.test",
                                                    PASSWORD))
    assert result.success
    assert result.auth_data == Principal.of(alice)


def test_a_webmail_session_resolves_to_a_principal(signed_in, alice) -> None:
    request = RequestFactory().get("/webmail/")
    request.session = signed_in.session
    assert auth.current_principal(request) == Principal.of(alice)


def test_an_app_password_session_names_its_credential(client, alice) -> None:
    from tests.test_webmail_helpers import sign_in

    app, secret = directory.add_app_password(alice, "Laptop")
    sign_in(client, "alice@example.test", secret)
    request = RequestFactory().get("/webmail/")
    request.session = client.session
    principal = auth.current_principal(request)
    assert principal is not None
    assert (principal.credential, principal.credential_id) == ("app", app.pk)
