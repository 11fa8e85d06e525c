"""Our mailcore server on 127.0.0.1, from a throwaway data folder (SQLite or scratch Postgres)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from daemons import HOST, daemon, tail, wait_ports_file

PROJECT = Path(__file__).resolve().parent.parent
SETUP_TIMEOUT = 300.0  # seconds for `migrate` and for creating the mailboxes
# Databases a benchmark must never create or drop.
PROTECTED_DATABASES = {"postgres", "template0", "template1"}
SCRATCH_MARK = "mailcore benchmark scratch database"
# Inherited settings that would point the server at something other than its data folder.
NOT_INHERITED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "BLOB_DIR", "SECRET_KEY")
# Listeners the benchmark does not use: off, so they cannot clash with other servers' ports.
UNUSED_LISTENERS = ("SUBMISSION_PORT", "SUBMISSIONS_PORT", "POP3S_PORT", "IMAP_PORT", "IMAPS_PORT")
COUNT_MESSAGES = "SELECT count(*) FROM mailcore_message"
# Run by `manage.py shell -c`: the domains and mailboxes, through the directory service.
ADD_USERS = """\
from mailcore import directory
users = {users!r}
for domain in sorted({{address.rpartition("@")[2] for address, _ in users}}):
    directory.add_domain(domain)
for address, password in users:
    directory.add_mailbox(address, password)
"""


@dataclass
class OurServer:
    """A running `manage.py mailcore`; its log is tmpdir/mailcore.log."""

    tmpdir: Path
    users: tuple[tuple[str, str], ...]
    smtp_port: int
    pop3_port: int
    pid: int  # of `manage.py mailcore`, e.g. for `py-spy record --pid`
    count_messages: Callable[[], int]
    host: str = HOST

    @property
    def logs(self) -> list[Path]:
        return [self.tmpdir / "mailcore.log"]

    def delivered(self) -> int:
        """Messages committed to the database, in every folder."""
        return self.count_messages()


def _environment(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(dict.fromkeys(UNUSED_LISTENERS, "0"))
    env.update(
        DATA_DIR=str(data_dir),
        SMTP_PORT="auto",  # bound by mailcore and reported in the ports file
        POP3_PORT="auto",
        MAILCORE_PORTS_FILE=str(data_dir / "ports.json"),
        MAIL_BIND_ADDRESS=HOST,
        MAIL_HOSTNAME="mx.bench.test",
        PLAINTEXT_AUTH="loopback",
        LOG_LEVEL="WARNING",  # one INFO line per SMTP event would cost more than it tells
        DEBUG="0",  # as in production: DEBUG keeps and times every query
        SITE_URL="http://127.0.0.1:8000", SECRET_KEY="bench-only-" + "x" * 50,
        SHUTDOWN_GRACE="5",
        DJANGO_SETTINGS_MODULE="panel.settings",
        # Sender authentication asks DNS about every sender: off unless a benchmark serves
        # the records (bench/inbound_auth.py).
        INBOUND_AUTH="0",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _manage(args: list[str], env: dict[str, str], log: Path,
            timeout: float = SETUP_TIMEOUT) -> None:
    """Run `manage.py ARGS` in the project, its output appended to log; raise if it fails."""
    with log.open("ab") as out:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            timeout=timeout, check=False,
        )
    if done.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed ({done.returncode}):\n{tail(log)}")


@contextlib.contextmanager
def scratch_database(url: str) -> Iterator[None]:
    """Create the Postgres database `url` names for one run, and drop it afterwards.

    A database of that name is dropped first only if an earlier run created it (it
    carries SCRATCH_MARK as its comment); any other is left alone and refused.
    """
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"not a postgres:// URL: {url}")
    if not name or name.lower().startswith("test") or name in PROTECTED_DATABASES:
        raise ValueError(f"refusing to create or drop database {name!r}: name a scratch one")
    database = sql.Identifier(name)
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database)
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
        found = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
        if found is not None and found[0] != SCRATCH_MARK:
            raise ValueError(f"database {name!r} exists and is not a benchmark's: not dropping it")
        admin.execute(drop)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(database))
        admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            database, sql.Literal(SCRATCH_MARK)))
    try:
        yield
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(drop)


@contextlib.contextmanager
def _message_counter(data_dir: Path, database_url: str | None) -> Iterator[Callable[[], int]]:
    """A function counting committed messages, over one connection of our own."""
    if database_url:
        import psycopg

        conn = psycopg.connect(database_url, autocommit=True, connect_timeout=10)
    else:
        conn = sqlite3.connect(data_dir / "db.sqlite3", timeout=30)
    try:
        yield lambda: conn.execute(COUNT_MESSAGES).fetchone()[0]
    finally:
        conn.close()


@contextlib.contextmanager
def mailcore(
    tmpdir: str | Path,
    users: Sequence[tuple[str, str]],
    database_url: str | None = None,
    settings: dict[str, str] | None = None,
) -> Iterator[OurServer]:
    """Migrate, add the users' domains and mailboxes, and serve SMTP and POP3 (no TLS).

    Without database_url the server uses SQLite in tmpdir; with one, that Postgres
    database is created for the run and dropped after it. settings: environment variables
    beyond the benchmark's own.
    """
    data_dir = Path(tmpdir)
    log = data_dir / "mailcore.log"
    env = {**_environment(data_dir, database_url), **(settings or {})}
    ports_file = Path(env["MAILCORE_PORTS_FILE"])
    ports_file.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        if database_url:
            stack.enter_context(scratch_database(database_url))
        _manage(["migrate", "--noinput"], env, log)
        _manage(["shell", "-c", ADD_USERS.format(users=list(users))], env, log)
        argv = [sys.executable, "manage.py", "mailcore"]
        proc = stack.enter_context(daemon(argv, log, env=env, cwd=PROJECT))
        ports = wait_ports_file(ports_file, proc, log)
        count = stack.enter_context(_message_counter(data_dir, database_url))
        yield OurServer(data_dir, tuple(users), ports["smtp"], ports["pop3"], proc.pid, count)
