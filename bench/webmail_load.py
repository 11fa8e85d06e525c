"""Webmail under load: users reading a 50,000-message INBOX, its list page and its messages.

Run from the project folder (wrk, Debian's package, makes the requests):

    python bench/webmail_load.py [--messages 50000] [--users 20] [--seconds 20]
        [--workers 3] [--think 0] [--database-url postgres://USER@HOST:PORT/SCRATCH]
        [--only list,message,body]

Fills one mailbox's INBOX with --messages messages by bulk insert through the store's
models (a few hundred distinct raw messages, plain, HTML and with attachments, kept as
blobs; each row its own Message-ID, thread columns, date and flags), in a throwaway data
folder (SQLite, or the scratch Postgres database --database-url names, created and
dropped). Starts the web tier as production does (docker-compose.yml: gunicorn
panel.wsgi, 3 sync workers, access log on, DEBUG=0, static files collected), signs
--users browser sessions in through the webmail login form, then for each page kind in
turn runs wrk for --seconds with one connection per user, each user waiting --think
seconds between its requests (0: every user has a request in flight at all times):

    list     the INBOX's first page (GET /webmail/folders/<id>/)
    message  a random message of the INBOX (GET /webmail/folders/<id>/<uid>/)
    body     that message's body frame, which the message page loads (.../<uid>/body/)

and prints requests/s, median, p95 and p99 (wall clock), and the web tier's CPU time
(gunicorn's master and workers, user+sys) per request. Target: p95 under 200 ms for the
list and the message with 20 users.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
USER, PASSWORD = "reader@bench.test", "bench-password"
TARGET_P95_MS = 200.0
TEMPLATES = 300  # distinct raw messages; rows reuse them
KINDS = ("list", "message", "body")
WORDS = ("quarterly", "invoice", "meeting", "holiday", "release", "budget", "review",
         "lunch", "travel", "contract", "support", "roadmap")

FILL_SCRIPT = """\
import sys
sys.path.insert(0, {bench!r})
from webmail_load import fill
fill({address!r}, {password!r}, {count!r})
"""

# wrk's script: one thread (and connection) per user, each with its own session cookie.
WRK_SCRIPT = """\
local cookies = {{{cookies}}}
local kind, folder, count, think = "{kind}", {folder}, {count}, {think}
local threads, made = {{}}, 0

function setup(thread)
  made = made + 1
  thread:set("cookie", cookies[(made - 1) % #cookies + 1])
  thread:set("seed", made)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(seed * 7919)
  wrk.headers["Cookie"] = cookie
  bad = 0
end

function request()
  local path = "/webmail/folders/" .. folder .. "/"
  if kind ~= "list" then
    path = path .. math.random(1, count) .. "/"
    if kind == "body" then path = path .. "body/" end
  end
  return wrk.format("GET", path)
end

function delay()
  return think
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local wrong = 0
  for _, thread in ipairs(threads) do wrong = wrong + thread:get("bad") end
  io.write(string.format("RESULT %d %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), wrong, summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


# The mailbox --------------------------------------------------------------------------------

def template(n: int) -> bytes:
    """Return distinct raw message n: plain text, HTML with a text part, or with a PDF."""
    sender = f"{WORDS[n % len(WORDS)].title()} Sender <{WORDS[n % len(WORDS)]}{n % 17}@remote.test>"
    head = (f"From: {sender}\r\nTo: <{USER}>\r\nSubject: The {WORDS[n % 12]} report\r\n"
            f"Date: Tue, 14 Nov 2023 22:{n % 60:02d}:20 +0000\r\n"
            f"Message-ID: <template.{n}@remote.test>\r\nMIME-Version: 1.0\r\n")
    text = "\r\n".join(" ".join(WORDS[(n * 7 + i * 3 + j) % 12] for j in range(11))
                       for i in range(20 + n % 120))
    if n % 3 == 0:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n").encode()
    html = "".join(f"<p>{line} <a href=\"https://example.test/{n}/{i}\">link</a></p>\r\n"
                   for i, line in enumerate(text.split("\r\n")))
    alternative = (
        "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
        "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><body>" + html + "</body></html>\r\n--alt--\r\n")
    if n % 3 == 1:
        return (head + "Content-Type: multipart/alternative; boundary=alt\r\n\r\n"
                + alternative).encode()
    attachment = "\r\n".join(["JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K"]
                             * (50 + n % 400))
    return (head + "Content-Type: multipart/mixed; boundary=mix\r\n\r\n"
            "--mix\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
            + alternative + "--mix\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
            "Content-Disposition: attachment; filename=\"report.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + attachment + "\r\n--mix--\r\n").encode()


def fill(address: str, password: str, count: int) -> None:
    """Add the mailbox with count messages in its INBOX, in bulk, through the store's models.

    Run inside `manage.py shell` with the server's settings. Blob files are written without
    the store's fsyncs: this is a benchmark's setup, not a delivery.
    """
    from datetime import UTC, datetime, timedelta

    from django.db import transaction

    from mailcore import directory
    from mailcore.message import sortkeys
    from mailcore.message.summary import summarize
    from mailcore.models import Blob, Folder, Mailbox, Message
    from mailcore.store import structure
    from mailcore.store.blobs import blob_store

    store = blob_store()
    directory.add_domain(address.rpartition("@")[2])
    mailbox = directory.add_mailbox(address, password, quota_bytes=0)
    folder = Folder.objects.get(mailbox=mailbox, name="INBOX")
    kept = []
    for n in range(TEMPLATES):
        raw = template(n)
        key = store.put(raw)
        kept.append((Blob(key=key, size=len(raw)),
                     {**summarize(raw), **structure.compute(raw)}))
    Blob.objects.bulk_create([blob for blob, _ in kept], ignore_conflicts=True)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(1, count + 1):
        blob, fields = kept[n % TEMPLATES]
        first = n - n % 5  # threads of five: a message and four replies
        topic = f"Topic {n // 5} of the {WORDS[n % 12]} report"
        rows.append(Message(**{
            **fields, "folder": folder, "uid": n, "blob_id": blob.key, "size": blob.size,
            "modseq": n + 1, "internal_date": start + timedelta(minutes=10 * n),
            "seen": n % 4 != 0, "flagged": n % 53 == 0, "answered": n % 17 == 0,
            "subject": ("Re: " if n != first else "") + topic,
            "sort_subject": sortkeys.casemap(topic), "message_id": f"<{n}@remote.test>",
            "thread_refs": "" if n == first else f"<{first}@remote.test> <{n - 1}@remote.test>",
        }))
        rows[-1].thread_root = sortkeys.thread_root(rows[-1].message_id, rows[-1].thread_refs)
    with transaction.atomic():
        Message.objects.bulk_create(rows, batch_size=2000)
        Folder.objects.filter(pk=folder.pk).update(uidnext=count + 1, highestmodseq=count + 1)
        Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=sum(r.size for r in rows))


# The web tier -------------------------------------------------------------------------------

def _environment(data_dir: Path, port: int, database_url: str | None) -> dict[str, str]:
    from ours import NOT_INHERITED

    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(
        DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="panel.settings",
        DEBUG="0",  # as in production: DEBUG keeps and times every query
        SITE_URL=f"http://127.0.0.1:{port}", SECRET_KEY="bench-only-" + "x" * 50,
        MAIL_HOSTNAME="mx.bench.test", LOG_LEVEL="WARNING",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env




@contextlib.contextmanager
def web_server(tmpdir: Path, messages: int, workers: int, database_url: str | None):
    """Yield (port, gunicorn's pid) of production's web tier over a filled data folder."""
    from daemons import daemon, wait_port
    from load import free_port
    from ours import _manage, scratch_database

    port = free_port()
    env = _environment(tmpdir, port, database_url)
    log = tmpdir / "web.log"
    with contextlib.ExitStack() as stack:
        if database_url:
            stack.enter_context(scratch_database(database_url))
        _manage(["migrate", "--noinput"], env, log, 1800)
        _manage(["collectstatic", "--noinput"], env, log, 1800)
        began = time.monotonic()
        _manage(["shell", "-c", FILL_SCRIPT.format(bench=str(BENCH), address=USER,
                                                   password=PASSWORD, count=messages)],
                env, log, 1800)
        print(f"filled {messages} messages in {time.monotonic() - began:.0f} s")
        # docker-compose.yml's command for the web service, on loopback.
        proc = stack.enter_context(daemon(
            [sys.executable, "-m", "gunicorn", "panel.wsgi:application",
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
             "--access-logfile", "-"], log, env=env, cwd=PROJECT))
        wait_port(port, proc, log, timeout=60)
        yield port, proc.pid


def log_in(port: int) -> tuple[str, int]:
    """Sign in through the webmail form; return (the session's Cookie header, INBOX's id)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    page = opener.open(f"{base}/webmail/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token[1], "address": USER,
                                   "password": PASSWORD}).encode()
    request = urllib.request.Request(f"{base}/webmail/login/", data=form,
                                     headers={"Referer": f"{base}/webmail/login/"})
    landed = opener.open(request, timeout=30)
    folder = re.search(r"/webmail/folders/(\d+)/", landed.url)
    assert folder, f"login did not reach a folder: {landed.url}"
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return cookie, int(folder[1])


# Measuring ----------------------------------------------------------------------------------

@dataclass
class Figures:
    kind: str
    requests: int
    seconds: float
    median_ms: float
    p95_ms: float
    p99_ms: float
    wrong: int  # answers other than 200 (a redirect to the login page, an error)
    errors: int  # connections that failed or timed out
    cpu_seconds: float  # the web tier's, over the run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def _cpu_seconds(pid: int) -> float:
    """Return the CPU time (user+sys) of a process and its children, living and ended."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            stat = Path(f"/proc/{candidate}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(entry.path, "stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[1]) == parent:
                    found.append(int(entry.name))
    return found


def run_wrk(kind: str, port: int, pid: int, cookies: list[str], folder: int, messages: int,
            seconds: int, think: float, tmpdir: Path) -> Figures:
    script = tmpdir / f"{kind}.lua"
    script.write_text(WRK_SCRIPT.format(
        cookies=", ".join(f'"{c}"' for c in cookies), kind=kind, folder=folder,
        count=messages, think=int(think * 1000)))
    users = len(cookies)
    before = _cpu_seconds(pid)
    done = subprocess.run(
        ["wrk", "-t", str(users), "-c", str(users), "-d", f"{seconds}s", "--timeout", "30s",
         "-s", str(script), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 120, check=True)
    cpu = _cpu_seconds(pid) - before
    match = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", done.stdout, re.M)
    assert match, done.stdout + done.stderr
    requests, duration, median, p95, p99, wrong, errors = map(int, match.groups())
    return Figures(kind, requests, duration / 1e6, median / 1000, p95 / 1000, p99 / 1000,
                   wrong, errors, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn's (production: 3)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds each user waits between its requests")
    parser.add_argument("--only", default=",".join(KINDS),
                        help="comma-separated: " + ", ".join(KINDS))
    parser.add_argument("--database-url", metavar="postgres://USER@HOST:PORT/SCRATCH",
                        help="a scratch Postgres database (created here and dropped after); "
                             "default: SQLite in a temporary folder")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    kinds = [k for k in args.only.split(",") if k]
    with tempfile.TemporaryDirectory() as tmp, \
            web_server(Path(tmp), args.messages, args.workers, args.database_url) as (port, pid):
        sessions = [log_in(port) for _ in range(args.users)]
        cookies, folder = [cookie for cookie, _ in sessions], sessions[0][1]
        # A short warm-up: every worker imports and compiles its templates first.
        run_wrk("list", port, pid, cookies, folder, args.messages, 2, 0, Path(tmp))
        results = [run_wrk(kind, port, pid, cookies, folder, args.messages, args.seconds,
                           args.think, Path(tmp)) for kind in kinds]
    print(f"\nwebmail, {args.users} users, {args.messages}-message INBOX, gunicorn "
          f"{args.workers} workers, {'Postgres' if args.database_url else 'SQLite'}, "
          f"think {args.think:g} s, {args.seconds} s each:")
    print(f"{'page':10} {'req/s':>8} {'median':>9} {'p95':>9} {'p99':>9} "
          f"{'CPU ms/req':>11} {'not 200':>8} {'errors':>7}  target p95 < {TARGET_P95_MS:.0f} ms")
    for f in results:
        verdict = "met" if f.p95_ms < TARGET_P95_MS else "MISSED"
        print(f"{f.kind:10} {f.rate:8.1f} {f.median_ms:7.1f}ms {f.p95_ms:7.1f}ms "
              f"{f.p99_ms:7.1f}ms {1000 * f.cpu_seconds / max(f.requests, 1):11.1f} "
              f"{f.wrong:8d} {f.errors:7d}  {verdict} ({f.p95_ms / TARGET_P95_MS:.2f}x)")


if __name__ == "__main__":
    main()
