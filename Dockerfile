# One image for web, mailcore, worker and beat; docker-compose.yml picks the command.
# Two stages: the first installs the runtime packages (requirements-runtime.txt: no pytest,
# playwright or ruff) into a virtualenv and collects the static files; the second holds only
# that virtualenv and the code, and runs as an unprivileged user. .dockerignore keeps .env,
# certs/, var/ and .git out of the build context, so out of every layer.

FROM python:3.11-slim-bookworm AS build
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
COPY requirements-runtime.txt /tmp/
RUN /venv/bin/pip install --no-cache-dir -r /tmp/requirements-runtime.txt
COPY . /app
WORKDIR /app
# collectstatic reads the settings, which want production's: throwaway values, a throwaway
# data folder, none of which reaches the next stage.
RUN DEBUG=0 SECRET_KEY=collectstatic-only SITE_URL=http://build.invalid DATA_DIR=/tmp/build \
    /venv/bin/python manage.py collectstatic --noinput

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH DATA_DIR=/data
# A fixed uid, so a bind-mounted data folder can be given to it (chown 10001).
RUN groupadd --system --gid 10001 mailhost \
    && useradd --system --uid 10001 --gid mailhost --home-dir /app --shell /usr/sbin/nologin mailhost \
    && install -d -o mailhost -g mailhost -m 0700 /data
COPY --from=build /venv /venv
COPY --from=build --chown=root:root /app /app
WORKDIR /app
USER mailhost
# A new named volume takes /data's owner and mode from the image.
VOLUME ["/data"]
EXPOSE 8000 25 587 465 110 995 143 993
# The web's check; docker-compose.yml gives mailcore and the worker their own.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "manage.py", "healthcheck", "web"]
