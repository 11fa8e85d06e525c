"""Interop: deploy/Caddyfile, the documented TLS proxy, in front of the panel.

Caddy runs the example config (its own local CA, loopback high ports, the panel's live
server as upstream) and curl talks to it as a browser would.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_program
from tests.panel_cast import *  # noqa: F403
from tests.servers import free_port, listens
from tests.waiting import wait_until

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
SITE_HOST = "mail.example.com"


@pytest.fixture
def proxy(live_server, settings, tmp_path: Path):
    """Caddy with deploy/Caddyfile on free loopback ports; the panel as docker-compose has it."""
    caddy = require_program("caddy")
    require_program("curl")
    settings.SITE_URL = f"https://{SITE_HOST}"
    settings.ALLOWED_HOSTS = [SITE_HOST]
    settings.CSRF_COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = True
    settings.TRUSTED_PROXY_HOPS = 1
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    http_port, https_port = free_port(), free_port()
    upstream = live_server.url.removeprefix("http://").replace("localhost", "127.0.0.1")
    config = (ROOT / "deploy" / "Caddyfile").read_text().replace("127.0.0.1:8000", upstream)
    assert upstream in config
    conf = tmp_path / "Caddyfile"
    conf.write_text(
        f"{{\n\thttp_port {http_port}\n\thttps_port {https_port}\n\tlocal_certs\n"
        f"\tskip_install_trust\n\tadmin off\n\tstorage file_system {tmp_path / 'caddy'}\n}}\n"
        + config)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path), "SITE_HOST": SITE_HOST}
    log = (tmp_path / "caddy.log").open("wb")
    proc = subprocess.Popen([caddy, "run", "--config", str(conf), "--adapter", "caddyfile"],
                            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "caddy.log").read_text()
            return listens(https_port) and listens(http_port)

        wait_until(up, "caddy to listen", interval=0.2)
        yield {"http": http_port, "https": https_port, "jar": tmp_path / "cookies"}
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def curl(proxy: dict, url: str, *args: str) -> tuple[int, str, str]:
    """Fetch a URL through the proxy; return the status, the headers and the body."""
    names = ["mail.example.com", "autoconfig.alice.test", "autoconfig.unknown.test"]
    resolve = [arg for name in names for port in (proxy["http"], proxy["https"])
               for arg in ("--resolve", f"{name}:{port}:127.0.0.1")]
    result = subprocess.run(
        ["curl", "-sk", "-D", "-", "-c", str(proxy["jar"]), "-b", str(proxy["jar"]),
         "--max-time", "20", *resolve, *args, url],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition("\n\n")  # text mode: CRLF reads as LF
    return int(head.split()[1]), head, body


def test_the_proxy_serves_the_site_over_https_with_secure_cookies(proxy) -> None:
    status, head, _ = curl(proxy, f"https://{SITE_HOST}:{proxy['https']}/accounts/login/")
    assert status == 200
    cookie = next(line for line in head.splitlines() if line.lower().startswith("set-cookie"))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    status, head, _ = curl(proxy, f"http://{SITE_HOST}:{proxy['http']}/accounts/login/")
    assert status in (301, 308) and f"Location: https://{SITE_HOST}" in head


def test_the_panel_knows_the_request_came_over_https_through_one_hop(proxy, settings) -> None:
    # Django accepts a form POSTed with an https Origin only if it sees the request as https.
    url = f"https://{SITE_HOST}:{proxy['https']}/accounts/login/"
    _, _, page = curl(proxy, url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = ["--data-urlencode", f"csrfmiddlewaretoken={token}", "--data-urlencode",
            "login=nobody@customers.test", "--data-urlencode", "password=wrong",
            "-H", f"Origin: https://{SITE_HOST}:{proxy['https']}", "-H", f"Referer: {url}"]
    status, _, body = curl(proxy, url, *form)
    assert status == 200 and "csrfmiddlewaretoken" in body  # the form again, with its error
    # Without trusted hops the proxy's X-Forwarded-Proto does not count, nor would a client's.
    settings.SECURE_PROXY_SSL_HEADER = None
    status, _, _ = curl(proxy, url, *form)
    assert status == 403


def test_the_proxy_passes_client_setup_hosts_and_the_panel_refuses_others(
        proxy, alice_domain) -> None:
    status, _, body = curl(proxy, f"http://autoconfig.alice.test:{proxy['http']}"
                                  "/mail/config-v1.1.xml")
    assert status == 200 and "<domain>alice.test</domain>" in body
    status, _, _ = curl(proxy, f"http://autoconfig.unknown.test:{proxy['http']}"
                               "/mail/config-v1.1.xml")
    assert status == 400
