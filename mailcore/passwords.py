"""Mailbox password hashing (argon2id) and verification with a short-lived cache."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from django.conf import settings

_hasher: PasswordHasher | None = None
_cache: dict[bytes, float] = {}
_cache_lock = threading.Lock()


def hasher() -> PasswordHasher:
    global _hasher
    if _hasher is None:
        _hasher = PasswordHasher(
            time_cost=settings.ARGON2_TIME_COST,
            memory_cost=settings.ARGON2_MEMORY_COST,
            parallelism=1,
            type=Type.ID,
        )
    return _hasher


def make_password(password: str) -> str:
    """Return the argon2id hash to store for a mailbox password."""
    return hasher().hash(password)


def generate_app_password() -> str:
    """Return a new random app password: 16 letters in groups of four, easy to type."""
    alphabet = "abcdefghijkmnopqrstuvwxyz"
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def _cache_key(user: str, password: str, stored_hash: str) -> bytes:
    message = "\0".join((user, password, stored_hash)).encode("utf-8", "surrogateescape")
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()


def check_password(user: str, password: str, stored_hash: str) -> bool:
    """Return whether password matches stored_hash, remembering recent successes.

    The cache is keyed by an HMAC of (user, password, hash), so a changed password or a
    changed hash misses it, and nothing in memory reveals the password.
    """
    if not stored_hash:
        return False
    key = _cache_key(user, password, stored_hash)
    now = time.monotonic()
    with _cache_lock:
        expires = _cache.get(key)
        if expires is not None and expires > now:
            return True
    try:
        hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    with _cache_lock:
        if len(_cache) > 10_000:
            for k in [k for k, exp in _cache.items() if exp <= now]:
                del _cache[k]
        _cache[key] = now + settings.AUTH_CACHE_SECONDS
    return True
