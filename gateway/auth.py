"""API keys: creation, listing, revocation and lookup; only an HMAC of each key is stored.

A key looks like ``vsk_<id>_<secret>``. The database keeps ``HMAC-SHA256(pepper, key)``; the
pepper lives outside the database (environment or ``.state/api_key_pepper``), so a leaked
database dump yields neither keys nor a way to test guesses offline. The ``id`` is public: it
names the key in ``visionserve keys list`` and ``revoke``.

A key belongs to a *user* (its ``--name``): history is per user, so a rotated key keeps its
owner's history. Roles: ``user`` sees its own records, ``admin`` everyone's.

Lookups are cached in the process for ``cache_ttl_s`` (default 1 s) so the request path does
not touch the database; a revocation therefore takes effect within that time everywhere.
Found keys and unknown keys are cached apart, each bounded and evicting its own oldest
entries: a flood of made-up keys fills only the cache of misses and never pushes a valid key
out (it used to clear one shared cache). The caller (``Gateway.admit``) rate-limits the
lookups that would reach the database, per client address, before they run.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import anyio.to_thread
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.db import ApiKey, utcnow
from gateway.errors import BadRequest, NotFound

__all__ = ["KEY_PREFIX", "ROLES", "Identity", "KeyInfo", "KeyStore", "hash_key"]

Role = Literal["user", "admin"]
ROLES: tuple[Role, ...] = ("user", "admin")
KEY_PREFIX = "vsk"
_KEY_SHAPE = re.compile(rf"^{KEY_PREFIX}_[0-9a-f]{{12}}_[A-Za-z0-9_-]{{20,100}}$")
_NAME_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
#: Entries of each lookup cache (found keys; unknown keys).
_CACHE_MAX = 10_000
_MISS_CACHE_MAX = 10_000


@dataclass(frozen=True)
class Identity:
    """Who is calling: the key's id, its user name and role."""

    key_id: str
    user: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class KeyInfo:
    """A stored key as ``keys list`` shows it (never the key itself)."""

    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(pepper: bytes, key: str) -> str:
    """HMAC-SHA256 of the key under the pepper, hex."""
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.role, row.created_at, row.revoked_at)  # type: ignore[arg-type]


class KeyStore:
    """API keys in the gateway database.

    Args:
        engine: the migrated database.
        pepper: the HMAC secret (``gateway.settings.load_pepper``).
        cache_ttl_s: how long a lookup result (found or not) is reused.
    """

    def __init__(self, engine: Engine, pepper: bytes, cache_ttl_s: float = 1.0) -> None:
        if not pepper:
            raise ValueError("the API-key pepper must not be empty")
        self._engine = engine
        self._pepper = pepper
        self._ttl_s = cache_ttl_s
        self._found: dict[str, tuple[float, Identity]] = {}
        self._missing: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- administration (CLI) -------------------------------------------------------
    def create(self, name: str, role: str = "user") -> tuple[KeyInfo, str]:
        """Create a key for user ``name``; returns its record and the key (shown once).

        Raises:
            BadRequest: an invalid name or role.
        """
        if not _NAME_SHAPE.match(name):
            raise BadRequest(f"invalid name {name!r}: 1-100 characters of letters, digits and . _ @ + -")
        if role not in ROLES:
            raise BadRequest(f"invalid role {role!r}; choose from {', '.join(ROLES)}")
        for _ in range(5):  # a 48-bit id collision is unlikely; retry rather than fail
            key_id = secrets.token_hex(6)
            key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
            row = ApiKey(id=key_id, name=name, role=role, key_hash=hash_key(self._pepper, key), created_at=utcnow())
            try:
                with Session(self._engine) as session, session.begin():
                    session.add(row)
                    session.flush()
                    info = _info(row)
            except IntegrityError:
                continue
            return info, key
        raise RuntimeError("could not allocate a unique key id")

    def list(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        """Every key, oldest first."""
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        with Session(self._engine) as session:
            return [_info(row) for row in session.scalars(query)]

    def revoke(self, key_id: str | None = None, *, name: str | None = None) -> list[KeyInfo]:
        """Revoke one key by id, or every active key of a user; returns what was revoked.

        Raises:
            NotFound: nothing active matched.
        """
        if (key_id is None) == (name is None):
            raise BadRequest("give exactly one of a key id or a user name")
        where = ApiKey.id == key_id if key_id is not None else ApiKey.name == name
        with Session(self._engine) as session, session.begin():
            rows = list(session.scalars(select(ApiKey).where(where, ApiKey.revoked_at.is_(None))))
            if not rows:
                raise NotFound(f"no active key with {'id ' + str(key_id) if key_id else 'name ' + str(name)}")
            now = utcnow()
            session.execute(update(ApiKey).where(ApiKey.id.in_([r.id for r in rows])).values(revoked_at=now))
            return [KeyInfo(r.id, r.name, r.role, r.created_at, now) for r in rows]  # type: ignore[arg-type]

    # -- the request path -----------------------------------------------------------
    def cached(self, key: str) -> tuple[bool, Identity | None]:
        """What is known about ``key`` without the database: (known, identity).

        A malformed key is known (and None); so is a key found or missed within the TTL.
        ``(False, None)`` means only a database lookup can tell.
        """
        if not _KEY_SHAPE.match(key):
            return True, None
        digest = hash_key(self._pepper, key)
        now = time.monotonic()
        found = self._found.get(digest)
        if found is not None and found[0] > now:
            return True, found[1]
        missed = self._missing.get(digest)
        if missed is not None and missed > now:
            return True, None
        return False, None

    def lookup(self, key: str) -> Identity | None:
        """The identity of an active key, or None (malformed, unknown or revoked)."""
        known, identity = self.cached(key)
        if known:
            return identity
        digest = hash_key(self._pepper, key)
        identity = self._query(digest)
        expires = time.monotonic() + self._ttl_s
        with self._lock:
            if identity is not None:
                self._missing.pop(digest, None)
                _put(self._found, digest, (expires, identity), _CACHE_MAX)
            else:
                self._found.pop(digest, None)
                _put(self._missing, digest, expires, _MISS_CACHE_MAX)
        return identity

    async def alookup(self, key: str) -> Identity | None:
        """``lookup`` for the event loop: a cached answer is returned inline, a query runs in a thread."""
        known, identity = self.cached(key)
        if known:
            return identity
        return await anyio.to_thread.run_sync(self.lookup, key)

    def _query(self, digest: str) -> Identity | None:
        with Session(self._engine) as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))
            return Identity(row.id, row.name, row.role) if row is not None else None  # type: ignore[arg-type]


def _put(cache: dict[str, Any], digest: str, value: Any, max_entries: int) -> None:
    """Insert, evicting the oldest entries (insertion order) of this cache only (lock held)."""
    cache.pop(digest, None)
    while len(cache) >= max_entries:
        del cache[next(iter(cache))]
    cache[digest] = value
