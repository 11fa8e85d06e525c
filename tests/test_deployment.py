"""The deployment files: docker-compose.yml, the Dockerfile, .ci/run and the README agree."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STANDARD_PORTS = {25, 587, 465, 110, 995, 143, 993}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_every_process_of_the_design():
    services = compose()["services"]
    assert set(services) >= {"postgres", "redis", "web", "mailcore", "worker", "beat"}
    assert "gunicorn panel.wsgi:application" in services["web"]["command"]
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
    for name in ("web", "mailcore", "worker", "beat"):
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


def test_the_dockerfile_installs_the_pinned_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.match(r"^[A-Za-z0-9_.\[\]-]+==[\w.]+$", line), f"unpinned: {line}"


def test_ci_runs_the_readme_test_command_then_postgres_and_redis():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    assert "\nmake test\n" in ci
    assert "DATABASE_URL=postgres://postgres@127.0.0.1:5432/test" in ci
    assert "CELERY_BROKER_URL=redis://127.0.0.1:6379" in ci
    assert "ruff check" in ci
