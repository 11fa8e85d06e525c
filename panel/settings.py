"""Settings for the web panel, mailcore and the worker, all read from the environment.

With DEBUG=1 and nothing else set (what `make run` and the tests do), everything runs on one
machine: SQLite (WAL) and blobs under DATA_DIR, Celery on kombu's filesystem transport,
self-signed TLS, mail ports above 1024, every listener on 127.0.0.1. Without DEBUG the
settings are production's: SITE_URL and SECRET_KEY must be given, and SITE_URL gives the
web tier its host, origin, the links in its mail and its cookie security.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _number(name: str, value: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {what}, not {value!r}") from None


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(_number(name, value, int)) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(_number(name, value, float)) if value else default


# A listener port the system picks when mailcore binds (the setting "auto"): mailcore's
# listeners take any negative port so.
ANY_PORT = -1


def env_port(name: str, default: int) -> int:
    """Return a listener port: a number (0 disables the listener) or "auto" for any free one.

    "auto" is for tests and tools that start mailcore beside others: MAILCORE_PORTS_FILE
    then tells which port each listener got.
    """
    value = os.environ.get(name, "").strip().lower()
    if value == "auto":
        return ANY_PORT
    port = env_int(name, default)
    if not 0 <= port <= 65535:
        raise ImproperlyConfigured(f"{name} must be a port (0 to disable) or 'auto', not {port}")
    return port


def env_processes(name: str, default: int) -> int:
    """Return a process count: a positive number, or "auto" for the CPUs this process may use."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value == "auto":
        # The CPUs this process may run on (a container's cpuset), not all the machine's.
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return len(cpus) if cpus else os.cpu_count() or 1
    count = _number(name, value, int)
    if count < 1:
        raise ImproperlyConfigured(f"{name} must be a positive number or 'auto', not {value!r}")
    return count


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """Return a yes/no setting; a word that is neither (a typo such as "flase") is an error."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1, true, yes, on or 0, false, no, off, not {value!r}")


def private_path(path: Path, mode: int) -> None:
    """Narrow a file or folder of ours to `mode` (owner only) if it is any wider."""
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        path.chmod(mode)


# DATA_DIR holds the database (password hashes, sessions, DKIM private keys), the secret key
# and TLS keys: only its owner may enter it, whatever the umask.
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
private_path(DATA_DIR, 0o700)


DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    """Return SECRET_KEY from the environment, or (development) one kept in DATA_DIR."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set SECRET_KEY to a long random string (for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), "
            "or DEBUG=1 for development.")
    path = DATA_DIR / "secret_key"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(secrets.token_urlsafe(50))
        tmp.chmod(0o600)
        os.replace(tmp, path)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

# The web tier: one public URL ----------------------------------------------------------------


def _site_url() -> str:
    """Return SITE_URL as an origin ("https://mail.example.com"), or "" in development."""
    for replaced in ("ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS"):
        if os.environ.get(replaced):
            raise ImproperlyConfigured(
                f"{replaced} is no longer read: set SITE_URL (e.g. https://mail.example.com) "
                "and the hosts, origins and links follow from it.")
    value = os.environ.get("SITE_URL", "").strip()
    if not value:
        if DEBUG:
            return ""
        raise ImproperlyConfigured(
            "Set SITE_URL to the panel's public address, e.g. SITE_URL=https://mail.example.com "
            "(or DEBUG=1 for development).")
    parts = urlsplit(value)
    if (parts.scheme not in ("http", "https") or not parts.hostname
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username):
        raise ImproperlyConfigured(
            f"SITE_URL must be a scheme and host such as https://mail.example.com, "
            f"not {value!r}")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


# Links in the panel's mail are built from SITE_URL, never from a request's Host header. With
# DEBUG and no SITE_URL, Django answers only localhost, 127.0.0.1 and [::1].
SITE_URL = _site_url()
SITE_HTTPS = SITE_URL.startswith("https://")
ALLOWED_HOSTS = [urlsplit(SITE_URL).hostname] if SITE_URL else []
CSRF_TRUSTED_ORIGINS = [SITE_URL] if SITE_URL else []
# autoconfig.<domain> and autodiscover.<domain> of hosted domains are answered too, by
# panel.hosts before Django's host check, and serve nothing but mail-client setup.
CLIENT_SETUP_HOSTS = ("autoconfig", "autodiscover")

# Cookies: never readable by scripts (the webmail's script takes the CSRF token from the
# form), sent on top-level navigation only, and only over TLS when the site is https.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = SITE_HTTPS
CSRF_COOKIE_SECURE = SITE_HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600) if SITE_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SITE_HTTPS
# The container's health check asks gunicorn directly, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# HSTS preload is a promise for a whole registrable domain and its every subdomain, made
# by submitting it to browsers' lists: the owner of the domain decides, not this panel.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "mailcore",
    # Panel accounts (django-allauth): sign-up, email verification, TOTP 2FA.
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "panel.accounts",
]

MIDDLEWARE = [
    # First: answers autoconfig./autodiscover. hosts of hosted domains before the host check.
    "panel.hosts.ClientSetupHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Panel accounts: allauth's flows, and staff sent to 2FA setup when it is required.
    "allauth.account.middleware.AccountMiddleware",
    "panel.accounts.middleware.StaffTwoFactorMiddleware",
]

if not DEBUG:
    # Production serves its collected static files itself (gunicorn has no static handler).
    MIDDLEWARE.insert(2, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "panel.urls"
WSGI_APPLICATION = "panel.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "panel.context.development",
            ],
            "libraries": {"webmail_list": "panel.webmail.listtags"},
        },
    },
]

# Database -------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=None)}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the single writer; IMMEDIATE avoids lock-upgrade
    # deadlocks between writers; synchronous=FULL makes a commit survive power loss.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Tests share one file with servers running in other threads and processes.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
    # The file is made here, owner-only: SQLite would create it (and its -wal and -shm files,
    # which copy its mode) readable by all under the usual umask.
    _db = Path(str(DATABASES["default"]["NAME"]))
    if _db.parent.is_dir() and _db.name not in ("", ":memory:"):
        os.close(os.open(_db, os.O_CREAT | os.O_WRONLY, 0o600))
        for _file in (_db, _db.with_name(_db.name + "-wal"), _db.with_name(_db.name + "-shm")):
            if _file.exists():
                private_path(_file, 0o600)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: shared by every process when Redis is configured (login throttle counters; room
# for many, as a full cache would evict them).
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL}}
elif env_processes("MAILCORE_PROCESSES", 1) > 1:
    # mailcore's workers count failed logins together (else each allows AUTH_MAX_FAILURES).
    # Its add and incr are atomic across processes (login throttle counters).
    CACHES = {"default": {"BACKEND": "mailcore.filecache.LockedFileCache",
                          "LOCATION": str(DATA_DIR / "cache"),
                          "OPTIONS": {"MAX_ENTRIES": 100_000}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                          "OPTIONS": {"MAX_ENTRIES": 100_000}}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
                    if not DEBUG else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Celery -----------------------------------------------------------------------------------

BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "panel.broker:Transport"  # atomic publishing (panel/broker.py)
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # The transport polls its folder; the default (1 s) would cap a worker at one
        # task per second.
        "polling_interval": 0.05,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep-outbound-queue": {
        "task": "mailcore.tasks.sweep_outbound",
        "schedule": 30.0,
    },
    "collect-orphan-blobs": {
        "task": "mailcore.tasks.collect_orphan_blobs",
        "schedule": 3600.0,
    },
    "expire-domain-claims": {
        "task": "mailcore.tasks.expire_domain_claims",
        "schedule": 3600.0,
    },
    "prune-refusals": {
        "task": "mailcore.tasks.prune_refusals",
        "schedule": 3600.0,
    },
}

# Mail -------------------------------------------------------------------------------------

MAIL_HOSTNAME = env_str("MAIL_HOSTNAME", socket.getfqdn() or "localhost")
BLOB_DIR = Path(env_str("BLOB_DIR", str(DATA_DIR / "blobs")))
# Where raw messages live: "" or "files" (files under BLOB_DIR, the embedded default) or
# "s3://bucket/prefix" on S3-compatible object storage, through boto3. Its endpoint and
# region come from BLOB_S3_ENDPOINT and BLOB_S3_REGION, its credentials from
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
BLOB_STORE = env_str("BLOB_STORE", "")
BLOB_S3_ENDPOINT = env_str("BLOB_S3_ENDPOINT", "")
BLOB_S3_REGION = env_str("BLOB_S3_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
# Given here or left to boto3's other sources (a profile, an instance role) when unset.
BLOB_S3_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID", "")
BLOB_S3_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY", "")
# "path" (bucket in the URL's path: MinIO, Garage, rclone) or "virtual" (in the host name).
BLOB_S3_ADDRESSING = env_str("BLOB_S3_ADDRESSING", "path")
# Messages larger than one part go up as a multipart upload, one part at a time.
BLOB_S3_PART_SIZE = max(env_int("BLOB_S3_PART_SIZE", 8 * 1024 * 1024), 5 * 1024 * 1024)
# A local read cache of object-store blobs (bytes on disk; 0 turns it off), least recently
# read evicted first.
BLOB_CACHE_BYTES = env_int("BLOB_CACHE_BYTES", 0)
BLOB_CACHE_DIR = Path(env_str("BLOB_CACHE_DIR", str(DATA_DIR / "blob-cache")))
TLS_CERT_FILE = env_str("TLS_CERT_FILE", "")
TLS_KEY_FILE = env_str("TLS_KEY_FILE", "")
TLS_DIR = DATA_DIR / "tls"

# Development listens on loopback only; production says where to listen (docker-compose).
MAIL_BIND_ADDRESS = env_str("MAIL_BIND_ADDRESS", "127.0.0.1")
SMTP_PORT = env_port("SMTP_PORT", 2525)
SUBMISSION_PORT = env_port("SUBMISSION_PORT", 2587)
SUBMISSIONS_PORT = env_port("SUBMISSIONS_PORT", 2465)
POP3_PORT = env_port("POP3_PORT", 2110)
POP3S_PORT = env_port("POP3S_PORT", 2995)
IMAP_PORT = env_port("IMAP_PORT", 2143)
IMAPS_PORT = env_port("IMAPS_PORT", 2993)
# Once every listener is bound, mailcore writes {listener name: port} as JSON to this file
# (replacing it whole), for whoever started it to learn the "auto" ports and that it listens.
MAILCORE_PORTS_FILE = env_str("MAILCORE_PORTS_FILE", "")

MESSAGE_SIZE_LIMIT = env_int("MESSAGE_SIZE_LIMIT", 50 * 1024 * 1024)
DEFAULT_QUOTA = env_int("DEFAULT_QUOTA", 2 * 1024 * 1024 * 1024)
# Days a customer's unproven claim on a domain name lasts before the worker drops it.
DOMAIN_CLAIM_DAYS = env_int("DOMAIN_CLAIM_DAYS", 7)
SMTP_TIMEOUT = env_float("SMTP_TIMEOUT", 300)
SMTP_MAX_RECIPIENTS = env_int("SMTP_MAX_RECIPIENTS", 100)
SMTP_MAX_BAD_COMMANDS = env_int("SMTP_MAX_BAD_COMMANDS", 10)
SMTP_MAX_RECEIVED_HEADERS = env_int("SMTP_MAX_RECEIVED_HEADERS", 50)
POP3_TIMEOUT = env_float("POP3_TIMEOUT", 600)
# IMAP: the autologout timer (RFC 9051 section 5.4: at least 30 minutes once logged in),
# a shorter one before login, a longer one while IDLE, and how long a client that stops
# reading our output may hold a session.
IMAP_TIMEOUT = env_float("IMAP_TIMEOUT", 1800)
IMAP_PREAUTH_TIMEOUT = env_float("IMAP_PREAUTH_TIMEOUT", 120)
IMAP_IDLE_TIMEOUT = env_float("IMAP_IDLE_TIMEOUT", 3600)
IMAP_WRITE_TIMEOUT = env_float("IMAP_WRITE_TIMEOUT", 300)
# Seconds an expunged message stays readable by sessions not yet told of the expunge.
# NOTIFY (RFC 5465): past this many folders with message events, NOTIFICATIONOVERFLOW.
IMAP_NOTIFY_MAX_MAILBOXES = env_int("IMAP_NOTIFY_MAX_MAILBOXES", 1000)
IMAP_EXPUNGED_KEEP = env_float("IMAP_EXPUNGED_KEEP", 3600)
IMAP_MAX_LINE = env_int("IMAP_MAX_LINE", 64 * 1024)  # one command line, literals aside
IMAP_MAX_LITERAL = env_int("IMAP_MAX_LITERAL", 64 * 1024)  # any literal but APPEND's
IMAP_MAX_COMMAND = env_int("IMAP_MAX_COMMAND", 2 * MESSAGE_SIZE_LIMIT)  # lines + literals
SHUTDOWN_GRACE = env_float("SHUTDOWN_GRACE", 10)
MAILCORE_DB_THREADS = env_int("MAILCORE_DB_THREADS", 8)  # per mailcore process
# Worker processes `manage.py mailcore` runs on the same listeners ("auto": one per CPU).
# One by default: the embedded default stays one small process (a worker adds some 30 MB
# of its own, more by RSS, and MAILCORE_DB_THREADS connections); a busy host sets "auto".
MAILCORE_PROCESSES = env_processes("MAILCORE_PROCESSES", 1)
MAILCORE_CHANGE_POLL = env_float("MAILCORE_CHANGE_POLL", 0.5)
# With REDIS_URL, changes are also published on a channel (by default named after the
# database, so installations sharing a Redis stay apart); while mailcore's subscription is
# up, the poll above is only a backstop for lost messages and runs this often instead.
MAILCORE_CHANGE_CHANNEL = env_str("MAILCORE_CHANGE_CHANNEL", "")
MAILCORE_CHANGE_POLL_SUBSCRIBED = env_float("MAILCORE_CHANGE_POLL_SUBSCRIBED", 5.0)

# "never": passwords only over TLS; "loopback": plaintext allowed from 127.0.0.1/::1
# (development); "always": plaintext anywhere (only behind a TLS-terminating proxy).
PLAINTEXT_AUTH = env_str("PLAINTEXT_AUTH", "loopback")
# Where the real client address comes from when proxies sit in front. Mail listeners accept
# a PROXY protocol header (v1 or v2) only from these addresses or networks ("10.0.0.0/8,
# 127.0.0.1"); the web trusts this many X-Forwarded-For / X-Forwarded-Proto hops, added by
# its own reverse proxies (0: the socket's address, as with no proxy).
TRUSTED_PROXIES = [p.strip() for p in env_str("TRUSTED_PROXIES", "").split(",") if p.strip()]
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
# Login throttle (mailcore/ratelimit.py), for mail and web logins alike: a failure's delay
# doubles from AUTH_FAILURE_DELAY up to AUTH_FAILURE_DELAY_MAX (per source address and per
# account); a source address with AUTH_MAX_FAILURES failures within AUTH_FAILURE_WINDOW
# seconds is refused until the window ends. Never an account lock-out.
AUTH_FAILURE_DELAY = env_float("AUTH_FAILURE_DELAY", 2.0)
AUTH_FAILURE_DELAY_MAX = env_float("AUTH_FAILURE_DELAY_MAX", 15.0)
AUTH_MAX_FAILURES = env_int("AUTH_MAX_FAILURES", 10)
AUTH_FAILURE_WINDOW = env_int("AUTH_FAILURE_WINDOW", 900)
AUTH_CACHE_SECONDS = env_int("AUTH_CACHE_SECONDS", 300)
ARGON2_TIME_COST = env_int("ARGON2_TIME_COST", 2)
ARGON2_MEMORY_COST = env_int("ARGON2_MEMORY_COST", 19 * 1024)

# Inbound trust (mailcore/inbound): sender authentication on port 25 ------------------------

# SPF (MAIL FROM and HELO), DKIM, ARC and DMARC for every message received on port 25, with
# one Authentication-Results field (authserv-id MAIL_HOSTNAME) and the DMARC policy applied.
INBOUND_AUTH = env_bool("INBOUND_AUTH", True)
# When DNS fails so that the sender's DMARC policy cannot be known: "defer" answers 451 4.4.3
# (the sender tries again), "accept" delivers with "temperror" in the field. Development
# accepts, so a laptop offline still takes the mail it is sent.
INBOUND_DNS_FAILURE = env_str("INBOUND_DNS_FAILURE", "accept" if DEBUG else "defer")
if INBOUND_DNS_FAILURE not in ("defer", "accept"):
    raise ImproperlyConfigured("INBOUND_DNS_FAILURE must be defer or accept")
INBOUND_DNS_TIMEOUT = env_float("INBOUND_DNS_TIMEOUT", 5)  # one lookup (DNS_RESOLVER's server)
INBOUND_DNS_CACHE_SIZE = env_int("INBOUND_DNS_CACHE_SIZE", 10000)  # answers kept per process
INBOUND_SPF_TIMEOUT = env_float("INBOUND_SPF_TIMEOUT", 20)  # one SPF check, all its lookups
# Forwarders (ARC sealing domains, "lists.example.org,fwd.example.net") whose passing ARC
# chain overrides a DMARC failure (RFC 7489 section 7.2.1): mail they forward is not refused.
ARC_TRUSTED_SEALERS = [d.strip().lower() for d in env_str("ARC_TRUSTED_SEALERS", "").split(",")
                       if d.strip()]

# SRS (mailcore/srs.py): mail forwarded to other domains leaves with a rewritten envelope
# sender at SRS_DOMAIN (by default the domain of the address that forwards), so SPF holds at
# the next hop; bounces to it go back to the original sender. The secret signs those
# addresses (by default derived from SECRET_KEY); old secrets still decode for a while.
SRS_SECRET = env_str("SRS_SECRET", "") or hmac.new(
    SECRET_KEY.encode(), b"mailhost srs", hashlib.sha256).hexdigest()
SRS_PREVIOUS_SECRETS = [s.strip() for s in env_str("SRS_PREVIOUS_SECRETS", "").split(",")
                        if s.strip()]
SRS_DOMAIN = env_str("SRS_DOMAIN", "").strip().lower()
SRS_VALIDITY_DAYS = env_int("SRS_VALIDITY_DAYS", 21)

# Spam filtering with Rspamd (mailcore/inbound/spam.py) --------------------------------------

# Rspamd's scanner (its normal worker, e.g. http://rspamd:11333): mailcore asks /checkv2 at
# the end of DATA. Empty: no spam scoring (the dashboard says so).
RSPAMD_URL = env_str("RSPAMD_URL", "").rstrip("/")
# Rspamd's controller (e.g. http://rspamd:11334): the worker teaches it spam and ham
# (/learnspam, /learnham) when users move mail into or out of Junk. Empty: no learning.
RSPAMD_CONTROLLER_URL = env_str("RSPAMD_CONTROLLER_URL", "").rstrip("/")
RSPAMD_PASSWORD = env_str("RSPAMD_PASSWORD", "")  # the controller's, if it asks one
RSPAMD_TIMEOUT = env_float("RSPAMD_TIMEOUT", 20)  # one scan, seconds
# When Rspamd cannot be asked: "accept" delivers the message marked as not scanned
# (X-Spam-Status: unscanned), "defer" answers 451 4.7.1 so the sender tries again later.
RSPAMD_DOWN = env_str("RSPAMD_DOWN", "accept")
if RSPAMD_DOWN not in ("accept", "defer"):
    raise ImproperlyConfigured("RSPAMD_DOWN must be accept or defer")
# How many days the panel keeps the mail refused for each domain (and shows it its owner).
INBOUND_REFUSALS_DAYS = env_int("INBOUND_REFUSALS_DAYS", 7)

# The web tier behind its TLS proxy (TRUSTED_PROXY_HOPS above) ---------------------------------

# A client's X-Forwarded-Proto would let it pass for https; only our own proxy's counts.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXY_HOPS > 0 else None
# gunicorn speaks plain HTTP: without a trusted proxy's word every request looks like http and
# a redirect would loop, so the proxy redirects instead (deploy/Caddyfile does).
SECURE_SSL_REDIRECT = SITE_HTTPS and TRUSTED_PROXY_HOPS > 0

# Outbound delivery ------------------------------------------------------------------------

# Relay everything through host:port (as many hosting providers require), optionally with
# AUTH and TLS ("starttls", "tls" for implicit TLS, or "none").
OUTBOUND_SMARTHOST = env_str("OUTBOUND_SMARTHOST", "")
OUTBOUND_SMARTHOST_USER = env_str("OUTBOUND_SMARTHOST_USER", "")
OUTBOUND_SMARTHOST_PASSWORD = env_str("OUTBOUND_SMARTHOST_PASSWORD", "")
OUTBOUND_SMARTHOST_TLS = env_str("OUTBOUND_SMARTHOST_TLS", "starttls")
# Per-domain overrides: "b.test=127.0.0.1:2626,c.test=10.0.0.5:25".
OUTBOUND_TRANSPORTS = env_str("OUTBOUND_TRANSPORTS", "")
DNS_RESOLVER = env_str("DNS_RESOLVER", "")  # host:port of the DNS server to ask
DNS_TIMEOUT = env_float("DNS_TIMEOUT", 10)
OUTBOUND_LIFETIME = env_int("OUTBOUND_LIFETIME", 5 * 24 * 3600)
OUTBOUND_DELAY_NOTICE = env_int("OUTBOUND_DELAY_NOTICE", 4 * 3600)
OUTBOUND_RETRY_DELAYS = [
    int(_number("OUTBOUND_RETRY_DELAYS", x, int))
    for x in env_str("OUTBOUND_RETRY_DELAYS", "60,300,900,1800,3600").split(",") if x.strip()
]
OUTBOUND_TIMEOUT = env_float("OUTBOUND_TIMEOUT", 60)
OUTBOUND_LEASE = env_int("OUTBOUND_LEASE", 900)
# Recipients a worker claims at once (mailcore.tasks.drain_outbound); a full batch hands
# the rest of the queue to another worker process meanwhile.
OUTBOUND_DRAIN_BATCH = max(env_int("OUTBOUND_DRAIN_BATCH", 100), 1)
# Seconds between the starts of drains that arriving mail wakes the worker for: a stream
# of mail leaves in batches, a lone message at once (mailcore.queue.wake.begin).
OUTBOUND_GATHER = max(env_float("OUTBOUND_GATHER", 0.25), 0.0)
# Destination domains a drain sends to at once (a thread each), so one slow or
# unreachable destination does not hold up the rest of the batch.
OUTBOUND_DESTINATIONS_AT_ONCE = max(env_int("OUTBOUND_DESTINATIONS_AT_ONCE", 8), 1)

# Webmail (panel/webmail, mailcore/webclient) ------------------------------------------------

WEBMAIL_PAGE_SIZE = env_int("WEBMAIL_PAGE_SIZE", 50)  # messages per list page
WEBMAIL_POLL_SECONDS = env_int("WEBMAIL_POLL_SECONDS", 15)  # how often a list looks for mail
WEBMAIL_AUTOSAVE_SECONDS = env_int("WEBMAIL_AUTOSAVE_SECONDS", 20)  # draft autosave period
# A body search reads at most this many messages (newest first), then says so.
WEBMAIL_BODY_SEARCH_LIMIT = env_int("WEBMAIL_BODY_SEARCH_LIMIT", 2000)

# Panel accounts (django-allauth) and the mail it sends ----------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Mailhost] "
# Failed logins are throttled by mailcore's login throttle (panel.accounts.adapter), not
# by allauth's "login_failed" limit, whose per-login key let anyone lock a customer out;
# links in account mail are built on SITE_URL (the same adapter).
ACCOUNT_ADAPTER = "panel.accounts.adapter.AccountAdapter"
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_HOPS
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Mailhost"
# Staff without TOTP are sent to set it up before anything else (panel.accounts.middleware).
REQUIRE_STAFF_2FA = env_bool("REQUIRE_STAFF_2FA", not DEBUG)
# The panel's mail (verification, password resets) goes through mailcore's own delivery.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "mailcore.sending.system.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"noreply@{MAIL_HOSTNAME}")
# Development outbox (mailcore.sending.devoutbox): the system's own mail for addresses not
# hosted here (sign-up confirmations, password resets, claim notices, bounces) is kept as
# files under DEV_OUTBOX_DIR for operators to read at /dashboard/outbox/ instead of joining
# the outbound queue, which on a machine without outside DNS could only bounce it. On with
# DEBUG; production (DEBUG off) queues it unless DEV_OUTBOX says otherwise.
DEV_OUTBOX = env_bool("DEV_OUTBOX", DEBUG)
DEV_OUTBOX_DIR = Path(env_str("DEV_OUTBOX_DIR", str(DATA_DIR / "outbox")))
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The panel's own stylesheet and script.
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "mail.log": {"level": "WARNING"},
        "aiosmtpd": {"level": "WARNING"},
    },
}
