"""Run the whole system on one machine: web, mailcore, Celery worker and beat.

Each child's output reaches the terminal line by line, prefixed with the child's name, with
known noise left out; once every child listens, one banner says where to point a browser
and a mail client.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.management.base import BaseCommand

# Lines every run prints that say nothing to whoever runs it.
NOISE = [
    # kombu, at start and for every task sent, when a broker URL names no host.
    re.compile(r"No hostname was supplied"),
    # A browser asking for an icon the page does not name (served since; old pages may).
    re.compile(r'"GET /favicon\.ico HTTP/[\d.]+" 404|Not Found: /favicon\.ico'),
]
# What each child prints once it is ready (mailcore reports its ports in a file instead,
# and the web server is ready when its port accepts connections).
WORKER_READY = re.compile(r"celery@\S+ ready\.")
NAME_WIDTH = 8
# The listeners, as the banner names them: (listener, what a client needs to know).
MAIL_LISTENERS = [("smtp", "SMTP (incoming mail)"), ("submission", "Submission (STARTTLS)"),
                  ("submissions", "Submission (TLS)"), ("imap", "IMAP (STARTTLS)"),
                  ("imaps", "IMAP (TLS)"), ("pop3", "POP3 (STLS)"), ("pop3s", "POP3 (TLS)")]


def prefixed(name: str, line: str) -> str | None:
    """Return a child's output line as shown (name first), or None for known noise."""
    line = line.rstrip("\r\n")
    if any(pattern.search(line) for pattern in NOISE):
        return None
    return f"{name:<{NAME_WIDTH}}| {line}"


def web_address(bind: str) -> tuple[str, int]:
    """Return where to reach the web server on this machine, from its address:port."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # every address: loopback is one of them
        host = "127.0.0.1"
    return host, int(port)


def web_url(bind: str) -> str:
    """Return the URL a browser on this machine opens for the web server's address:port."""
    host, port = web_address(bind)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def banner(web: str, mail_host: str, ports: dict[str, int]) -> str:
    """Return the ready banner: the web pages, then each mail listener's address."""
    url = web_url(web)
    mail_host = mail_host if mail_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    rows = [("Panel", url), ("Dashboard", f"{url}dashboard/  (operators)"),
            ("Webmail", f"{url}webmail/"), ("Admin", f"{url}admin/")]
    rows += [(label, f"{mail_host}:{ports[name]}") for name, label in MAIL_LISTENERS
             if name in ports]
    width = max(len(label) for label, _ in rows)
    lines = ["Ready. Ctrl-C stops everything.", *(f"  {label:<{width}}  {value}"
                                                for label, value in rows)]
    rule = "=" * max(len(line) for line in lines)
    return "\n".join([rule, *lines, rule])


def listens(bind: str) -> bool:
    """Return whether the web server accepts connections yet."""
    try:
        with socket.create_connection(web_address(bind), 0.5):
            return True
    except OSError:
        return False


def read_ports(path: Path) -> dict[str, int] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet (it appears whole, by rename)


class Output:
    """The terminal, shared by the children's output threads: one whole line at a time."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """Write a line of serve's own."""
        self.write(f"{'serve':<{NAME_WIDTH}}| {text}")


def pump(name: str, source: IO[bytes], output: Output,
         seen: Callable[[str], None]) -> None:
    """Copy a child's output to the terminal, prefixed, until the child closes it."""
    for raw in iter(source.readline, b""):
        line = raw.decode("utf-8", "replace")
        seen(line)
        shown = prefixed(name, line)
        if shown is not None:
            output.write(shown)
    source.close()


class Command(BaseCommand):
    help = ("Start the web panel, the mail listeners, the Celery worker and beat as child "
            "processes; stop them all on Ctrl-C/SIGTERM or when one of them exits.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--web", default=os.environ.get("WEB_BIND", "127.0.0.1:8000"),
                            help="address:port for the web panel (WEB_BIND; default "
                                 "127.0.0.1:8000)")

    def handle(self, *args, **options) -> None:
        output = Output(sys.stdout)
        ports_file = Path(settings.MAILCORE_PORTS_FILE or settings.DATA_DIR / "serve-ports.json")
        ports_file.unlink(missing_ok=True)  # an earlier run's: wait for this run's
        procs = self._start(options["web"], ports_file)
        worker_ready = threading.Event()

        def seen(line: str) -> None:
            if WORKER_READY.search(line):
                worker_ready.set()

        threads = [threading.Thread(target=pump, args=(name, proc.stdout, output, seen),
                                    daemon=True) for name, proc in procs.items()]
        for thread in threads:
            thread.start()
        output.say("started " + ", ".join(f"{n} (pid {p.pid})" for n, p in procs.items()))
        stopping = False

        def stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        exited, announced = None, False
        while not stopping and exited is None:
            exited = next((n for n, p in procs.items() if p.poll() is not None), None)
            if not announced:
                ports = read_ports(ports_file)
                if ports and worker_ready.is_set() and listens(options["web"]):
                    output.write(banner(options["web"], settings.MAIL_BIND_ADDRESS, ports))
                    announced = True
            time.sleep(0.2)
        if exited:
            output.say(f"{exited} exited with code {procs[exited].returncode}; stopping")
        self._stop(procs)
        for thread in threads:
            thread.join(5)
        if exited:
            sys.exit(1)

    def _start(self, web: str, ports_file: Path) -> dict[str, subprocess.Popen]:
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        celery = [python, "-m", "celery", "-A", "panel"]
        children = {
            "web": [python, manage, "runserver", web, "--noreload"],
            "mailcore": [python, manage, "mailcore"],
            "worker": celery + ["worker", "--loglevel", "INFO", "--concurrency", "2"],
            "beat": celery + ["beat", "--loglevel", "INFO",
                              "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME],
        }
        # Unbuffered, so each line reaches the terminal as it is printed.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MAILCORE_PORTS_FILE": str(ports_file)}
        return {name: subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
                for name, cmd in children.items()}

    def _stop(self, procs: dict[str, subprocess.Popen]) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + settings.SHUTDOWN_GRACE + 10
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
