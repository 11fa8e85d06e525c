"""Run the whole system on one machine: web, mailcore, Celery worker and beat."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Start the web panel, the mail listeners, the Celery worker and beat as child "
            "processes; stop them all on Ctrl-C/SIGTERM or when one of them exits.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--web", default=os.environ.get("WEB_BIND", "127.0.0.1:8000"),
                            help="address:port for the web panel (WEB_BIND; default "
                                 "127.0.0.1:8000)")

    def handle(self, *args, **options) -> None:
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        celery = [python, "-m", "celery", "-A", "panel"]
        children = {
            "web": [python, manage, "runserver", options["web"], "--noreload"],
            "mailcore": [python, manage, "mailcore"],
            "worker": celery + ["worker", "--loglevel", "INFO", "--concurrency", "2"],
            "beat": celery + ["beat", "--loglevel", "INFO",
                              "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME],
        }
        procs = {name: subprocess.Popen(cmd, cwd=settings.BASE_DIR)
                 for name, cmd in children.items()}
        self.stdout.write(f"started {', '.join(f'{n} (pid {p.pid})' for n, p in procs.items())}")
        stopping = False

        def stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        exited = None
        while not stopping and exited is None:
            exited = next((n for n, p in procs.items() if p.poll() is not None), None)
            time.sleep(0.5)
        if exited:
            self.stderr.write(f"{exited} exited with code {procs[exited].returncode}; stopping")
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + settings.SHUTDOWN_GRACE + 10
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if exited:
            sys.exit(1)
