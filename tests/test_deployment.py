"""The deployment files: docker-compose.yml, the Dockerfile, .ci/run and the README agree."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

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


def test_compose_runs_rspamd_and_points_mailcore_and_the_worker_at_it():
    services = compose()["services"]
    rspamd = services["rspamd"]
    assert rspamd["image"].startswith("rspamd/rspamd:")
    assert "ports" not in rspamd  # scanner and controller stay on the compose network
    mounted = {v.split(":")[0]: v.split(":")[1] for v in rspamd["volumes"]}
    for folder in ("local.d", "override.d"):
        assert mounted[f"./deploy/rspamd/{folder}"] == f"/etc/rspamd/{folder}"
        assert (ROOT / "deploy" / "rspamd" / folder).is_dir()
    for name in ("mailcore", "worker"):
        env = services[name]["environment"]
        assert env["RSPAMD_URL"] == "http://rspamd:11333"
        assert env["RSPAMD_CONTROLLER_URL"] == "http://rspamd:11334"
    redis_conf = (ROOT / "deploy" / "rspamd" / "local.d" / "redis.conf").read_text()
    assert 'servers = "redis:6379"' in redis_conf


def test_compose_keeps_blobs_in_its_s3_service_with_the_bucket_made_first():
    services = compose()["services"]
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")  # pinned
    assert services["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    bucket = services["bucket"]
    assert bucket["command"] == ["python", "manage.py", "blobs", "init"]
    assert bucket["restart"] == "no"
    assert bucket["depends_on"] == {"minio": {"condition": "service_healthy"}}
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["BLOB_STORE"].startswith("s3://"), name
        assert env["BLOB_S3_ENDPOINT"] == "http://minio:9000", name
        assert env["AWS_ACCESS_KEY_ID"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
        depends = services[name]["depends_on"]
        assert depends["bucket"] == {"condition": "service_completed_successfully"}, name
