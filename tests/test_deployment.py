"""The deployment files: docker-compose.yml, the Dockerfile, .ci/run and the README agree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from mailcore.tls import certificate_paths
from tests.conftest import require_program

ROOT = Path(__file__).resolve().parent.parent
STANDARD_PORTS = {25, 587, 465, 110, 995, 143, 993}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


APP_SERVICES = ("web", "mailcore", "worker", "beat")
TEST_TOOLS = ("pytest", "playwright", "ruff")


def requirement_names(path: Path) -> set[str]:
    return {re.split(r"[=\[]", line)[0].lower()
            for line in path.read_text().splitlines() if line and not line.startswith(("#", "-"))}


def test_compose_runs_every_process_of_the_design():
    services = compose()["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "web", "mailcore", "worker", "beat"}
    assert services["web"]["command"][:2] == ["gunicorn", "panel.wsgi:application"]
    assert services["mailcore"]["command"] == ["python", "manage.py", "mailcore"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "panel", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "panel", "beat"]


def test_compose_maps_the_standard_mail_ports_to_the_listeners():
    services = compose()["services"]
    mapped = {int(p.split(":")[0]) for p in services["mailcore"]["ports"]}
    assert mapped == STANDARD_PORTS
    env = services["mailcore"]["environment"]
    listener_ports = {int(env[k]) for k in env if k.endswith("_PORT")}
    assert listener_ports == STANDARD_PORTS


def test_compose_points_every_app_service_at_postgres_and_redis():
    services = compose()["services"]
    for name in (*APP_SERVICES, "migrate"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379")
        assert env["DEBUG"] == "0"
        assert env["PLAINTEXT_AUTH"] == "never"
        assert services[name]["build"] == "."


def test_compose_settings_are_ones_the_project_reads():
    settings_text = (ROOT / "panel" / "settings.py").read_text()
    env = compose()["services"]["mailcore"]["environment"]
    for name in env:
        assert f'"{name}"' in settings_text, f"{name} is not read by panel/settings.py"


def test_the_requirements_are_pinned_and_the_runtime_has_no_test_tools():
    for name in ("requirements.txt", "requirements-runtime.txt"):
        for line in (ROOT / name).read_text().splitlines():
            if line and not line.startswith(("#", "-r ")):
                assert re.match(r"^[A-Za-z0-9_.\[\]-]+==[\w.]+$", line), f"unpinned: {line}"
    runtime = requirement_names(ROOT / "requirements-runtime.txt")
    assert not runtime & {"pytest", "pytest-django", "playwright", "ruff", "pyyaml"}
    assert {"django", "gunicorn", "celery", "psycopg"} <= runtime
    # `make` installs the runtime and the test tools on top.
    assert "-r requirements-runtime.txt" in (ROOT / "requirements.txt").read_text().splitlines()
    assert {"pytest", "playwright", "ruff"} <= requirement_names(ROOT / "requirements.txt")


def test_the_image_is_built_in_stages_without_test_tools_and_runs_as_a_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in dockerfile.splitlines()
                    if line and not line.startswith((" ", "#"))]
    froms = [rest for verb, rest in instructions if verb == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    runtime = dockerfile[dockerfile.rindex("\nFROM "):]
    assert "pip install --no-cache-dir -r /tmp/requirements-runtime.txt" in dockerfile
    assert "requirements.txt" not in dockerfile.replace("requirements-runtime.txt", "")
    assert "COPY --from=build /venv /venv" in runtime and "pip install" not in runtime
    users = [rest.strip() for verb, rest in instructions if verb == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert dockerfile.index("USER ") > dockerfile.rindex("\nFROM ")
    assert "HEALTHCHECK" in runtime and '"healthcheck", "web"' in runtime
    commands = "\n".join(line for line in dockerfile.splitlines() if not line.startswith("#"))
    for tool in TEST_TOOLS:
        assert tool not in commands.lower()


def test_the_build_context_leaves_out_secrets_and_local_state():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text()
               .splitlines() if line.strip() and not line.startswith("#")}
    assert {".env", "certs", "var", ".venv", ".git", "tests", ".pytest_cache", "*.pem"} <= ignored


def test_migrations_run_once_before_the_app_services():
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no"
    for name in APP_SERVICES:
        assert "migrate" not in str(services[name]["command"]), name
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name


def test_web_mailcore_and_worker_have_health_checks():
    services = compose()["services"]
    assert services["web"]["healthcheck"]["test"] == [
        "CMD", "python", "manage.py", "healthcheck", "web"]
    assert services["mailcore"]["healthcheck"]["test"] == [
        "CMD", "python", "manage.py", "healthcheck", "mailcore"]
    worker = services["worker"]["healthcheck"]["test"]
    assert worker[0] == "CMD-SHELL" and "celery -A panel inspect ping" in worker[1]
    assert "celery@$$HOSTNAME" in worker[1]  # compose's escape: the container's own name
    for name in ("web", "mailcore", "worker", "postgres", "redis"):
        assert not services[name]["healthcheck"].get("disable"), name


def test_the_web_port_is_published_on_loopback_for_the_tls_proxy():
    services = compose()["services"]
    assert services["web"]["ports"] == ["127.0.0.1:8000:8000"]
    env = services["web"]["environment"]
    assert env["TRUSTED_PROXY_HOPS"] == "1"
    assert env["SITE_URL"].startswith("${SITE_URL:?")
    assert "ALLOWED_HOSTS" not in env and "CSRF_TRUSTED_ORIGINS" not in env
    # Inside the container the listeners bind every interface (development binds loopback).
    assert services["mailcore"]["environment"]["MAIL_BIND_ADDRESS"] == "0.0.0.0"
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy 127.0.0.1:8000" in caddyfile


def test_ci_runs_the_readme_test_command_then_postgres_and_redis():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    assert "\nmake test\n" in ci
    assert "DATABASE_URL=postgres://postgres@127.0.0.1:5432/test" in ci
    assert "CELERY_BROKER_URL=redis://127.0.0.1:6379" in ci
    assert "ruff check" in ci


# deploy/haproxy.cfg: several nodes behind HAProxy (tests/test_two_nodes.py runs it) -------

MAIL_SECTIONS = {"smtp": 25, "submission": 587, "submissions": 465, "pop3": 110,
                 "pop3s": 995, "imap": 143, "imaps": 993}


def haproxy_sections() -> dict[str, list[str]]:
    """Return deploy/haproxy.cfg's sections ("listen smtp", ...) and their lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (ROOT / "deploy" / "haproxy.cfg").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if not line[0].isspace():
            current = sections.setdefault(line.strip(), [])
        else:
            current.append(line.strip())
    return sections


def test_haproxy_sends_proxy_v2_to_each_mail_node_and_checks_its_greeting():
    sections = haproxy_sections()
    defaults = sections["defaults"]
    assert "mode tcp" in defaults
    assert any(line.startswith("default-server") and "send-proxy-v2" in line
               and "check-send-proxy" in line for line in defaults)
    for name, port in MAIL_SECTIONS.items():
        lines = sections[f"listen {name}"]
        assert f"bind :{port}" in lines, name
        assert "option tcp-check" in lines and any(
            line.startswith("tcp-check expect rstring ^") for line in lines), name
        servers = [line for line in lines if line.startswith("server ")]
        assert len(servers) >= 2 and all(line.endswith(" check") or " check " in line
                                         for line in servers), name


def test_haproxy_balances_the_web_nodes_over_http_with_their_health_check():
    sections = haproxy_sections()
    front, back = sections["frontend web"], sections["backend web_nodes"]
    assert "mode http" in front and "option forwardfor" in front
    assert "http-request del-header X-Forwarded-Proto" in front
    assert "mode http" in back and "option httpchk" in back
    assert any("uri /healthz" in line for line in back)
    assert len([line for line in back if line.startswith("server ")]) >= 2


def test_haproxy_accepts_the_configuration(tmp_path):
    haproxy = require_program("haproxy")
    cert, key = certificate_paths()
    pem = tmp_path / "site.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    config = tmp_path / "haproxy.cfg"
    config.write_text((ROOT / "deploy" / "haproxy.cfg").read_text().replace(
        "/etc/haproxy/certs/", str(pem)))
    checked = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
