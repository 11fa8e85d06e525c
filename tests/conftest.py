"""Shared fixtures: servers on loopback, a small cast of users, and an internal-error guard."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from mailcore import directory
from tests.servers import ServerProcess, ServerThread

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fast_settings(settings, tmp_path: Path):
    """Cheap password hashing, short failure delays, and blobs in the test's own folder."""
    settings.ARGON2_TIME_COST = 1
    settings.ARGON2_MEMORY_COST = 1024
    settings.AUTH_FAILURE_DELAY = 0.05
    settings.AUTH_FAILURE_DELAY_MAX = 0.2
    settings.BLOB_DIR = tmp_path / "blobs"
    # No test asks a real DNS server, and outbound mail goes only where a test routes it.
    settings.DNS_RESOLVER = "127.0.0.1:1"
    settings.DNS_TIMEOUT = 1
    settings.OUTBOUND_TRANSPORTS = ""
    # Sender authentication asks DNS for every message: off, except in the tests of it
    # (tests/test_inbound_auth.py), which publish the senders' records on a loopback server.
    settings.INBOUND_AUTH = False
    from mailcore import passwords
    passwords._hasher = None
    from django.core.cache import cache
    cache.clear()
    yield settings
    passwords._hasher = None


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One real S3-compatible server (rclone serve s3) on loopback for the whole run."""
    from tests.s3_server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3") / "root").start()
    yield server
    server.stop()


@pytest.fixture
def s3_blobs(settings, s3_server, monkeypatch, tmp_path: Path):
    """Blobs in the S3 server, under a prefix of this test's own; return the s3:// location."""
    from tests.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY

    # In the environment too, for the mailcore processes a test starts.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    settings.BLOB_STORE = f"s3://{BUCKET}/{tmp_path.parent.name}/{tmp_path.name}"
    settings.BLOB_S3_ENDPOINT = s3_server.endpoint
    settings.BLOB_S3_REGION = "us-east-1"
    settings.BLOB_S3_ADDRESSING = "path"
    settings.BLOB_S3_ACCESS_KEY_ID = ACCESS_KEY
    settings.BLOB_S3_SECRET_ACCESS_KEY = SECRET_KEY
    return settings.BLOB_STORE


@pytest.fixture(params=["files", "s3"])
def blob_backend(request) -> str:
    """Run a test once with blobs in files and once in the S3 server; return which."""
    if request.param == "s3":
        request.getfixturevalue("s3_blobs")
    return request.param


@pytest.fixture(autouse=True)
def kicked(monkeypatch) -> list[int]:
    """Record the worker notifications for queued mail instead of sending them to a broker."""
    calls: list[int] = []
    monkeypatch.setattr("mailcore.hooks.installed.outbound_due", calls.extend)
    return calls


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _fail_on_internal_errors(request):
    """Fail any test during which a server logged an internal error."""
    collector = _ErrorCollector()
    loggers = [logging.getLogger(name) for name in ("mailcore", "aiosmtpd", "mail.log")]
    for logger in loggers:
        logger.addHandler(collector)
    yield collector
    for logger in loggers:
        logger.removeHandler(collector)
    if collector.records and "allow_internal_errors" not in request.keywords:
        messages = "\n".join(collector.format(r) for r in collector.records)
        pytest.fail(f"server logged internal errors:\n{messages}")


@pytest.fixture
def server(transactional_db):
    """mailcore's listeners in a thread on 127.0.0.1, each on a port the system picks."""
    thread = ServerThread().start()
    yield thread
    thread.stop()


@pytest.fixture
def server_process(transactional_db, tmp_path: Path):
    """A real `manage.py mailcore` process on loopback ports it reports, against the test DB."""
    proc = ServerProcess(tmp_path / "mailcore").start()
    yield proc
    if proc.proc and proc.proc.poll() is None:
        proc.terminate()


@pytest.fixture
def domain(transactional_db):
    return directory.add_domain("example.test")


@pytest.fixture
def alice(domain):
    return directory.add_mailbox("alice@example.test", PASSWORD, display_name="Alice")


@pytest.fixture
def bob(domain):
    return directory.add_mailbox("bob@example.test", PASSWORD, display_name="Bob")


def require_program(name: str) -> str:
    """Return the path of a third-party program; skip without it, except on CI (fail)."""
    import os

    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run must install it")
        pytest.skip(f"{name} is not installed")
    return path


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "allow_internal_errors: the test provokes them")
    Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _close_clients(request, _fast_settings):
    """Close the IMAP clients a test opened (tests.imap_client), before its server stops.

    Set up after the server (and the settings it starts with), so the clients close first
    and the server does not wait out its grace period for them.
    """
    for name in ("blob_backend", "server", "server_process"):  # servers use the blob store
        if name in request.fixturenames:
            request.getfixturevalue(name)
    yield
    from tests.imap_client import close_all  # it imports this module

    close_all()


@pytest.fixture
def signed_in(alice):
    """A browser signed in to webmail as alice@example.test (a django.test.Client)."""
    from django.test import Client

    from tests.test_webmail_helpers import sign_in

    return sign_in(Client(), "alice@example.test")


# A sending domain in good standing: its mail server has matching forward and reverse DNS, an
# MX, and an SPF record naming it (the loopback DNS server that Rspamd asks publishes them).
REMOTE_IP = "203.0.113.5"
REMOTE_RECORDS = {
    ("remote.test", "MX"): ["10 mail.remote.test."],
    ("remote.test", "TXT"): ['"v=spf1 ip4:203.0.113.5 -all"'],
    ("mail.remote.test", "A"): [REMOTE_IP],
    ("5.113.0.203.in-addr.arpa", "PTR"): ["mail.remote.test."],
    ("_dmarc.remote.test", "TXT"): ['"v=DMARC1; p=none"'],
}


@pytest.fixture(scope="session")
def rspamd(tmp_path_factory):
    """Debian's rspamd on loopback ports, DNS from a loopback server, for the whole run.

    Like the other third-party programs: skipped where rspamd (or the Redis on
    127.0.0.1:6379 that keeps its statistics) is missing, failed on CI, whose .ci/run
    installs rspamd and runs Redis.
    """
    import os

    import redis

    from tests.dns_server import DNSServer
    from tests.rspamd_server import RspamdServer

    require_program("rspamd")
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            pytest.fail("Rspamd's statistics need Redis on 127.0.0.1:6379; .ci/run starts it")
        pytest.skip("no Redis on 127.0.0.1:6379 for Rspamd's statistics")

    with DNSServer(REMOTE_RECORDS) as dns:
        server = RspamdServer(tmp_path_factory.mktemp("rspamd"), dns.address)
        server.dns = dns
        try:
            yield server.start()
        finally:
            server.stop()
