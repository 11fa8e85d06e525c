"""Interop: real third-party clients (swaks, fetchmail, getmail6, curl) against mailcore."""

from __future__ import annotations

import os
import poplib
import pwd
import shutil
import smtplib
import subprocess
import tempfile
from pathlib import Path

import pytest

from mailcore.store.blobs import blob_store
from mailcore.tls import certificate_paths
from tests.conftest import PASSWORD, require_program
from tests.mailboxes import inbox

pytestmark = pytest.mark.interop

ALICE = "alice@example.test"
TIMEOUT = 25  # seconds a client program may take before the test gives up on it


def run(args: list[str], env: dict[str, str] | None = None,
        ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """Run a client program; fail the test with its output unless it exits with one of ok."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env,
                            stdin=subprocess.DEVNULL)
    assert result.returncode in ok, (
        f"{args[0]} exited {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}")
    return result


def send(server, subject: str, body: str, to: str = ALICE) -> bytes:
    """Send one message with smtplib and return its exact bytes."""
    raw = (f"From: Sender <sender@remote.test>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject}@remote.test>\r\n\r\n{body}").encode()
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("sender@remote.test", [to], raw)
    return raw



def pop3_count(server, user: str = ALICE) -> int:
    """Return how many messages POP3 offers now (STAT)."""
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    pop.user(user)
    pop.pass_(PASSWORD)
    count, _ = pop.stat()
    pop.quit()
    return count


def cert_file() -> str:
    return str(certificate_paths()[0])


# swaks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_swaks_delivers_to_alices_inbox(server, alice, tls):
    swaks = require_program("swaks")
    subject = f"swaks {'starttls' if tls else 'plain'}"
    args = [swaks, "--server", "127.0.0.1", "--port", str(server.port("smtp")),
            "--helo", "client.remote.test", "--from", "sender@remote.test", "--to", ALICE,
            "--header", f"Subject: {subject}", "--body", "Hello from swaks.\n.dot line\n",
            "--timeout", "20"]
    if tls:
        args += ["--tls", "--tls-verify", "--tls-ca-path", cert_file(),
                 "--tls-sni", "localhost"]
    result = run(args)
    # swaks marks lines sent and received over TLS with "~" instead of "-".
    arrow = "~" if tls else "-"
    assert f"<{arrow}  250 2.0.0 OK: queued as" in result.stdout, result.stdout
    if tls:
        assert " -> STARTTLS\n<-  220 " in result.stdout, result.stdout

    [message] = inbox(alice)
    assert message.subject == subject
    raw = blob_store().get(message.blob_id)
    assert raw.startswith(b"Return-Path: <sender@remote.test>\r\n")
    assert f"with {'ESMTPS' if tls else 'ESMTP'} id".encode() in raw
    assert b"\r\nSubject: " + subject.encode() + b"\r\n" in raw
    # swaks dot-stuffed ".dot line" and ended the body with blank lines of its own.
    _, _, body = raw.partition(b"\r\n\r\n")
    assert body.rstrip(b"\r\n") == b"Hello from swaks.\r\n.dot line"
    # And a POP3 client reads it back, dot-unstuffed.
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    _, lines, _ = pop.retr(1)
    pop.quit()
    assert b"\r\n".join(lines) + b"\r\n" == raw


# fetchmail --------------------------------------------------------------------------------

def fetchmail_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HOME": str(home), "FETCHMAILHOME": str(home), "LC_ALL": "C"})
    return env


def write_mda(home: Path, outbox: Path) -> Path:
    """Write an MDA script that stores each message it is given in its own file."""
    outbox.mkdir()
    mda = home / "mda.sh"
    mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {outbox}/msg.XXXXXX)"\n')
    mda.chmod(0o755)
    return mda


def test_fetchmail_downloads_and_deletes_over_pop3_with_stls(server, alice, tmp_path):
    fetchmail = require_program("fetchmail")
    sent = [send(server, f"fetchmail-{n}", f"Message {n} for fetchmail.\r\n.leading dot\r\n")
            for n in range(3)]
    outbox = tmp_path / "outbox"
    mda = write_mda(tmp_path, outbox)
    rcfile = tmp_path / "fetchmailrc"
    rcfile.write_text(
        "set no syslog\n"
        "set no bouncemail\n"
        f"poll 127.0.0.1 protocol POP3 port {server.port('pop3')} timeout 20\n"
        f'  user "{ALICE}" there with password "{PASSWORD}"\n'
        f'  sslproto "TLS1.2+" sslcertck sslcertfile "{cert_file()}"'
        ' sslcommonname "localhost"\n'
        f'  nokeep fetchall mda "{mda}"\n'
    )
    rcfile.chmod(0o600)
    args = [fetchmail, "-f", str(rcfile), "--nodetach", "-v", "--nosyslog",
            "--pidfile", str(tmp_path / "fetchmail.pid")]

    result = run(args, env=fetchmail_env(tmp_path))
    log = result.stdout + result.stderr
    assert "POP3> STLS" in log and "upgrade to TLS succeeded" in log, log
    assert "3 messages" in log, log
    files = sorted(outbox.iterdir())
    assert len(files) == 3
    got = [f.read_bytes().replace(b"\r\n", b"\n") for f in files]
    for raw in sent:
        subject = raw.split(b"\r\n")[2]
        [match] = [g for g in got if subject + b"\n" in g]
        assert match.endswith(raw.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))
    assert inbox(alice) == []
    assert pop3_count(server) == 0

    # fetchmail exits 1 when there was no mail.
    again = run(args, env=fetchmail_env(tmp_path), ok=(1,))
    assert "No mail" in again.stdout + again.stderr
    assert len(list(outbox.iterdir())) == 3


# getmail6 ---------------------------------------------------------------------------------

@pytest.fixture
def maildir(tmp_path: Path):
    """Yield (Maildir path, extra destination settings) that getmail may deliver into.

    getmail refuses to deliver as root (as CI containers run), so there it delivers as
    nobody into a Maildir that nobody can reach and write.
    """
    if os.geteuid() != 0:
        path = tmp_path / "Maildir"
        extra = ""
    else:
        path = Path(tempfile.mkdtemp(prefix="getmail-")) / "Maildir"
        path.parent.chmod(0o755)
        extra = "user = nobody\n"
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True)
    if extra:
        nobody = pwd.getpwnam("nobody")
        for folder in (path, *path.iterdir()):
            os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    yield path, extra
    if extra:
        shutil.rmtree(path.parent, ignore_errors=True)


@pytest.mark.parametrize("secure", [False, True], ids=["pop3", "pop3s"])
def test_getmail_downloads_to_maildir_and_deletes(server, alice, tmp_path, maildir, secure):
    getmail = require_program("getmail")
    sent = [send(server, f"getmail-{n}", f"Message {n} for getmail.\r\n") for n in range(2)]
    maildir, destination_extra = maildir
    getmaildir = tmp_path / "getmail"
    getmaildir.mkdir()
    if secure:
        retriever = (
            "type = SimplePOP3SSLRetriever\n"
            f"port = {server.port('pop3s')}\n"
            f"ca_certs = {cert_file()}\n"
            "ssl_cert_hostname = localhost\n"
        )
    else:
        retriever = f"type = SimplePOP3Retriever\nport = {server.port('pop3')}\n"
    rcfile = getmaildir / "getmailrc"
    rcfile.write_text(
        "[retriever]\n"
        f"{retriever}"
        "server = 127.0.0.1\n"
        f"username = {ALICE}\n"
        f"password = {PASSWORD}\n"
        "timeout = 20\n"
        "\n[destination]\n"
        "type = Maildir\n"
        f"path = {maildir}/\n"
        f"{destination_extra}"
        "\n[options]\n"
        "verbose = 2\n"
        "read_all = true\n"
        "delete = true\n"
    )
    rcfile.chmod(0o600)
    args = [getmail, "--getmaildir", str(getmaildir), "--rcfile", "getmailrc"]
    env = dict(os.environ, HOME=str(tmp_path))

    result = run(args, env=env)
    assert "2 messages (" in result.stdout, result.stdout
    files = sorted((maildir / "new").iterdir())
    assert len(files) == 2
    got = [f.read_bytes().replace(b"\r\n", b"\n") for f in files]
    for raw in sent:
        [match] = [g for g in got if raw.split(b"\r\n")[2] + b"\n" in g]
        assert match.endswith(raw.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))
    assert inbox(alice) == []
    assert pop3_count(server) == 0

    again = run(args, env=env)
    assert "0 messages" in again.stdout, again.stdout
    assert len(list((maildir / "new").iterdir())) == 2


# curl -------------------------------------------------------------------------------------

def curl_args(url: str, *extra: str) -> list[str]:
    curl = require_program("curl")
    return [curl, "--silent", "--show-error", "--max-time", "20",
            "-u", f"{ALICE}:{PASSWORD}", *extra, url]


@pytest.mark.parametrize("mode", ["pop3", "pop3-stls", "pop3s"])
def test_curl_lists_and_fetches_over_pop3(server, alice, mode):
    sent = [send(server, f"curl-{n}", f"Message {n} for curl.\r\n..two dots\r\n")
            for n in range(2)]
    if mode == "pop3":
        base, extra = f"pop3://127.0.0.1:{server.port('pop3')}", ()
    else:
        port = server.port("pop3s" if mode == "pop3s" else "pop3")
        scheme = "pop3s" if mode == "pop3s" else "pop3"
        base = f"{scheme}://localhost:{port}"
        extra = ("--cacert", cert_file(), "--resolve", f"localhost:{port}:127.0.0.1")
        if mode == "pop3-stls":
            extra += ("--ssl-reqd",)

    listing = run(curl_args(f"{base}/", *extra)).stdout
    sizes = [m.size for m in inbox(alice)]
    assert listing.replace("\r\n", "\n") == "".join(
        f"{n} {size}\n" for n, size in enumerate(sizes, 1))

    fetched = subprocess.run(curl_args(f"{base}/2", *extra), capture_output=True,
                             timeout=TIMEOUT, check=True).stdout
    assert fetched == blob_store().get(inbox(alice)[1].blob_id)
    assert fetched.endswith(sent[1].split(b"\r\n\r\n", 1)[1])

    # Nothing was deleted: curl's RETR does not DELE.
    assert len(inbox(alice)) == 2



def test_curl_fetches_a_message_over_imap_as_the_readme_shows(server, alice):
    # The README's example: a mailbox URL with ;UID= fetches the message (a bare /INBOX
    # only lists the folder).
    send(server, "curl-imap", "Fetched by UID.\r\n")
    uid = inbox(alice)[0].uid
    url = f"imap://127.0.0.1:{server.port('imap')}/INBOX;UID={uid}"
    fetched = subprocess.run(curl_args(url), capture_output=True, timeout=TIMEOUT,
                             check=True).stdout
    assert fetched == blob_store().get(inbox(alice)[0].blob_id)


def test_curl_verifies_the_self_signed_certificate_by_address(server, alice):
    # The certificate made on first start names 127.0.0.1: no --resolve trick needed.
    send(server, "curl-imaps", "Over TLS, by address.\r\n")
    uid = inbox(alice)[0].uid
    url = f"imaps://127.0.0.1:{server.port('imaps')}/INBOX;UID={uid}"
    fetched = run(curl_args(url, "--cacert", cert_file())).stdout
    assert "Over TLS, by address." in fetched


# A real process ---------------------------------------------------------------------------

def test_a_real_process_serves_tls_with_the_certificate_it_made_on_first_start(
        server_process, alice):
    swaks = require_program("swaks")
    # With no TLS_CERT_FILE, the process self-signs a pair under its own DATA_DIR.
    cert = server_process.data_dir / "tls" / "cert.pem"
    assert cert.exists()
    smtp_port, pop3s_port = server_process.port("smtp"), server_process.port("pop3s")
    result = run([swaks, "--server", "127.0.0.1", "--port", str(smtp_port), "--to", ALICE,
                  "--from", "sender@remote.test", "--header", "Subject: real process",
                  "--body", "Over STARTTLS.", "--tls", "--tls-verify",
                  "--tls-ca-path", str(cert), "--tls-sni", "localhost", "--timeout", "20"])
    assert "<~  250 2.0.0 OK: queued as" in result.stdout, result.stdout

    url = f"pop3s://localhost:{pop3s_port}/1"
    fetched = run(curl_args(url, "--cacert", str(cert),
                            "--resolve", f"localhost:{pop3s_port}:127.0.0.1")).stdout
    assert "Subject: real process" in fetched
    assert fetched.replace("\r\n", "\n").rstrip("\n").endswith("\n\nOver STARTTLS.")
