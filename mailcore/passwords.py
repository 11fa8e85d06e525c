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
_dummy_hash: tuple[PasswordHasher, str] | None = None
_cache: dict[bytes, float] = {}
_cache_lock = threading.Lock()


def hasher() -> PasswordHasher:
    """Return the hasher for the current ARGON2_* settings (rebuilt when they change)."""
    global _hasher
    current = _hasher
    if (current is None or current.time_cost != settings.ARGON2_TIME_COST
            or current.memory_cost != settings.ARGON2_MEMORY_COST):
        current = _hasher = PasswordHasher(
            time_cost=settings.ARGON2_TIME_COST,
            memory_cost=settings.ARGON2_MEMORY_COST,
            parallelism=1,
            type=Type.ID,
        )
    return current


def make_password(password: str) -> str:
    """Return the argon2id hash to store for a mailbox password."""
    return hasher().hash(password)


def needs_rehash(stored_hash: str) -> bool:
    """Return whether stored_hash was made with other parameters than the current ones.

    As Django's hashers' must_update: a login that proves the password stores a new hash.
    """
    try:
        return hasher().check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return False


def generate_app_password() -> str:
    """Return a new random app password: 16 letters in groups of four, easy to type."""
    alphabet = "abcdefghijkmnopqrstuvwxyz"
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def app_password_lookup(secret: str) -> str:
    """Return the indexed lookup key of an app password: the SHA-256 of the secret.

    A fast, unsalted hash is safe here only because app passwords are generated, never
    chosen: 16 letters from 25 are some 74 bits, beyond any dictionary or brute force, so
    the column gives a stolen database nothing to start from. It lets a login find the one
    row to verify with argon2 instead of trying each of a mailbox's app passwords.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


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


def check_nothing(password: str) -> None:
    """Spend what checking a password costs, for a login with no hash to check against.

    As Django's ModelBackend runs the hasher for an unknown user: a wrong address must
    not answer faster than a wrong password, or timing would tell which addresses exist.
    The dummy hash is made once per process (and again if the parameters change).
    """
    global _dummy_hash
    current = hasher()
    dummy = _dummy_hash
    if dummy is None or dummy[0] is not current:
        dummy = _dummy_hash = (current, current.hash(secrets.token_urlsafe(16)))
    try:
        current.verify(dummy[1], password)
    except (VerificationError, InvalidHashError):
        pass
