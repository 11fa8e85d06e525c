"""The web tier in production: settings from the environment, hosts, links, binds, file modes."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from mailcore.management.commands.serve import Command as ServeCommand
from tests.panel_cast import *  # noqa: F403

ROOT = Path(__file__).resolve().parent.parent
SITE = "https://mail.example.com"
LONG_KEY = "k3y-" + "x7Qz9" * 12
# What the test run itself sets: each subprocess here starts from an environment without them.
OURS = ("DEBUG", "SITE_URL", "SECRET_KEY", "DATA_DIR", "DATABASE_URL", "REDIS_URL",
        "CELERY_BROKER_URL", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "TRUSTED_PROXY_HOPS",
        "MAIL_BIND_ADDRESS", "DJANGO_SETTINGS_MODULE", "BLOB_DIR")


def run_python(tmp_path: Path, code: str, **environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in OURS}
    env.update({"DJANGO_SETTINGS_MODULE": "panel.settings", "DATA_DIR": str(tmp_path / "data")})
    env.update(environment)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def settings_with(tmp_path: Path, names: list[str], **environment: str) -> dict:
    """Return the named settings as a process started with this environment sees them."""
    code = ("import json; from django.conf import settings; "
            f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))")
    result = run_python(tmp_path, code, **environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def start_up_error(tmp_path: Path, **environment: str) -> str:
    """Return the error a process started with this environment stops with."""
    result = run_python(tmp_path, "from django.conf import settings; settings.DEBUG", **environment)
    assert result.returncode != 0, "the settings loaded"
    assert "ImproperlyConfigured" in result.stderr
    return result.stderr.strip().splitlines()[-1]


# Start-up ----------------------------------------------------------------------------------

def test_debug_is_off_unless_development_asks_for_it(tmp_path: Path) -> None:
    values = settings_with(tmp_path, ["DEBUG"], SITE_URL=SITE, SECRET_KEY=LONG_KEY)
    assert values == {"DEBUG": False}


def test_it_refuses_to_start_without_site_url_when_debug_is_off(tmp_path: Path) -> None:
    error = start_up_error(tmp_path, DEBUG="0", SECRET_KEY=LONG_KEY)
    assert "SITE_URL" in error and "https://" in error


def test_it_refuses_to_start_without_secret_key_when_debug_is_off(tmp_path: Path) -> None:
    error = start_up_error(tmp_path, DEBUG="0", SITE_URL=SITE)
    assert "SECRET_KEY" in error


@pytest.mark.parametrize("value", ["mail.example.com", "ftp://mail.example.com",
                                   "https://mail.example.com/panel", "https://"])
def test_it_refuses_a_site_url_that_is_not_an_origin(tmp_path: Path, value: str) -> None:
    error = start_up_error(tmp_path, DEBUG="0", SECRET_KEY=LONG_KEY, SITE_URL=value)
    assert "SITE_URL" in error and repr(value) in error


def test_it_rejects_unknown_words_for_booleans(tmp_path: Path) -> None:
    error = start_up_error(tmp_path, DEBUG="flase")
    assert "DEBUG" in error and "'flase'" in error


def test_it_rejects_numbers_that_are_not_numbers(tmp_path: Path) -> None:
    error = start_up_error(tmp_path, DEBUG="1", SMTP_PORT="25x")
    assert "SMTP_PORT" in error and "'25x'" in error


def test_it_refuses_the_settings_site_url_replaced(tmp_path: Path) -> None:
    error = start_up_error(tmp_path, DEBUG="1", ALLOWED_HOSTS="*")
    assert "ALLOWED_HOSTS" in error and "SITE_URL" in error


def test_booleans_take_the_usual_words(tmp_path: Path) -> None:
    for word, expected in [("yes", True), ("On", True), ("0", False), ("off", False)]:
        values = settings_with(tmp_path, ["DEBUG"], DEBUG=word, SITE_URL=SITE,
                               SECRET_KEY=LONG_KEY)
        assert values["DEBUG"] is expected


# What SITE_URL gives --------------------------------------------------------------------

SECURITY = ["ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SESSION_COOKIE_SECURE",
            "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_HTTPONLY",
            "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SAMESITE", "SECURE_HSTS_SECONDS",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER"]


def test_an_https_site_url_gives_hosts_origins_and_secure_cookies(tmp_path: Path) -> None:
    values = settings_with(tmp_path, SECURITY, DEBUG="0", SITE_URL="https://Mail.Example.com/",
                           SECRET_KEY=LONG_KEY, TRUSTED_PROXY_HOPS="1")
    assert values["ALLOWED_HOSTS"] == ["mail.example.com"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://mail.example.com"]
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SESSION_COOKIE_HTTPONLY"] and values["CSRF_COOKIE_HTTPONLY"]
    assert values["SESSION_COOKIE_SAMESITE"] == values["CSRF_COOKIE_SAMESITE"] == "Lax"
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_x_forwarded_proto_counts_only_through_trusted_proxy_hops(tmp_path: Path) -> None:
    values = settings_with(tmp_path, SECURITY, DEBUG="0", SITE_URL=SITE, SECRET_KEY=LONG_KEY)
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    # Django cannot tell https from http without the proxy's word: a redirect would loop.
    assert not values["SECURE_SSL_REDIRECT"]
    assert values["SESSION_COOKIE_SECURE"] and values["SECURE_HSTS_SECONDS"]


def test_a_site_on_plain_http_keeps_its_cookies_usable(tmp_path: Path) -> None:
    values = settings_with(tmp_path, SECURITY, DEBUG="0", SITE_URL="http://panel.lan:8000",
                           SECRET_KEY=LONG_KEY)
    assert values["ALLOWED_HOSTS"] == ["panel.lan"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["http://panel.lan:8000"]
    assert not values["SESSION_COOKIE_SECURE"] and not values["SECURE_HSTS_SECONDS"]
    assert values["SESSION_COOKIE_HTTPONLY"]


def compose_environment(service: str, tmp_path: Path) -> dict[str, str]:
    """Return a compose service's environment, with .env's variables filled in."""
    dotenv = {"SITE_URL": SITE, "MAIL_HOSTNAME": "mail.example.com", "SECRET_KEY": LONG_KEY,
              "POSTGRES_PASSWORD": "pw", "S3_ACCESS_KEY": "mailhost",
              "S3_SECRET_KEY": "s3-secret-key"}
    env = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]
    filled = {name: re.sub(r"\$\{(\w+)[^}]*\}", lambda m: dotenv[m.group(1)], str(value))
              for name, value in env["environment"].items()}
    filled["DATA_DIR"] = str(tmp_path / "data")  # the container's /data
    return filled


def test_the_deployment_check_has_nothing_to_say_on_the_compose_configuration(
        tmp_path: Path) -> None:
    env = compose_environment("web", tmp_path)
    assert env["DEBUG"] == "0" and env["SITE_URL"] == SITE
    result = run_python(tmp_path, "import django, sys; from django.core.management import "
                        "execute_from_command_line as run; run(['manage.py', 'check', "
                        "'--deploy', '--fail-level', 'WARNING'])", **env)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


# Hosts and the links in account mail --------------------------------------------------

def test_a_password_reset_for_another_host_is_refused_and_sends_nothing(
        client: Client, alice_user, settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = client.post(reverse("account_reset_password"), {"email": alice_user.email},
                           HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert mail.outbox == []


def test_the_reset_mail_links_to_site_url_whatever_the_request_host(
        client: Client, alice_user, settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = SITE
    alice_user.emailaddress_set.create(email=alice_user.email, verified=True, primary=True)
    client.post(reverse("account_reset_password"), {"email": alice_user.email})
    (message,) = mail.outbox
    links = re.findall(r"https?://[^/\s]+/\S*", message.body)
    assert links and all(link.startswith(SITE + "/") for link in links), links
    assert any("/accounts/password/reset/key/" in link for link in links)
    assert "testserver" not in message.body


def test_the_verification_mail_links_to_site_url(client: Client, settings, db) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SITE_URL = SITE
    client.post(reverse("account_signup"), {"email": "new@customers.test",
                                            "password1": "Sign-up pass 2024!",
                                            "password2": "Sign-up pass 2024!"})
    (message,) = mail.outbox
    assert f"{SITE}/accounts/confirm-email/" in message.body
    assert "testserver" not in message.body


@pytest.mark.parametrize("host", ["autoconfig.alice.test", "AUTODISCOVER.alice.test:443"])
def test_client_setup_hosts_of_hosted_domains_answer(client: Client, alice_domain,
                                                     host: str) -> None:
    response = client.get("/mail/config-v1.1.xml", {"emailaddress": "a@alice.test"},
                          HTTP_HOST=host)
    assert response.status_code == 200
    assert b"<domain>alice.test</domain>" in response.content
    response = client.post("/autodiscover/autodiscover.xml", b"<Autodiscover/>",
                           content_type="text/xml", HTTP_HOST=host)
    assert response.status_code == 200 and response["Content-Type"].startswith(
        "application/xml")


def test_autoconfig_on_its_own_host_names_the_domain(client: Client, alice_domain) -> None:
    response = client.get("/mail/config-v1.1.xml", HTTP_HOST="autoconfig.alice.test")
    assert response.status_code == 200
    assert b"<domain>alice.test</domain>" in response.content


@pytest.mark.parametrize("host", ["autoconfig.unknown.test", "autodiscover.unknown.test",
                                  "autoconfig.", "www.alice.test"])
def test_other_hosts_are_refused(client: Client, alice_domain, host: str) -> None:
    response = client.get("/mail/config-v1.1.xml", {"emailaddress": "a@alice.test"},
                          HTTP_HOST=host)
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/", "/", "/healthz"])
def test_client_setup_hosts_serve_nothing_but_client_setup(client: Client, alice_domain,
                                                           path: str) -> None:
    assert client.get(path, HTTP_HOST="autoconfig.alice.test").status_code == 404


# Health -------------------------------------------------------------------------------------

def test_healthz_answers_without_login_and_is_never_cached(client: Client, db) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok\n"
    assert "no-store" in response["Cache-Control"]


def test_the_web_health_check_asks_healthz(live_server) -> None:
    address = live_server.url.removeprefix("http://")
    call_command("healthcheck", "web", "--address", address)


def test_the_mail_health_check_wants_a_greeting(server) -> None:
    for name in ("smtp", "imap", "pop3"):
        call_command("healthcheck", "mailcore", "--address", f"127.0.0.1:{server.port(name)}")


def test_the_health_checks_fail_when_nothing_answers(tmp_path: Path) -> None:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = sock.getsockname()[1]
        for what in ("web", "mailcore"):
            with pytest.raises(CommandError):
                call_command("healthcheck", what, "--address", f"127.0.0.1:{port}")


# Development binds and file modes --------------------------------------------------------

def test_make_run_binds_loopback_and_opts_into_development(tmp_path: Path, monkeypatch
                                                            ) -> None:
    monkeypatch.delenv("WEB_BIND", raising=False)
    options = ServeCommand().create_parser("manage.py", "serve").parse_args([])
    assert options.web == "127.0.0.1:8000"
    values = settings_with(tmp_path, ["MAIL_BIND_ADDRESS", "DEBUG"], DEBUG="1")
    assert values == {"MAIL_BIND_ADDRESS": "127.0.0.1", "DEBUG": True}
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    dry_run = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True,
                             env=env, timeout=30, check=True).stdout
    serve = [line for line in dry_run.splitlines() if "manage.py serve" in line]
    assert serve and serve[0].startswith("DEBUG=1 "), dry_run


def test_the_data_folder_and_database_are_private(tmp_path: Path) -> None:
    code = ("import os, stat; from django.conf import settings; from django.db import connection;"
            "c = connection.cursor(); c.execute('CREATE TABLE t (x)'); c.execute("
            "'INSERT INTO t VALUES (1)'); d = settings.DATA_DIR;"
            "import json; print(json.dumps({n: oct(stat.S_IMODE(os.stat(d / n).st_mode)) for n in "
            "('.', 'db.sqlite3', 'db.sqlite3-wal', 'db.sqlite3-shm')}))")
    old = os.umask(0o022)
    try:
        result = run_python(tmp_path, code, DEBUG="1")
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    modes = json.loads(result.stdout.splitlines()[-1])
    assert modes == {".": "0o700", "db.sqlite3": "0o600", "db.sqlite3-wal": "0o600",
                     "db.sqlite3-shm": "0o600"}


def test_wider_modes_are_tightened_on_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "db.sqlite3").touch()
    (data / "db.sqlite3").chmod(0o644)
    settings_with(tmp_path, ["DEBUG"], DEBUG="1")
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "db.sqlite3").stat().st_mode) == 0o600

