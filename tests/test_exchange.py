"""Two mailcore installations exchanging mail: submission, SMTP between them, POP3.

a.test and b.test each run as a real installation on 127.0.0.1: its own `manage.py
mailcore` process, its own Celery worker on the embedded (filesystem) broker, its own data
folder. Each one's outbound transport for the other's domain is the other's SMTP port: both
mailcores start first, on ports the system picks, then the workers, told where to send.

These installations keep their own SQLite databases in their data folders whatever
DATABASE_URL the suite runs with: they are whole deployments, not views of the test DB.
"""

from __future__ import annotations

import contextlib
import email
import os
import poplib
import re
import signal
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest

from tests.conftest import PASSWORD
from tests.dns_server import DNSServer
from tests.servers import NAMES, ROOT, reported_ports
from tests.waiting import WAIT, wait_until


def logs(*hosts: Installation) -> Callable[[], str]:
    """Return what quotes the hosts' logs when a wait fails."""
    return lambda: "".join(f"\n--- {h.domain} {name}.log ---\n{h.log(name)[-4000:]}"
                           for h in hosts for name in ("mailcore", "worker"))


class Installation:
    """One mail host on loopback: database, mailcore and a Celery worker, in data_dir."""

    def __init__(self, domain: str, data_dir: Path) -> None:
        self.domain = domain
        self.data_dir = data_dir
        self.ports: dict[str, int] = {}  # as mailcore reports them, once it listens
        self.transports = ""
        self.dns_resolver = "127.0.0.1:1"
        self.procs: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "BLOB_DIR", "TLS_CERT_FILE", "TLS_KEY_FILE")}
        env.update({
            "DJANGO_SETTINGS_MODULE": "panel.settings",
            "DATA_DIR": str(self.data_dir),
            "DATABASE_URL": f"sqlite:///{self.data_dir / 'db.sqlite3'}",
            "CELERY_BROKER_URL": "filesystem://",
            "SECRET_KEY": f"exchange-test-{self.domain}",
            "MAIL_HOSTNAME": f"mx.{self.domain}",
            "MAIL_BIND_ADDRESS": "127.0.0.1",
            "OUTBOUND_TRANSPORTS": self.transports,
            "DNS_RESOLVER": self.dns_resolver,
            "DNS_TIMEOUT": "1",
            "PLAINTEXT_AUTH": "loopback",
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_COST": "1024",
            "AUTH_FAILURE_DELAY": "0.05",
            "SHUTDOWN_GRACE": "2",
            "LOG_LEVEL": "INFO",
            "MAILCORE_PORTS_FILE": str(self.data_dir / "ports.json"),
        })
        env.update({f"{name.upper()}_PORT": "auto" for name in NAMES})
        return env

    def manage(self, *args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=self.env(),
            input=stdin, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"manage.py {args[0]}: {result.stdout}{result.stderr}"
        return result.stdout

    def set_up(self, *users: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput")
        self.manage("domain", "add", self.domain)
        for user in users:
            self.manage("mailbox", "add", f"{user}@{self.domain}", "--password-stdin",
                        stdin=PASSWORD + "\n")

    def spawn(self, name: str, args: list[str]) -> None:
        log = (self.data_dir / f"{name}.log").open("ab")
        self.procs.append(subprocess.Popen(
            args, cwd=ROOT, env=self.env(), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True))
        log.close()

    def listen(self) -> None:
        """Start mailcore; return once it has reported the ports it listens on."""
        (self.data_dir / "ports.json").unlink(missing_ok=True)
        self.spawn("mailcore", [sys.executable, str(ROOT / "manage.py"), "mailcore"])
        self.ports = wait_until(lambda: self._alive() and reported_ports(
            self.data_dir / "ports.json"), f"{self.domain}'s mailcore to listen", WAIT,
            details=logs(self))

    def work(self) -> None:
        """Start the Celery worker (sending through self.transports); return once ready."""
        self.spawn("worker", [sys.executable, "-m", "celery", "-A", "panel", "worker",
                              "--pool", "solo", "--loglevel", "INFO", "-n",
                              f"{self.domain}@%h", "--without-mingle", "--without-gossip",
                              "--without-heartbeat"])
        wait_until(lambda: self._alive() and " ready." in self.log("worker"),
                   f"{self.domain}'s worker to start", WAIT, details=logs(self))

    def _alive(self) -> bool:
        for proc in self.procs:
            if proc.poll() is not None:
                pytest.fail(f"{self.domain}: {proc.args[1:3]} exited:\n"
                            f"{self.log('mailcore')}\n{self.log('worker')}")
        return True

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def tls_context(self) -> ssl.SSLContext:
        """Trust this installation's self-signed certificate (made on its first start)."""
        context = ssl.create_default_context(cafile=str(self.data_dir / "tls" / "cert.pem"))
        # Connecting to 127.0.0.1, which the certificate does not name; the chain is checked.
        context.check_hostname = False
        return context

    def dkim_txt(self) -> str:
        """Return the DKIM TXT record the operator publishes (`domain dkim` prints it)."""
        out = self.manage("domain", "dkim", self.domain)
        [value] = re.findall(r"^Value: +(.+)$", out, re.MULTILINE)
        return value

    def submit(self, user: str, to: str, raw: bytes, implicit_tls: bool = False) -> None:
        address = f"{user}@{self.domain}"
        if implicit_tls:
            session: smtplib.SMTP = smtplib.SMTP_SSL(
                "127.0.0.1", self.ports["submissions"], timeout=10, context=self.tls_context())
        else:
            session = smtplib.SMTP("127.0.0.1", self.ports["submission"], timeout=10)
            session.starttls(context=self.tls_context())
        with session:
            session.login(address, PASSWORD)
            assert session.sendmail(address, [to], raw) == {}

    def pop3_messages(self, user: str) -> list[bytes]:
        """Return every message POP3 offers the user now (without deleting any)."""
        pop = poplib.POP3("127.0.0.1", self.ports["pop3"], timeout=10)
        try:
            pop.user(f"{user}@{self.domain}")
            pop.pass_(PASSWORD)
            count, _ = pop.stat()
            return [b"\r\n".join(pop.retr(n + 1)[1]) + b"\r\n" for n in range(count)]
        finally:
            pop.quit()


def verifies(raw: bytes, txt: str) -> bool:
    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        return txt.encode()

    return dkim.verify(raw, dnsfunc=dnsfunc)


def publish(dns: DNSServer, host: Installation) -> None:
    """Publish what the operator would for the host's domain: SPF, DKIM and DMARC."""
    text = host.dkim_txt()
    dns.records[(host.domain, "TXT")] = ['"v=spf1 ip4:127.0.0.1 -all"']
    dns.records[(f"mail._domainkey.{host.domain}", "TXT")] = [
        " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))]
    dns.records[(f"_dmarc.{host.domain}", "TXT")] = ['"v=DMARC1; p=reject"']


@pytest.fixture
def hosts(tmp_path):
    a = Installation("a.test", tmp_path / "a")
    b = Installation("b.test", tmp_path / "b")
    dns = DNSServer({}).__enter__()
    try:
        a.set_up("alice")
        b.set_up("bob")
        for host in (a, b):
            publish(dns, host)
            host.dns_resolver = dns.address
        a.listen()
        b.listen()
        a.transports = f"b.test=127.0.0.1:{b.ports['smtp']}"
        b.transports = f"a.test=127.0.0.1:{a.ports['smtp']}"
        a.work()
        b.work()
        yield a, b
    finally:
        a.stop()
        b.stop()
        dns.__exit__(None, None, None)


def test_two_installations_exchange_signed_mail(hosts):
    a, b = hosts
    a.submit("alice", "bob@b.test", (
        b"From: Alice <alice@a.test>\r\nTo: Bob <bob@b.test>\r\nSubject: Lunch?\r\n\r\n"
        b"Noon at the usual place?\r\n"))
    [raw] = wait_until(lambda: b.pop3_messages("bob"), "bob's copy at b.test", WAIT,
                       interval=0.25, details=logs(a, b))
    question = email.message_from_bytes(raw)
    assert question["Subject"] == "Lunch?"
    assert question["Message-ID"] and question["Date"]
    assert "d=a.test" in question["DKIM-Signature"].replace(" ", "")
    assert verifies(raw, a.dkim_txt())
    # b.test checked the sender against a.test's records (published on loopback DNS).
    results = " ".join(question["Authentication-Results"].split())
    assert results.startswith("mx.b.test;")
    assert "spf=pass smtp.mailfrom=a.test" in results
    assert "dkim=pass header.d=a.test" in results and "dmarc=pass (p=reject)" in results
    received = question.get_all("Received")
    assert "by mx.b.test" in received[0] and "with ESMTPS" in received[0]
    assert "by mx.a.test" in received[1] and "with ESMTPSA" in received[1]

    b.submit("bob", "alice@a.test", (
        f"From: bob@b.test\r\nTo: alice@a.test\r\nSubject: Re: Lunch?\r\n"
        f"In-Reply-To: {question['Message-ID']}\r\n\r\nSee you there.\r\n").encode(),
        implicit_tls=True)
    [raw] = wait_until(lambda: a.pop3_messages("alice"), "alice's copy at a.test", WAIT,
                       interval=0.25, details=logs(a, b))
    reply = email.message_from_bytes(raw)
    assert reply["Subject"] == "Re: Lunch?"
    assert reply["In-Reply-To"] == question["Message-ID"]
    assert "d=b.test" in reply["DKIM-Signature"].replace(" ", "")
    assert verifies(raw, b.dkim_txt())
    for host in (a, b):
        for name in ("mailcore", "worker"):
            assert "Traceback" not in host.log(name), host.log(name)
