"""Listening ports: "auto" lets the system pick them, and MAILCORE_PORTS_FILE reports them."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from mailcore.listeners import report_ports
from panel.settings import ANY_PORT, env_port
from tests.servers import NAMES, ServerProcess, listens
from tests.waiting import wait_until

GREETINGS = {"smtp": "220 ", "submission": "220 ", "pop3": "+OK", "imap": "* OK"}
IMPLICIT_TLS = {"submissions": "220 ", "pop3s": "+OK", "imaps": "* OK"}


def greeting(proc: ServerProcess, name: str) -> str:
    """Return the first line a listener sends (after the TLS handshake, on implicit TLS)."""
    sock: socket.socket = socket.create_connection(("127.0.0.1", proc.port(name)), 10)
    if name in IMPLICIT_TLS:
        # The process made its own certificate, under its own DATA_DIR.
        context = ssl.create_default_context(cafile=proc.data_dir / "tls" / "cert.pem")
        sock = context.wrap_socket(sock, server_hostname="localhost")
    with sock, sock.makefile("rb") as reader:
        return reader.readline().decode()


def assert_every_listener_greets(proc: ServerProcess) -> None:
    for name, expected in {**GREETINGS, **IMPLICIT_TLS}.items():
        assert greeting(proc, name).startswith(expected), name


def test_mailcore_reports_a_port_for_every_listener_once_all_are_bound(server_process):
    assert sorted(server_process.ports) == sorted(NAMES)
    assert len(set(server_process.ports.values())) == len(NAMES)
    assert_every_listener_greets(server_process)


def test_a_disabled_listener_is_not_reported(transactional_db, tmp_path: Path):
    proc = ServerProcess(tmp_path / "mailcore", {"IMAPS_PORT": "0", "POP3_PORT": "0"}).start()
    try:
        assert sorted(proc.ports) == sorted(set(NAMES) - {"imaps", "pop3"})
    finally:
        assert proc.terminate() == 0


def test_the_supervisor_reports_the_ports_its_workers_serve(transactional_db, tmp_path: Path):
    proc = ServerProcess(tmp_path / "mailcore", {"MAILCORE_PROCESSES": "2"}).start()
    try:
        assert sorted(proc.ports) == sorted(NAMES)
        # Reported once bound: a connection made before the workers accept waits for them.
        assert_every_listener_greets(proc)
    finally:
        assert proc.terminate() == 0


def test_a_restart_after_kill_9_listens_on_the_first_runs_ports(server_process,
                                                                tmp_path: Path):
    first = dict(server_process.ports)
    server_process.kill()
    wait_until(lambda: not listens(first["smtp"]), "the killed process's ports to close")
    restarted = ServerProcess(tmp_path / "mailcore", ports=first).start()
    try:
        assert restarted.ports == first
        assert_every_listener_greets(restarted)
    finally:
        assert restarted.terminate() == 0


def test_the_ports_file_is_replaced_whole(tmp_path: Path):
    path = tmp_path / "ports.json"
    path.write_text("stale, from an earlier run")
    report_ports(str(path), {"smtp": 2525, "imap": 40143})
    assert json.loads(path.read_text()) == {"imap": 40143, "smtp": 2525}
    assert [p.name for p in tmp_path.iterdir()] == ["ports.json"]  # no temporary left


@pytest.mark.parametrize(("value", "port"), [("auto", ANY_PORT), (" AUTO ", ANY_PORT),
                                             ("0", 0), ("2525", 2525), ("", 2110)])
def test_a_port_setting_is_a_number_0_or_auto(monkeypatch, value: str, port: int):
    monkeypatch.setenv("POP3_PORT", value)
    assert env_port("POP3_PORT", 2110) == port


@pytest.mark.parametrize("value", ["-1", "65536", "any", "25x"])
def test_a_port_setting_out_of_range_or_not_a_number_is_refused(monkeypatch, value: str):
    monkeypatch.setenv("POP3_PORT", value)
    with pytest.raises(ImproperlyConfigured, match="POP3_PORT"):
        env_port("POP3_PORT", 2110)
