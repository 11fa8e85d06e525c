"""Reference servers on 127.0.0.1: Postfix -> Dovecot LMTP, Dovecot POP3/IMAP, Postfix relay."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, Type
from daemons import HOST, daemon, wait_port

MAIL_USER = "benchmail"  # unprivileged owner of the maildirs (Dovecot refuses uid 0)
DEFAULT_USERS: tuple[tuple[str, str], ...] = (
    ("alice@bench.test", "secret"),
    ("bob@bench.test", "secret"),
)
# Logins cost what mailcore's do: argon2id at its default ARGON2_* settings.
PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)
POSTFIX_MASTER = "/usr/lib/postfix/sbin/master"
POSTQUEUE = "/usr/sbin/postqueue"
DOVECOT = "/usr/sbin/dovecot"
POSTFIX_PRIVATE_QUEUES = (
    "active bounce corrupt defer deferred flush hold incoming private saved trace"
)
# Everything runs unchrooted: the daemons only ever see files inside tmpdir.
POSTFIX_SERVICES = """\
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
lmtp       unix  - - n -  - lmtp
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
"""
# The SMTP client, for a Postfix that relays (POSTFIX_SERVICES has no outbound transport).
POSTFIX_SMTP_CLIENT = """\
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
"""


class MissingBinaryError(RuntimeError):
    """A reference server binary is not installed."""


@dataclass
class ReferenceServers:
    """Running servers; logs in tmpdir/postfix/postfix.log, tmpdir/dovecot/*.log."""

    tmpdir: Path
    users: tuple[tuple[str, str], ...]
    pop3_port: int
    imap_port: int | None = None
    smtp_port: int | None = None
    host: str = HOST

    @property
    def logs(self) -> list[Path]:
        return [self.tmpdir / "postfix" / "postfix.log", self.tmpdir / "dovecot" / "dovecot.log"]

    @property
    def lmtp_socket(self) -> Path:
        return self.tmpdir / "dovecot" / "run" / "lmtp"

    def maildir(self, user: str) -> Path:
        return self.tmpdir / "mail" / user / "Maildir"

    def delivered(self) -> int:
        """Messages in all users' INBOX maildirs (new/ + cur/)."""
        total = 0
        for user, _ in self.users:
            for sub in ("new", "cur"):
                with contextlib.suppress(FileNotFoundError):
                    total += sum(1 for _ in os.scandir(self.maildir(user) / sub))
        return total

    def prefill(self, per_user: int, message: bytes) -> int:
        """Store `per_user` copies of `message` in every INBOX; return the total."""
        uid, gid = _mail_owner()
        body = message.replace(b"\r\n", b"\n")  # maildir files use LF line endings
        for user, _ in self.users:
            for _ in range(per_user):
                name = f"{int(time.time())}.{uuid.uuid4().hex}.bench,S={len(body)}"
                path = self.maildir(user) / "new" / name
                path.write_bytes(body)
                os.chown(path, uid, gid)
        return per_user * len(self.users)

    def fill(self, user: str, messages: Iterable[tuple[bytes, str]], folder: str = "") -> int:
        """Store (message, Maildir flags) pairs in a user's folder as Dovecot's LMTP would.

        Files go straight to cur/, named in delivery order with S= (file size) and W=
        (size with CRLF) as Dovecot names them, so no read is needed to list them.
        `folder` "" is INBOX; another is a Maildir++ subfolder ".name". Return the count.
        """
        uid, gid = _mail_owner()
        root = self.maildir(user) / (f".{folder}" if folder else "")
        for sub in ("cur", "new", "tmp"):
            if not (root / sub).exists():
                _mkdir(root / sub, 0o700, MAIL_USER, MAIL_USER)
        base = int(time.time()) - 10_000_000
        count = 0
        for count, (message, flags) in enumerate(messages, 1):
            body = message.replace(b"\r\n", b"\n")  # maildir files use LF line endings
            name = f"{base + count}.M{count}P0.bench,S={len(body)},W={len(message)}:2,{flags}"
            path = root / "cur" / name
            path.write_bytes(body)
            os.chown(path, uid, gid)
        return count


def _require(path: str, package: str) -> None:
    if not os.access(path, os.X_OK):
        raise MissingBinaryError(f"{path} missing: apt-get install {package}")


def _mail_owner() -> tuple[int, int]:
    """uid/gid of MAIL_USER, created as a system user if missing."""
    try:
        entry = pwd.getpwnam(MAIL_USER)
    except KeyError:
        useradd = "useradd --system --user-group --no-create-home --shell /bin/false"
        subprocess.run([*useradd.split(), MAIL_USER], check=True)
        entry = pwd.getpwnam(MAIL_USER)
    return entry.pw_uid, entry.pw_gid


def _mkdir(path: Path, mode: int, user: str = "root", group: str = "root") -> None:
    path.mkdir(parents=True)
    path.chmod(mode)
    os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)


def _write_dovecot_config(ref: ReferenceServers, extra: str = "") -> Path:
    uid, gid = _mail_owner()
    root = ref.tmpdir / "dovecot"
    _mkdir(root, 0o755)
    passwd = root / "passwd"
    lines = []
    for user, password in ref.users:
        home = ref.tmpdir / "mail" / user
        _mkdir(home, 0o700, MAIL_USER, MAIL_USER)
        for sub in ("", "cur", "new", "tmp"):
            _mkdir(home / "Maildir" / sub, 0o700, MAIL_USER, MAIL_USER)
        hashed = PASSWORD_HASHER.hash(password)
        lines.append(f"{user}:{{ARGON2ID}}{hashed}:{uid}:{gid}::{home}::\n")
    passwd.write_text("".join(lines))
    passwd.chmod(0o644)  # read by the auth process running as user dovecot
    conf = root / "dovecot.conf"
    conf.write_text(f"""\
protocols = pop3 lmtp{" imap" if ref.imap_port else ""}
listen = {HOST}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {HOST}
    port = {ref.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {ref.imap_port or 0}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
{extra}""")
    return conf


def _postfix_tree(root: Path, hostname: str) -> tuple[Path, str]:
    """Lay out a throwaway Postfix under root, as `postfix check` would (no `postfix -c`
    needed); return its config folder and the main.cf settings every instance shares."""
    etc, queue, data = root / "etc", root / "queue", root / "data"
    _mkdir(root, 0o755)
    _mkdir(etc, 0o755)
    _mkdir(data, 0o700, "postfix")
    for name in POSTFIX_PRIVATE_QUEUES.split():
        _mkdir(queue / name, 0o700, "postfix")
    _mkdir(queue / "maildrop", 0o1730, "postfix", "postdrop")
    _mkdir(queue / "public", 0o710, "postfix", "postdrop")
    _mkdir(queue / "pid", 0o755)
    return etc, f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
myhostname = {hostname}
mydomain = bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
inet_interfaces = {HOST}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
"""


def _write_postfix_config(ref: ReferenceServers) -> Path:
    etc, common = _postfix_tree(ref.tmpdir / "postfix", "mx.bench.test")
    vmailbox = etc / "vmailbox"
    vmailbox.write_text("".join(f"{user} OK\n" for user, _ in ref.users))
    domains = " ".join(sorted({user.rpartition("@")[2] for user, _ in ref.users}))
    (etc / "main.cf").write_text(common + f"""\
virtual_mailbox_domains = {domains}
virtual_mailbox_maps = texthash:{vmailbox}
virtual_transport = lmtp:unix:{ref.lmtp_socket}
default_transport = error:outbound mail disabled in benchmark
relay_transport = error:outbound mail disabled in benchmark
""")
    smtpd = f"{HOST}:{ref.smtp_port} inet n - n - - smtpd\n"
    (etc / "master.cf").write_text(smtpd + POSTFIX_SERVICES)
    return etc


@contextlib.contextmanager
def dovecot_only(
    tmpdir: str | Path,
    pop3_port: int,
    imap_port: int | None = None,
    users: Sequence[tuple[str, str]] = DEFAULT_USERS,
    settings: str = "",
) -> Iterator[ReferenceServers]:
    """Dovecot alone: POP3 (+ IMAP), LMTP socket; fill with `prefill`. Needs root.

    `settings` is appended to dovecot.conf (e.g. higher process limits for a benchmark).
    """
    _require(DOVECOT, "dovecot-core")
    _require("/usr/lib/dovecot/pop3", "dovecot-pop3d")
    _require("/usr/lib/dovecot/lmtp", "dovecot-lmtpd")
    if imap_port:
        _require("/usr/lib/dovecot/imap", "dovecot-imapd")
    if os.geteuid() != 0:
        raise PermissionError("run as root: the daemons drop privileges themselves")
    ref = ReferenceServers(Path(tmpdir), tuple(users), pop3_port, imap_port)
    ref.tmpdir.chmod(0o755)  # MAIL_USER, postfix and dovecot must traverse it
    conf = _write_dovecot_config(ref, settings)
    log = conf.parent / "dovecot.out"
    with daemon([DOVECOT, "-F", "-c", str(conf)], log) as proc:
        wait_port(pop3_port, proc, log)
        if imap_port:
            wait_port(imap_port, proc, log)
        yield ref


@contextlib.contextmanager
def postfix_dovecot(
    tmpdir: str | Path,
    smtp_port: int,
    pop3_port: int,
    imap_port: int | None = None,
    users: Sequence[tuple[str, str]] = DEFAULT_USERS,
) -> Iterator[ReferenceServers]:
    """Postfix smtpd on smtp_port delivering over LMTP into `dovecot_only`."""
    _require(POSTFIX_MASTER, "postfix")
    with dovecot_only(tmpdir, pop3_port, imap_port, users) as ref:
        ref.smtp_port = smtp_port
        etc = _write_postfix_config(ref)
        log = etc.parent / "master.out"
        with daemon([POSTFIX_MASTER, "-d", "-c", str(etc)], log) as proc:
            wait_port(smtp_port, proc, log)
            yield ref


@dataclass
class PostfixRelay:
    """A running Postfix relaying all mail to one next hop; log in tmpdir/postfix/postfix.log."""

    tmpdir: Path
    smtp_port: int
    relay_port: int
    held: bool
    host: str = HOST

    @property
    def etc(self) -> Path:
        return self.tmpdir / "postfix" / "etc"

    @property
    def logs(self) -> list[Path]:
        return [self.tmpdir / "postfix" / "postfix.log", self.tmpdir / "postfix" / "master.out"]

    def queued(self, *names: str) -> int:
        """Messages in these queues (default: every queue a message waits in)."""
        total = 0
        for name in names or ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(self.tmpdir / "postfix" / "queue" / name):
                total += len(files)
        return total

    def flush(self) -> None:
        """Deliver the held mail now (`postqueue -f`, which defer_transports waits for)."""
        subprocess.run([POSTQUEUE, "-c", str(self.etc), "-f"], check=True, timeout=30,
                       stdin=subprocess.DEVNULL)


def _write_postfix_relay_config(relay: PostfixRelay) -> Path:
    etc, common = _postfix_tree(relay.tmpdir / "postfix", "relay.bench.test")
    # Held mail waits in the deferred queue until `postqueue -f` (defer_transports).
    hold = "defer_transports = smtp\n" if relay.held else ""
    (etc / "main.cf").write_text(common + f"""\
relayhost = [{HOST}]:{relay.relay_port}
{hold}""")
    smtpd = f"{HOST}:{relay.smtp_port} inet n - n - - smtpd\n"
    (etc / "master.cf").write_text(smtpd + POSTFIX_SERVICES + POSTFIX_SMTP_CLIENT)
    return etc


@contextlib.contextmanager
def postfix_relay(
    tmpdir: str | Path,
    smtp_port: int,
    relay_port: int,
    held: bool = False,
) -> Iterator[PostfixRelay]:
    """Postfix smtpd on smtp_port relaying everything to HOST:relay_port, defaults otherwise.

    With held, accepted mail waits in the queue until `PostfixRelay.flush()`. Needs root.
    """
    _require(POSTFIX_MASTER, "postfix")
    if os.geteuid() != 0:
        raise PermissionError("run as root: the daemons drop privileges themselves")
    relay = PostfixRelay(Path(tmpdir), smtp_port, relay_port, held)
    relay.tmpdir.chmod(0o755)  # postfix must traverse it
    etc = _write_postfix_relay_config(relay)
    log = etc.parent / "master.out"
    with daemon([POSTFIX_MASTER, "-d", "-c", str(etc)], log) as proc:
        wait_port(smtp_port, proc, log)
        yield relay
