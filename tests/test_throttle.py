"""The login throttle: delays that cost the guesser, refusal of the failing address only.

Mail protocols over real sockets are in test_imap_auth, test_pop3 and test_submission;
here the directory's logins, the webmail and panel logins, and what a check costs.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import reverse

from mailcore import directory, passwords, ratelimit
from mailcore.directory import LoginRefused
from mailcore.models import AppPassword, Mailbox
from panel.clientip import client_ip
from tests.conftest import PASSWORD

ALICE = "alice@example.test"
ATTACKER = "192.0.2.66"
VICTIM = "198.51.100.7"


@pytest.fixture
def verifies(monkeypatch) -> list[str]:
    """Count argon2 verifications (each entry is the hash checked)."""
    calls: list[str] = []
    lock = threading.Lock()
    real = PasswordHasher.verify

    def counting(self, stored_hash, password):
        with lock:
            calls.append(stored_hash)
        return real(self, stored_hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


def refused(user: str, password: str, ip: str) -> LoginRefused:
    with pytest.raises(LoginRefused) as caught:
        directory.log_in(user, password, ip)
    return caught.value


# Per address, per account ------------------------------------------------------------------

def test_decoy_failures_for_other_users_do_not_stop_a_right_password_from_elsewhere(
        alice, bob, settings):
    settings.AUTH_MAX_FAILURES = 3
    for n in range(3):
        refused(f"decoy{n}@example.test", "guess", ATTACKER)
    assert refused(ALICE, PASSWORD, ATTACKER).rate_limited
    assert directory.log_in(ALICE, PASSWORD, VICTIM).mailbox_id == alice.pk


def test_failures_against_one_account_from_many_addresses_never_refuse_its_owner(
        alice, settings):
    settings.AUTH_MAX_FAILURES = 3
    for n in range(20):
        assert not refused(ALICE, "guess", f"192.0.2.{n + 1}").rate_limited
    assert directory.log_in(ALICE, PASSWORD, VICTIM).mailbox_id == alice.pk


def test_an_address_that_keeps_failing_is_refused_without_a_password_check(
        alice, settings, verifies):
    settings.AUTH_MAX_FAILURES = 3
    for _ in range(3):
        refused(ALICE, "guess", ATTACKER)
    verifies.clear()
    refusal = refused(ALICE, PASSWORD, ATTACKER)
    assert refusal.rate_limited and refusal.retry_after > 0
    assert verifies == []
    assert directory.log_in(ALICE, PASSWORD, "192.0.2.67").mailbox_id == alice.pk


def test_an_ipv6_client_counts_by_its_slash_64():
    assert ratelimit.address_key("2001:db8:1:2::1") == ratelimit.address_key("2001:db8:1:2::ff")
    assert ratelimit.address_key("2001:db8:1:3::1") != ratelimit.address_key("2001:db8:1:2::1")
    assert ratelimit.address_key("::ffff:192.0.2.1") == "192.0.2.1"


@pytest.mark.parametrize("spelling", [
    "carol@example.test.", "<carol@example.test>", " carol@example.test", "CAROL@Example.Test",
])
def test_spellings_of_one_account_share_its_count(spelling):
    assert ratelimit.account_key(spelling) == ratelimit.account_key("carol@example.test")


def test_an_unparseable_name_is_normalised_as_raw_text():
    assert ratelimit.account_key(" <Not An Address.> ") == ratelimit.account_key("not an address")


def test_the_delay_grows_with_an_accounts_failures_over_spellings_up_to_the_cap(
        alice, settings):
    settings.AUTH_FAILURE_DELAY, settings.AUTH_FAILURE_DELAY_MAX = 1, 4
    spellings = [ALICE, f"{ALICE}.", f"<{ALICE}>", f" {ALICE}", ALICE.upper()]
    delays = [refused(spelling, "guess", f"192.0.2.{n + 1}").delay
              for n, spelling in enumerate(spellings)]
    assert delays == [1, 2, 4, 4, 4]


def test_a_success_resets_the_accounts_count(alice, settings):
    settings.AUTH_FAILURE_DELAY, settings.AUTH_FAILURE_DELAY_MAX = 1, 64
    for n in range(4):
        refused(ALICE, "guess", f"192.0.2.{n + 1}")
    directory.log_in(ALICE, PASSWORD, VICTIM)
    assert refused(ALICE, "guess", "192.0.2.50").delay == 1


def test_a_success_gives_its_reservation_back(alice, settings):
    settings.AUTH_MAX_FAILURES = 2
    for _ in range(5):
        directory.log_in(ALICE, PASSWORD, VICTIM)
    refused(ALICE, "guess", VICTIM)
    assert directory.log_in(ALICE, PASSWORD, VICTIM).mailbox_id == alice.pk


def test_concurrent_wrong_logins_from_one_address_get_at_most_the_limit_of_checks(
        alice, settings, monkeypatch):
    settings.AUTH_MAX_FAILURES = 10
    checks: list[int] = []
    outcomes: list[bool] = []
    lock = threading.Lock()
    all_refused = threading.Event()
    real = PasswordHasher.verify

    def held_verify(self, stored_hash, password):
        with lock:
            checks.append(1)
        # Hold every check until the other attempts have been answered, so that they all
        # meet the throttle while these are still running (at most a few seconds).
        all_refused.wait(5)
        return real(self, stored_hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", held_verify)

    def attempt(_: int) -> None:
        try:
            directory.log_in(ALICE, "guess", ATTACKER)
        except LoginRefused as exc:
            with lock:
                outcomes.append(exc.rate_limited)
                if outcomes.count(True) >= 90:
                    all_refused.set()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=25) as pool:
        for future in [pool.submit(attempt, n) for n in range(100)]:
            future.result()
    assert len(outcomes) == 100
    assert len(checks) <= 10
    assert outcomes.count(False) == len(checks)


# What a check costs ------------------------------------------------------------------------

def test_an_unknown_user_costs_one_argon2_run_like_a_wrong_password(alice, verifies):
    refused("nobody@example.test", "guess", VICTIM)
    assert len(verifies) == 1
    refused("not an address", "guess", "192.0.2.2")
    assert len(verifies) == 2
    refused(ALICE, "guess", "192.0.2.3")
    assert len(verifies) == 3


def test_a_wrong_password_costs_one_argon2_run_however_many_app_passwords(alice, verifies):
    secrets = [directory.add_app_password(alice, f"Device {n}")[1] for n in range(5)]
    verifies.clear()
    refused(ALICE, "abcd-efgh-ijkm-nopq", VICTIM)
    assert len(verifies) == 1
    verifies.clear()
    login = directory.log_in(ALICE, secrets[3], VICTIM)
    assert login.credential == "app" and len(verifies) == 1


def test_an_app_password_from_before_the_lookup_works_and_gets_its_lookup(alice):
    app, secret = directory.add_app_password(alice, "Old phone")
    AppPassword.objects.filter(pk=app.pk).update(lookup="")
    login = directory.log_in(ALICE, secret, VICTIM)
    assert (login.credential, login.credential_id) == ("app", app.pk)
    app.refresh_from_db()
    assert app.lookup == passwords.app_password_lookup(secret)


def test_hashes_are_upgraded_at_login_when_the_parameters_change(alice, settings):
    app, secret = directory.add_app_password(alice, "Phone")
    settings.ARGON2_TIME_COST = 2
    directory.log_in(ALICE, PASSWORD, VICTIM)
    directory.log_in(ALICE, secret, VICTIM)
    alice.refresh_from_db()
    app.refresh_from_db()
    for stored in (alice.password_hash, app.password_hash):
        assert "t=2," in stored and not passwords.needs_rehash(stored)
    assert directory.log_in(ALICE, PASSWORD, VICTIM).mailbox_id == alice.pk
    assert directory.log_in(ALICE, secret, VICTIM).mailbox_id == alice.pk


def test_a_hash_with_the_current_parameters_is_left_alone(alice):
    before = alice.password_hash
    directory.log_in(ALICE, PASSWORD, VICTIM)
    assert Mailbox.objects.get(pk=alice.pk).password_hash == before


# The web client's address ------------------------------------------------------------------

def test_x_forwarded_for_counts_only_with_trusted_proxy_hops(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1",
                                   HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5")
    settings.TRUSTED_PROXY_HOPS = 0
    assert client_ip(request) == "10.0.0.1"
    settings.TRUSTED_PROXY_HOPS = 1
    assert client_ip(request) == "203.0.113.5"
    settings.TRUSTED_PROXY_HOPS = 2
    assert client_ip(request) == "6.6.6.6"
    settings.TRUSTED_PROXY_HOPS = 3
    assert client_ip(request) == "10.0.0.1"


# Webmail ------------------------------------------------------------------------------------

def _webmail_login(address: str, password: str, **headers):
    return Client(**headers).post(reverse("webmail:login"),
                                  {"address": address, "password": password})


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    return slept


def test_a_failed_webmail_login_answers_without_sleeping(alice, settings, no_sleep):
    settings.AUTH_FAILURE_DELAY = 30
    response = _webmail_login(ALICE, "guess")
    assert b"The address or the password is wrong." in response.content
    assert no_sleep == []


def test_a_webmail_attempt_inside_the_delay_is_told_when_to_retry_unchecked(
        alice, settings, no_sleep, verifies):
    settings.AUTH_FAILURE_DELAY = settings.AUTH_FAILURE_DELAY_MAX = 30
    _webmail_login(ALICE, "guess", REMOTE_ADDR=ATTACKER)
    verifies.clear()
    response = _webmail_login(ALICE, PASSWORD, REMOTE_ADDR=ATTACKER)
    assert b"Too many failed attempts. Try again in 30 seconds." in response.content
    assert verifies == [] and no_sleep == []
    # Another address, with the right password, is neither held nor refused.
    assert _webmail_login(ALICE, PASSWORD, REMOTE_ADDR=VICTIM).status_code == 302


def test_webmail_behind_a_proxy_throttles_the_forwarded_address(alice, settings):
    settings.AUTH_FAILURE_DELAY = 0
    settings.AUTH_MAX_FAILURES = 2
    settings.TRUSTED_PROXY_HOPS = 1
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(3):
        _webmail_login(ALICE, "guess", HTTP_X_FORWARDED_FOR=ATTACKER, **proxy)
    response = _webmail_login(ALICE, PASSWORD, HTTP_X_FORWARDED_FOR=ATTACKER, **proxy)
    assert b"Too many failed attempts" in response.content
    response = _webmail_login(ALICE, PASSWORD, HTTP_X_FORWARDED_FOR=VICTIM, **proxy)
    assert response.status_code == 302


def test_a_spoofed_x_forwarded_for_does_not_escape_the_throttle(alice, settings):
    settings.AUTH_FAILURE_DELAY = 0
    settings.AUTH_MAX_FAILURES = 2
    for n in range(3):
        _webmail_login(ALICE, "guess", REMOTE_ADDR=ATTACKER,
                       HTTP_X_FORWARDED_FOR=f"192.0.2.{n + 1}")
    response = _webmail_login(ALICE, PASSWORD, REMOTE_ADDR=ATTACKER,
                              HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert b"Too many failed attempts" in response.content


def test_a_failed_webmail_login_is_logged_without_the_password(alice, caplog):
    caplog.set_level(logging.INFO, logger="panel.webmail")
    _webmail_login(ALICE, "my-secret-guess", REMOTE_ADDR=ATTACKER)
    assert f"webmail login failed user={ALICE} ip={ATTACKER}" in caplog.text
    assert "my-secret-guess" not in caplog.text


# Panel logins (allauth) ---------------------------------------------------------------------

WEB_PASSWORD = "Panel pass 2024!"


@pytest.fixture
def dora(db):
    user = get_user_model().objects.create_user("dora", "dora@customers.test", WEB_PASSWORD)
    user.emailaddress_set.create(email=user.email, verified=True, primary=True)
    return user


def _panel_login(password: str, ip: str):
    return Client(REMOTE_ADDR=ip).post(reverse("account_login"), {
        "login": "dora@customers.test", "password": password})


def test_a_panel_users_right_password_works_after_an_attackers_many_failures(
        dora, settings):
    settings.AUTH_FAILURE_DELAY = 0
    for _ in range(15):
        assert _panel_login("guess", ATTACKER).status_code == 200
    assert "Too many failed login attempts" in _panel_login(WEB_PASSWORD, ATTACKER).content.decode()
    assert _panel_login(WEB_PASSWORD, VICTIM).status_code == 302


def test_a_panel_attempt_inside_the_delay_is_told_when_to_retry(dora, settings, no_sleep):
    settings.AUTH_FAILURE_DELAY = settings.AUTH_FAILURE_DELAY_MAX = 30
    _panel_login("guess", ATTACKER)
    response = _panel_login(WEB_PASSWORD, ATTACKER)
    assert "Try again in 30 seconds." in response.content.decode()
    assert no_sleep == []


def test_a_failed_panel_login_is_logged_without_the_password(dora, caplog):
    caplog.set_level(logging.INFO, logger="panel.accounts")
    _panel_login("my-secret-guess", ATTACKER)
    assert f"panel login failed user=dora@customers.test ip={ATTACKER}" in caplog.text
    assert "my-secret-guess" not in caplog.text


def test_allauth_sees_the_forwarded_address(settings):
    from allauth.account.adapter import get_adapter

    settings.TRUSTED_PROXY_HOPS = 1
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1",
                                   HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert get_adapter(request).get_client_ip(request) == "203.0.113.5"


# Checks in progress are not failures -----------------------------------------------------

def test_an_address_with_every_slot_in_use_is_busy_not_refused(settings):
    settings.AUTH_MAX_FAILURES = 2
    first, second = ratelimit.begin(ALICE, VICTIM), ratelimit.begin(ALICE, VICTIM)
    with pytest.raises(ratelimit.Refused) as caught:
        ratelimit.begin(ALICE, VICTIM)
    assert caught.value.busy
    first.succeeded()
    ratelimit.begin(ALICE, VICTIM).failed()
    second.failed()
    with pytest.raises(ratelimit.Refused) as caught:
        ratelimit.begin(ALICE, VICTIM)
    assert not caught.value.busy and caught.value.retry_after > 0


def test_a_mail_login_waits_for_a_slot_instead_of_being_refused(server, alice, settings,
                                                               monkeypatch):
    from tests.imap_client import connect

    settings.AUTH_MAX_FAILURES = 2
    held = [ratelimit.begin("someone", "127.0.0.2") for _ in range(2)]
    busy = threading.Event()
    real_begin = ratelimit.begin

    def observed_begin(user: str, ip: str) -> ratelimit.Attempt:
        try:
            return real_begin(user, ip)
        except ratelimit.Refused as exc:
            if exc.busy:
                busy.set()
            raise

    monkeypatch.setattr(ratelimit, "begin", observed_begin)
    client = connect(server, source="127.0.0.2")
    client.send(f'a1 LOGIN {ALICE} "{PASSWORD}"')
    assert busy.wait(10)
    held[0].succeeded()
    assert client.response().startswith("a1 OK [CAPABILITY ")
    held[1].abandon()


# The file cache mailcore's processes share without Redis ----------------------------------

def test_the_file_caches_incr_is_atomic_and_keeps_the_expiry(tmp_path):
    import pickle

    from mailcore.filecache import LockedFileCache

    cache = LockedFileCache(str(tmp_path), {})
    cache.add("n", 0, 600)
    path = cache._key_to_file("n")
    with open(path, "rb") as f:
        expiry = pickle.load(f)

    def bump(_: int) -> None:
        for _ in range(50):
            LockedFileCache(str(tmp_path), {}).incr("n")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(bump, range(8)))
    assert cache.get("n") == 400
    with open(path, "rb") as f:
        assert pickle.load(f) == pytest.approx(expiry, abs=1)
    with pytest.raises(ValueError):
        cache.incr("missing")
