"""`manage.py serve` (`make run`): every child's lines prefixed with its name, known noise
left out, and one banner once everything listens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from mailcore.management.commands.serve import banner, prefixed, web_url
from tests.servers import NAMES, ROOT, database_url, free_port
from tests.waiting import WAIT, wait_until

pytestmark = pytest.mark.timeout(240)


def test_a_childs_line_is_prefixed_with_its_name() -> None:
    assert prefixed("web", "Starting development server\n") == (
        "web     | Starting development server")
    assert prefixed("mailcore", "ready") == "mailcore| ready"


@pytest.mark.parametrize("line", [
    "[2026-12-02 10:00:00,000: WARNING/MainProcess] No hostname was supplied. "
    "Reverting to default 'localhost'",
    '[02/Dec/2026 10:00:00] "GET /favicon.ico HTTP/1.1" 404 2345',
])
def test_known_noise_is_left_out(line: str) -> None:
    assert prefixed("worker", line) is None


def test_the_banner_names_the_pages_and_every_mail_port() -> None:
    ports = {name: 2000 + n for n, name in enumerate(NAMES)}
    text = banner("0.0.0.0:8000", "127.0.0.1", ports)
    assert "http://127.0.0.1:8000/webmail/" in text and "http://127.0.0.1:8000/admin/" in text
    for port in ports.values():
        assert f"127.0.0.1:{port}" in text
    assert web_url("[::1]:8080") == "http://[::1]:8080/"


class _Serve:
    def __init__(self, tmp_path: Path) -> None:
        self.web = f"127.0.0.1:{free_port()}"
        self.log = tmp_path / "serve.log"
        env = {**os.environ, "DEBUG": "1", "DATABASE_URL": database_url(),
               "DATA_DIR": str(tmp_path / "data"), "BLOB_DIR": str(settings.BLOB_DIR),
               "SECRET_KEY": settings.SECRET_KEY, "SHUTDOWN_GRACE": "5",
               "MAILCORE_PORTS_FILE": str(tmp_path / "ports.json"),
               **{f"{name.upper()}_PORT": "auto" for name in NAMES}}
        with self.log.open("wb") as out:
            # A session of its own, as a terminal's foreground group: Ctrl-C reaches all.
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "serve", "--web", self.web],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"serve exited: {self.text()}")
        return "Ready. Ctrl-C stops everything." in self.text()

    def ctrl_c(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(60)


def test_serve_prefixes_its_children_quietly_and_says_once_when_ready(
        transactional_db, tmp_path: Path) -> None:
    serve = _Serve(tmp_path)
    try:
        # Four Django processes start side by side: slower than one step on a busy machine.
        wait_until(serve.ready, "the ready banner", timeout=3 * WAIT, details=serve.text)
        with pytest.raises(urllib.error.HTTPError) as redirected:
            # The redirect is not followed: its answer is what the browser gets.
            opener = urllib.request.build_opener(_NoRedirect)
            opener.open(f"http://{serve.web}/favicon.ico", timeout=10)
        assert redirected.value.code == 301
        # The web server logs the request after answering it: wait for its line.
        wait_until(lambda: 'favicon.ico HTTP/1.1" 301' in serve.text(), "the request's log line",
                   details=serve.text)
    finally:
        code = serve.ctrl_c()
    text = serve.text()
    assert code == 0, text
    lines = text.splitlines()
    for name in ("web", "mailcore", "worker", "beat"):
        assert any(line.startswith(f"{name:<8}| ") for line in lines), name
    assert text.count("Ready. Ctrl-C stops everything.") == 1
    assert f"http://{serve.web}/webmail/" in text
    assert "No hostname was supplied" not in text
    assert "favicon.ico HTTP/1.1\" 301" in text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
