"""Interop: real IMAP clients (mbsync, offlineimap, curl, mutt) against mailcore."""

from __future__ import annotations

import fcntl
import imaplib
import os
import pty
import re
import select
import signal
import smtplib
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from mailcore.models import Folder, Message
from mailcore.store.blobs import blob_store
from mailcore.tls import certificate_paths
from tests.conftest import PASSWORD, require_program

pytestmark = pytest.mark.interop

ALICE = "alice@example.test"
TIMEOUT = 25  # seconds a client program may take before the test gives up on it


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a client program; fail the test with its output unless it succeeds."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (
        f"{args[0]} exited {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}")
    return result


def run_in_terminal(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run a full-screen program on a pseudo-terminal of its own; return what it drew.

    It gets no keys but those it was told to push to itself, so it must quit by itself;
    one still running after TIMEOUT is killed and fails the test with its screen.
    """
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(args, stdin=secondary, stdout=secondary, stderr=secondary,
                            env=env, cwd=cwd, start_new_session=True, close_fds=True)
    os.close(secondary)
    screen = bytearray()
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: the program closed its terminal
                    chunk = b""
                if not chunk:
                    break
                screen += chunk
            elif proc.poll() is not None:
                break
        else:
            os.killpg(proc.pid, signal.SIGKILL)  # it and whatever it started
    finally:
        os.close(primary)
        code = proc.wait(10)
    text = screen.decode("utf-8", "replace")
    assert code == 0, f"{args[0]} exited {code}; its screen:\n{text}"
    return text


def home_env(home: Path) -> dict[str, str]:
    return dict(os.environ, HOME=str(home), LC_ALL="C.UTF-8", TERM="dumb")


def send(server, subject: str, body: str, to: str = ALICE) -> bytes:
    """Send one message with smtplib and return its exact bytes."""
    raw = (f"From: Sender <sender@remote.test>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject}@remote.test>\r\n\r\n{body}").encode()
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as smtp:
        smtp.sendmail("sender@remote.test", [to], raw)
    return raw


def cert_file() -> str:
    return str(certificate_paths()[0])


def messages(mailbox, folder: str = "INBOX") -> list[Message]:
    return list(Message.objects.filter(folder__mailbox=mailbox, folder__name=folder)
                .order_by("uid"))


def server_flags(mailbox, folder: str = "INBOX") -> dict[str, str]:
    """Subject -> server flags as Maildir letters (D F R S T), for the folder's messages."""
    letters = (("draft", "D"), ("flagged", "F"), ("answered", "R"), ("seen", "S"),
               ("deleted", "T"))
    return {m.subject: "".join(c for name, c in letters if getattr(m, name))
            for m in messages(mailbox, folder)}


def server_state(mailbox) -> list[tuple]:
    """Every folder's UIDNEXT and HIGHESTMODSEQ, and its messages' UIDs and flags."""
    folders = Folder.objects.filter(mailbox=mailbox).order_by("name")
    return [(f.name, f.uidnext, f.highestmodseq, sorted(server_flags(mailbox, f.name).items()))
            for f in folders]


def draft(subject: str) -> bytes:
    """A message written by the user, as a local client would store it (CRLF)."""
    return (f"From: Alice <{ALICE}>\r\nTo: <bob@remote.test>\r\nSubject: {subject}\r\n"
            f"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <{subject}@example.test>\r\n"
            f"\r\nWritten locally: {subject}.\r\n").encode()


def imap_session(server) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
    client.login(ALICE, PASSWORD)
    return client


# Maildir ----------------------------------------------------------------------------------

_INFO = re.compile(r":2,([A-Za-z]*)$")


def maildir_files(folder: Path) -> list[Path]:
    return sorted(p for sub in ("cur", "new") for p in (folder / sub).iterdir())


def maildir_subject(path: Path) -> str:
    for line in path.read_bytes().decode().splitlines():
        if line.startswith("Subject: "):
            return line[len("Subject: "):]
        if not line:
            break
    return ""


def maildir_flags(folder: Path) -> dict[str, str]:
    """Subject -> Maildir flag letters, for the folder's messages."""
    found = {}
    for path in maildir_files(folder):
        match = _INFO.search(path.name)
        found[maildir_subject(path)] = match.group(1) if match else ""
    return found


def maildir_file(folder: Path, subject: str) -> Path:
    [path] = [p for p in maildir_files(folder) if maildir_subject(p) == subject]
    return path


def maildir_add(folder: Path, name: str, raw: bytes) -> Path:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    path = folder / "new" / name
    path.write_bytes(raw.replace(b"\r\n", b"\n"))
    return path


def snapshot(root: Path) -> list[str]:
    """Every file under root (names relative to it), sync state files aside."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith(".mbsync"))


# mbsync -----------------------------------------------------------------------------------

# mbsync's progress line on a terminal: channels, boxes, then far and near side counters
# (+ messages copied, * flag sets changed, # messages trashed, - expunged (isync 1.5)).
_PROGRESS = re.compile(r"C: \d+/\d+  B: \d+/\d+  F: ([^\r\n]*?)  N: ([^\r\n]*?)\r")
_COUNTER = re.compile(r"([-+*#])(\d+)/(\d+)")


def mbsync_stats(screen: str) -> dict[str, dict[str, int]]:
    """Return the far and near side counters (done, by kind) of mbsync's last progress line."""
    matches = _PROGRESS.findall(screen)
    assert matches, f"no progress line in mbsync's screen:\n{screen}"
    far, near = matches[-1]
    return {side: {kind: int(done) for kind, done, _ in _COUNTER.findall(counters)
                   if int(done)}
            for side, counters in (("far", far), ("near", near))}


def without_tuid(raw: bytes) -> bytes:
    """Drop the X-TUID header mbsync adds to every message it copies (to find it again)."""
    return re.sub(rb"(?m)^X-TUID: [^\r\n]*\r?\n", b"", raw, count=1)


@pytest.mark.parametrize("tls", ["IMAPS", "STARTTLS"])
def test_mbsync_syncs_a_maildir_both_ways(server, alice, tmp_path, tls):
    mbsync = require_program("mbsync")
    for n in range(1, 6):
        send(server, f"mbsync-{n}", f"Message {n} for mbsync.\r\n")
    local = tmp_path / "Mail"
    local.mkdir()
    config = tmp_path / ".mbsyncrc"
    config.write_text(
        "IMAPAccount alice\n"
        "Host localhost\n"
        f"Port {server.port('imaps' if tls == 'IMAPS' else 'imap')}\n"
        f"User {ALICE}\n"
        f'Pass "{PASSWORD}"\n'
        f"SSLType {tls}\n"
        f"CertificateFile {cert_file()}\n"
        "Timeout 20\n"
        "\n"
        "IMAPStore remote\n"
        "Account alice\n"
        "\n"
        "MaildirStore local\n"
        f"Path {local}/\n"
        f"Inbox {local}/INBOX\n"
        "SubFolders Verbatim\n"
        "\n"
        "Channel alice\n"
        "Far :remote:\n"
        "Near :local:\n"
        "Patterns *\n"
        "Create Both\n"
        "Expunge Both\n"
        "SyncState *\n"
    )
    # On a terminal, mbsync shows what it did in counters.
    args = [mbsync, "-c", str(config), "alice"]
    env = home_env(tmp_path) | {"TERM": "vt100"}

    # First sync: the five messages come down, and the server's folders become Maildirs.
    screen = run_in_terminal(args, env, tmp_path)
    assert mbsync_stats(screen) == {"far": {}, "near": {"+": 5}}, screen
    inbox = local / "INBOX"
    assert maildir_flags(inbox) == {f"mbsync-{n}": "" for n in range(1, 6)}
    for message in messages(alice):
        got = without_tuid(maildir_file(inbox, message.subject).read_bytes())
        assert got == blob_store().get(message.blob_id).replace(b"\r\n", b"\n")
    assert {p.name for p in local.iterdir()} == {
        f.name for f in Folder.objects.filter(mailbox=alice)}

    # Changes on both sides. Locally: read 1, delete 3, write a message and a new folder.
    seen = maildir_file(inbox, "mbsync-1")
    seen.rename(seen.parent.parent / "cur" / (seen.name.rpartition(":2,")[0] + ":2,S"))
    maildir_file(inbox, "mbsync-3").unlink()
    maildir_add(inbox, "1700000000.local1.host", draft("mbsync-local"))
    maildir_add(local / "Projects", "1700000000.local2.host", draft("mbsync-project"))
    # On the server: flag 2, delete 4.
    client = imap_session(server)
    client.select("INBOX")
    client.uid("STORE", "2", "+FLAGS.SILENT", "(\\Flagged)")
    client.uid("STORE", "4", "+FLAGS.SILENT", "(\\Deleted)")
    client.expunge()
    client.logout()

    screen = run_in_terminal(args, env, tmp_path)
    # Far: two messages copied, 1 read and 3 deleted; near: 2 flagged and 4 deleted.
    assert mbsync_stats(screen) == {"far": {"+": 2, "*": 2}, "near": {"*": 2}}, screen
    assert server_flags(alice) == {"mbsync-1": "S", "mbsync-2": "F", "mbsync-5": "",
                                   "mbsync-local": ""}
    assert server_flags(alice, "Projects") == {"mbsync-project": ""}
    [pushed] = messages(alice, "Projects")
    assert without_tuid(blob_store().get(pushed.blob_id)) == draft("mbsync-project")
    assert maildir_flags(inbox) == {"mbsync-1": "S", "mbsync-2": "F", "mbsync-5": "",
                                    "mbsync-local": ""}
    assert maildir_flags(local / "Projects") == {"mbsync-project": ""}

    # A third sync finds nothing to do: no file renamed, nothing changed on the server.
    before = snapshot(local), server_state(alice)
    screen = run_in_terminal(args, env, tmp_path)
    assert mbsync_stats(screen) == {"far": {}, "near": {}}, screen
    assert (snapshot(local), server_state(alice)) == before


# offlineimap ------------------------------------------------------------------------------

def test_offlineimap_pulls_and_pushes_flags(server, alice, tmp_path):
    offlineimap = require_program("offlineimap")
    sent = {f"offlineimap-{n}": send(server, f"offlineimap-{n}", f"Message {n}.\r\n")
            for n in range(1, 4)}
    local = tmp_path / "Mail"
    config = tmp_path / "offlineimaprc"
    config.write_text(
        "[general]\n"
        "accounts = alice\n"
        f"metadata = {tmp_path / 'offlineimap'}\n"
        "\n"
        "[Account alice]\n"
        "localrepository = local\n"
        "remoterepository = remote\n"
        "\n"
        "[Repository local]\n"
        "type = Maildir\n"
        f"localfolders = {local}\n"
        "\n"
        "[Repository remote]\n"
        "type = IMAP\n"
        "remotehost = localhost\n"
        f"remoteport = {server.port('imaps')}\n"
        f"remoteuser = {ALICE}\n"
        f"remotepass = {PASSWORD}\n"
        "ssl = yes\n"
        f"sslcacertfile = {cert_file()}\n"
        "timeout = 20\n"
    )
    args = [offlineimap, "-c", str(config), "-o", "-u", "basic"]
    env = home_env(tmp_path)
    first = run(args, env=env).stdout
    assert first.count("Copy message UID") == 3, first
    inbox = local / "INBOX"
    assert maildir_flags(inbox) == dict.fromkeys(sent, "")
    for message in messages(alice):
        # offlineimap stores messages with LF line ends, as Maildir readers expect.
        raw = blob_store().get(message.blob_id)
        assert raw.endswith(sent[message.subject])
        assert maildir_file(inbox, message.subject).read_bytes() == raw.replace(b"\r\n", b"\n")

    # Read 1 and write a message locally; flag 2 on the server.
    seen = maildir_file(inbox, "offlineimap-1")
    seen.rename(seen.parent.parent / "cur" / (seen.name.rpartition(":2,")[0] + ":2,S"))
    maildir_add(inbox, "1700000000.local1.host:2,S", draft("offlineimap-local"))
    client = imap_session(server)
    client.select("INBOX")
    client.uid("STORE", "2", "+FLAGS.SILENT", "(\\Flagged)")
    client.logout()
    second = run(args, env=env).stdout
    assert "Copy message UID -1 (1/1) local:INBOX -> remote:INBOX" in second, second
    assert "Adding flag S to 1 messages on INBOX" in second, second
    assert "Adding flag F to 1 messages on INBOX" in second, second
    assert server_flags(alice) == {"offlineimap-1": "S", "offlineimap-2": "F",
                                   "offlineimap-3": "", "offlineimap-local": "S"}
    assert maildir_flags(inbox) == server_flags(alice)
    [pushed] = [m for m in messages(alice) if m.subject == "offlineimap-local"]
    assert blob_store().get(pushed.blob_id) == draft("offlineimap-local")
    # The local copy now carries the UID the server gave it (UIDPLUS's APPENDUID).
    assert f",U={pushed.uid}," in maildir_file(inbox, "offlineimap-local").name

    before = snapshot(local), server_state(alice)
    third = run(args, env=env).stdout
    assert "Copy message" not in third and "flag" not in third, third
    assert (snapshot(local), server_state(alice)) == before


# curl -------------------------------------------------------------------------------------

def curl(url: str, *extra: str) -> bytes:
    curl = require_program("curl")
    args = [curl, "--silent", "--show-error", "--max-time", "20",
            "-u", f"{ALICE}:{PASSWORD}", *extra, url]
    return run_bytes(args)


def run_bytes(args: list[str]) -> bytes:
    """Run a client program for its exact output bytes; fail the test if it fails."""
    result = subprocess.run(args, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (
        f"{args[0]} exited {result.returncode}\nstdout:\n{result.stdout!r}\n"
        f"stderr:\n{result.stderr!r}")
    return result.stdout


@pytest.mark.parametrize("mode", ["imap", "imap-starttls", "imaps"])
def test_curl_lists_searches_fetches_and_appends(server, alice, tmp_path, mode):
    sent = [send(server, f"curl-{n}", f"Message {n} for curl.\r\n") for n in range(1, 4)]
    if mode == "imap":
        base, extra = f"imap://127.0.0.1:{server.port('imap')}", ()
    else:
        port = server.port("imaps" if mode == "imaps" else "imap")
        base = f"{'imaps' if mode == 'imaps' else 'imap'}://localhost:{port}"
        extra = ("--cacert", cert_file(), "--resolve", f"localhost:{port}:127.0.0.1")
        if mode == "imap-starttls":
            extra += ("--ssl-reqd",)

    listing = curl(f"{base}/", *extra)
    names = [f.name for f in Folder.objects.filter(mailbox=alice).order_by("name")]
    uses = {f.name: f.special_use for f in Folder.objects.filter(mailbox=alice)}
    assert listing == "".join(
        f'* LIST (\\HasNoChildren{" " + uses[name] if uses[name] else ""}) "/" {name}\r\n'
        for name in names).encode()

    # SEARCH from the URL's query, and any command with -X.
    assert curl(f"{base}/INBOX?SUBJECT%20curl-2", *extra) == b"* SEARCH 2\r\n"
    assert curl(f"{base}/INBOX", "-X", "UID SEARCH SUBJECT curl UNSEEN", *extra) == (
        b"* SEARCH 1 2 3\r\n")

    # FETCH by UID (curl asks for BODY[], not BODY.PEEK[]): the whole message, one section.
    stored = {m.uid: blob_store().get(m.blob_id) for m in messages(alice)}
    assert curl(f"{base}/INBOX;UID=2", *extra) == stored[2]
    assert stored[2].endswith(sent[1])
    assert curl(f"{base}/INBOX;UID=3;SECTION=TEXT", *extra) == b"Message 3 for curl.\r\n"
    assert server_flags(alice) == {"curl-1": "", "curl-2": "S", "curl-3": "S"}

    # An upload is an APPEND.
    upload = tmp_path / "upload.eml"
    upload.write_bytes(draft("curl-upload"))
    assert curl(f"{base}/Sent", "-T", str(upload), *extra) == b""
    [appended] = messages(alice, "Sent")
    assert blob_store().get(appended.blob_id) == draft("curl-upload")


# mutt -------------------------------------------------------------------------------------

def write_muttrc(tmp_path: Path, server, *extra: str) -> Path:
    """A muttrc for alice's mail over IMAPS, trusting the server's certificate only."""
    rc = tmp_path / "muttrc"
    rc.write_text("\n".join([
        f'set folder = "imaps://localhost:{server.port("imaps")}/"',
        'set spoolfile = "+INBOX"',
        f'set imap_user = "{ALICE}"',
        f'set imap_pass = "{PASSWORD}"',
        f'set ssl_ca_certificates_file = "{cert_file()}"',
        f'set certificate_file = "{tmp_path / "certificates"}"',
        "set ssl_verify_host = yes",
        "set ssl_force_tls = yes",
        "set connect_timeout = 20",
        'set message_cachedir = ""',
        "set sort = mailbox-order",
        "set wait_key = no",  # no "Press any key" after a pipe
        "set sleep_time = 0",
        "set quit = yes",
        "set pipe_decode = no",
        "set mail_check_stats = no",
        "set imap_check_subscribed = no",
        *extra,
    ]) + "\n")
    return rc


def mutt(rc: Path, keys: str, tmp_path: Path) -> str:
    """Open INBOX in mutt, type keys (which must end by quitting); return its screen."""
    program = require_program("mutt")
    env = home_env(tmp_path) | {"TERM": "vt100"}
    return run_in_terminal([program, "-n", "-F", str(rc), "-f", "=INBOX",
                            "-e", f"push '{keys}'"], env, tmp_path)


def test_mutt_opens_inbox_over_imaps_and_pipes_a_message(server, alice, tmp_path):
    raws = [send(server, f"mutt-{n}", f"Message {n} for mutt.\r\n") for n in range(1, 3)]
    rc = write_muttrc(tmp_path, server, 'set header_cache = ""')
    out = tmp_path / "piped.eml"
    screen = mutt(rc, f"<pipe-message>cat > {out}<enter><flag-message><sync-mailbox><quit>",
                  tmp_path)
    # mutt pipes the first message whole, headers included, with LF line ends.
    [first, _] = messages(alice)
    assert out.exists(), screen
    piped = out.read_bytes()
    assert piped == blob_store().get(first.blob_id).replace(b"\r\n", b"\n"), screen
    assert piped.endswith(raws[0].split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))
    # And its flag, written back on <sync-mailbox>, is on the server.
    assert "2 kept, 0 deleted." in screen, screen
    assert server_flags(alice) == {"mutt-1": "F", "mutt-2": ""}


def test_mutt_resyncs_from_its_header_cache_with_qresync(server, alice, tmp_path, caplog):
    for n in range(1, 4):
        send(server, f"mutt-{n}", f"Message {n} for mutt.\r\n")
    rc = write_muttrc(tmp_path, server, f'set header_cache = "{tmp_path / "hcache"}"',
                      "set imap_qresync = yes")
    screen = mutt(rc, "<quit>", tmp_path)
    assert "[Msgs:3 New:3 " in screen, screen

    # Meanwhile, on the server: 1 expunged, 2 read, 3 flagged, 4 delivered.
    client = imap_session(server)
    client.select("INBOX")
    client.uid("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")
    client.uid("STORE", "2", "+FLAGS.SILENT", "(\\Seen)")
    client.uid("STORE", "3", "+FLAGS.SILENT", "(\\Flagged)")
    client.expunge()
    client.logout()
    send(server, "mutt-4", "Message 4 for mutt.\r\n")

    out = tmp_path / "piped.eml"
    screen = mutt(rc, f"<pipe-message>cat > {out}<enter><quit>", tmp_path)
    # From its cache, mutt asked only for what changed: the expunge, the flags, message 4.
    assert "Fetching flag updates..." in screen, screen
    assert "[Msgs:3 New:1 Old:1 Flag:1 " in screen, screen
    assert "mutt-1" not in screen, screen
    # mutt opens on the first new message: the one delivered meanwhile.
    [newest] = [m for m in messages(alice) if m.subject == "mutt-4"]
    assert out.read_bytes() == blob_store().get(newest.blob_id).replace(b"\r\n", b"\n")
    assert caplog.text.count("enabled QRESYNC") == 2
