"""Debian's Rspamd for tests: a throwaway configuration on loopback high ports.

The configuration is docker-compose's (deploy/rspamd/local.d) with test overrides: the
scanner and the controller on 127.0.0.1 ports picked at start, DNS from the tests' loopback
server (tests/dns_server.py), statistics and greylisting in one Redis database of their
own, and the modules that only ask the internet (DNS blocklists, fuzzy hashes, ASN,
reputation) switched off: without outside DNS they would time out on every message and
push plain mail toward "soft reject".
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import redis

from tests.servers import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
RSPAMD = "/usr/bin/rspamd"
# The Redis database Rspamd's statistics go to in tests; it is emptied at start.
REDIS_DB = int(os.environ.get("RSPAMD_TEST_REDIS_DB", "15"))
# A short Public Suffix List: the whole list takes Rspamd half a minute to compile.
_TLDS = "com\nnet\norg\ntest\nexample\ninvalid\n"
_OFF = "enabled = false;\n"
_OFF_MODULES = ("rbl", "surbl", "asn", "fuzzy_check", "phishing", "reputation", "neural",
                "url_redirector", "mx_check", "rspamd_update", "history_redis", "emails")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


class RspamdServer:
    """Run rspamd in the foreground from a configuration under `root`; stop it on exit."""

    def __init__(self, root: Path, dns_address: str) -> None:
        if not Path(RSPAMD).exists():
            raise RuntimeError(f"{RSPAMD} is not installed: .ci/run installs Debian's rspamd")
        self.root = root
        self.dns_address = dns_address
        self.scanner_port = free_port()
        self.controller_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.dns: object = None  # the loopback DNS server it asks (the fixture sets it)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.scanner_port}"

    @property
    def controller_url(self) -> str:
        return f"http://127.0.0.1:{self.controller_port}"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "rspamd.log"

    def _configure(self) -> None:
        local, override = self.root / "local.d", self.root / "override.d"
        shutil.copytree(ROOT / "deploy" / "rspamd" / "local.d", local)
        override.mkdir()
        for name in ("db", "run", "log"):
            (self.root / name).mkdir()
        (self.root / "tlds.dat").write_text(_TLDS)
        files = {
            override / "worker-normal.inc":
                f'bind_socket = "127.0.0.1:{self.scanner_port}";\ncount = 1;\nmime = true;\n',
            override / "worker-controller.inc":
                f'bind_socket = "127.0.0.1:{self.controller_port}";\ncount = 1;\n'
                'secure_ip = "127.0.0.1";\nstatic_dir = "${WWWDIR}";\n',
            override / "worker-proxy.inc": _OFF,
            override / "worker-fuzzy.inc": _OFF,
            override / "redis.conf": f'servers = "127.0.0.1:6379";\ndb = "{REDIS_DB}";\n',
            override / "logging.inc":
                f'type = "file";\nfilename = "{self.log_file}";\nlevel = "info";\n',
            local / "options.inc":
                f'dns {{ nameserver = ["{self.dns_address}"]; timeout = 0.5s; '
                f'retransmits = 1; }}\nurl_tld = "{self.root / "tlds.dat"}";\n'
                f'local_addrs = [];\n',
        }
        files.update({override / f"{module}.conf": _OFF for module in _OFF_MODULES})
        for path, text in files.items():
            path.write_text(text)

    def start(self) -> RspamdServer:
        try:
            redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
        except redis.ConnectionError as exc:
            raise RuntimeError("Rspamd's statistics need Redis on 127.0.0.1:6379") from exc
        self._configure()
        variables = {"LOCAL_CONFDIR": self.root, "DBDIR": self.root / "db",
                     "RUNDIR": self.root / "run", "LOGDIR": self.root / "log"}
        command = [RSPAMD, "--no-fork", "--insecure", "--config", "/etc/rspamd/rspamd.conf"]
        command += [f"--var={name}={value}" for name, value in variables.items()]
        if os.geteuid() == 0:
            command += ["--user", "root", "--group", "root"]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                     stderr=open(self.root / "log" / "stderr", "wb"),
                                     start_new_session=True)
        wait_until(self._answers, "rspamd to answer /ping on both workers", timeout=120,
                   interval=0.2, details=self.tail)
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"rspamd exited with {self.proc.returncode}:{self.tail()}")
        try:
            return all(httpx.get(f"{url}/ping", timeout=1).text.strip() == "pong"
                       for url in (self.url, self.controller_url))
        except httpx.HTTPError:
            return False

    def tail(self) -> str:
        lines = []
        for path in (self.log_file, self.root / "log" / "stderr"):
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()[-30:]
        return "\n" + "\n".join(lines)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def forget_greylisting(self) -> None:
        """Forget the senders greylisting has seen (its triplets), so tests start afresh."""
        db = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        keys = list(db.scan_iter("rg*"))
        if keys:
            db.delete(*keys)

    def check(self, message: bytes, **headers: str) -> dict:
        """Ask the scanner about a message (a test's direct look, not mailcore's client)."""
        reply = httpx.post(f"{self.url}/checkv2", content=message, headers=headers, timeout=10)
        reply.raise_for_status()
        return reply.json()
