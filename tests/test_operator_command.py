"""`manage.py operator`: an operator account that can log in to the admin at once."""

from __future__ import annotations

import io

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db
PASSWORD = "a sturdy operator passphrase"


def run(*args: str, stdin: str = "") -> str:
    out = io.StringIO()
    import sys
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command("operator", *args, stdout=out)
    finally:
        sys.stdin = old
    return out.getvalue()


def test_it_creates_a_verified_superuser_who_can_open_the_admin(client):
    assert "is ready" in run("ops@example.test", "--password-stdin", stdin=PASSWORD + "\n")
    user = get_user_model().objects.get(email="ops@example.test")
    assert user.is_superuser and user.is_staff
    assert EmailAddress.objects.get(user=user).verified
    response = client.post("/accounts/login/", {"login": "ops@example.test",
                                                "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_it_refuses_weak_passwords_and_bad_addresses():
    with pytest.raises(CommandError):
        run("ops@example.test", "--password-stdin", stdin="123\n")
    with pytest.raises(CommandError):
        run("not-an-address", "--password-stdin", stdin=PASSWORD + "\n")
    assert not get_user_model().objects.exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_prompt_asks_again_after_a_weak_or_mistyped_password(monkeypatch):
    typed = iter(["123", "123", PASSWORD, "a typo", PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    monkeypatch.setattr("sys.stdin", _Terminal())
    err = io.StringIO()
    call_command("operator", "ops@example.test", stdout=io.StringIO(), stderr=err)
    assert "too short" in err.getvalue() and "do not match" in err.getvalue()
    assert next(typed, None) is None
    assert get_user_model().objects.get(email="ops@example.test").check_password(PASSWORD)


def test_stopping_the_prompt_creates_nobody(monkeypatch):
    def interrupted(prompt=""):
        raise KeyboardInterrupt
    monkeypatch.setattr("getpass.getpass", interrupted)
    monkeypatch.setattr("sys.stdin", _Terminal())
    with pytest.raises(CommandError):
        call_command("operator", "ops@example.test", stdout=io.StringIO())
    assert not get_user_model().objects.exists()
