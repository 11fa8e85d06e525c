"""Signing in to webmail: mailbox credentials, rate limits, a session apart from the panel's."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from mailcore import directory
from tests.conftest import PASSWORD
from tests.test_webmail_helpers import (
    csrf_client,
    deliver_to,
    folder,
    make_message,
    sign_in,
)


def _login(client: Client, address: str, password: str):
    return client.post(reverse("webmail:login"), {"address": address, "password": password})


def test_a_mailbox_signs_in_with_its_password_and_lands_in_its_inbox(alice) -> None:
    client = Client()
    response = _login(client, "alice@example.test", PASSWORD)
    assert response.status_code == 302
    inbox = client.get(response.url, follow=True)
    assert inbox.status_code == 200
    assert inbox.request["PATH_INFO"] == reverse("webmail:folder", args=[folder(alice).pk])
    assert b"alice@example.test" in inbox.content


def test_an_app_password_signs_in_too(alice) -> None:
    _, secret = directory.add_app_password(alice, "Phone")
    response = _login(Client(), "Alice@Example.TEST", secret)
    assert response.status_code == 302


def test_a_wrong_password_is_refused_and_the_next_try_must_wait(alice, settings) -> None:
    # No sleep in the view (tests/test_throttle.py): the delay is a "not before" time.
    settings.AUTH_FAILURE_DELAY = 60
    client = Client()
    response = _login(client, "alice@example.test", "not it")
    assert response.status_code == 200
    assert b"The address or the password is wrong." in response.content
    assert "webmail" not in response.wsgi_request.session
    response = _login(client, "alice@example.test", PASSWORD)
    assert b"Too many failed attempts. Try again in 60 seconds." in response.content


def test_an_unknown_address_gets_the_same_answer_as_a_wrong_password(alice) -> None:
    response = _login(Client(), "nobody@example.test", PASSWORD)
    assert b"The address or the password is wrong." in response.content


def test_repeated_failures_are_rate_limited_even_with_the_right_password(alice,
                                                                         settings) -> None:
    settings.AUTH_MAX_FAILURES = 3
    settings.AUTH_FAILURE_DELAY = 0  # no "not before" time: each guess is checked
    client = Client()
    for _ in range(3):
        _login(client, "alice@example.test", "guess")
    response = _login(client, "alice@example.test", PASSWORD)
    assert response.status_code == 200
    assert b"Too many failed attempts" in response.content


def test_pages_need_a_webmail_sign_in(alice) -> None:
    url = reverse("webmail:folder", args=[folder(alice).pk])
    response = Client().get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("webmail:login") + "?next=")


def test_after_signing_in_it_returns_to_the_page_asked_for(alice) -> None:
    client = Client()
    wanted = reverse("webmail:settings")
    response = client.post(reverse("webmail:login") + f"?next={wanted}",
                           {"address": "alice@example.test", "password": PASSWORD})
    assert response.url == wanted


def test_the_next_page_cannot_lead_off_site(alice) -> None:
    response = Client().post(reverse("webmail:login") + "?next=https://evil.test/",
                             {"address": "alice@example.test", "password": PASSWORD})
    assert response.url == reverse("webmail:index")


def test_json_endpoints_answer_401_when_signed_out(alice) -> None:
    for name in ("poll", "suggest"):
        response = Client().get(reverse(f"webmail:{name}"))
        assert response.status_code == 401
        assert response.json() == {"login": reverse("webmail:login")}


def test_a_panel_login_does_not_open_webmail(alice) -> None:
    user = get_user_model().objects.create_user("owner", "owner@customers.test", "pw-12345678")
    client = Client()
    client.force_login(user)
    response = client.get(reverse("webmail:folder", args=[folder(alice).pk]))
    assert response.status_code == 302
    assert response.url.startswith(reverse("webmail:login"))


def test_a_webmail_login_does_not_open_the_panel(alice) -> None:
    client = sign_in(Client(), "alice@example.test")
    response = client.get(reverse("domain_add"))
    assert response.status_code == 302
    assert "/accounts/login/" in response.url


def test_signing_out_of_webmail_keeps_the_panel_login(alice) -> None:
    user = get_user_model().objects.create_user("owner", "owner@customers.test", "pw-12345678")
    client = Client()
    client.force_login(user)
    sign_in(client, "alice@example.test")
    assert client.get(reverse("webmail:settings")).status_code == 200
    client.post(reverse("webmail:logout"))
    assert client.get(reverse("webmail:settings")).status_code == 302
    assert client.get(reverse("domain_add")).status_code == 200  # still in the panel


def test_signing_out_needs_a_post(signed_in) -> None:
    assert signed_in.get(reverse("webmail:logout")).status_code == 405


def test_changing_the_password_ends_webmail_sessions(signed_in, alice) -> None:
    directory.set_password(alice, "a brand new password")
    response = signed_in.get(reverse("webmail:settings"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("webmail:login"))


def test_revoking_an_app_password_ends_its_sessions(alice) -> None:
    app, secret = directory.add_app_password(alice, "Laptop")
    client = sign_in(Client(), "alice@example.test", secret)
    assert client.get(reverse("webmail:settings")).status_code == 200
    app.delete()
    assert client.get(reverse("webmail:settings")).status_code == 302


def test_a_disabled_mailbox_is_signed_out(signed_in, alice) -> None:
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert signed_in.get(reverse("webmail:settings")).status_code == 302


def test_another_mailboxs_folders_and_messages_answer_404(signed_in, bob) -> None:
    uid = deliver_to(bob, make_message(to="bob@example.test", subject="Bob's secret"))
    inbox = folder(bob).pk
    for url in [reverse("webmail:folder", args=[inbox]),
                reverse("webmail:message", args=[inbox, uid]),
                reverse("webmail:body", args=[inbox, uid]),
                reverse("webmail:original", args=[inbox, uid]),
                reverse("webmail:attachment", args=[inbox, uid, "1"]),
                reverse("webmail:compose") + f"?mode=reply&ref={inbox}:{uid}",
                reverse("webmail:poll") + f"?folder={inbox}&modseq=0&uidnext=0"]:
        assert signed_in.get(url).status_code == 404, url
    for url in [reverse("webmail:act", args=[inbox]), reverse("webmail:empty", args=[inbox]),
                reverse("webmail:folder_delete", args=[inbox])]:
        assert signed_in.post(url, {"uid": uid, "action": "read"}).status_code == 404, url
    assert not folder(bob).messages.get(uid=uid).seen


def test_changes_need_the_csrf_token(alice) -> None:
    uid = deliver_to(alice, make_message())
    client, token = csrf_client("alice@example.test")
    url = reverse("webmail:act", args=[folder(alice).pk])
    assert client.post(url, {"uid": uid, "action": "read"}).status_code == 403
    assert client.post(url, {"uid": uid, "action": "read",
                             "csrfmiddlewaretoken": token}).status_code == 302


def test_signing_in_needs_the_csrf_token(alice) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("webmail:login"), {"address": "alice@example.test",
                                                      "password": PASSWORD})
    assert response.status_code == 403


@pytest.mark.parametrize("name", ["login", "settings", "compose"])
def test_pages_forbid_inline_script_framing_and_caching(alice, name) -> None:
    client = sign_in(Client(), "alice@example.test") if name != "login" else Client()
    response = client.get(reverse(f"webmail:{name}"))
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "no-store" in response.headers["Cache-Control"]
