"""API keys: hashed at rest, roles, revocation, lookups cached for a bounded time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.auth import KeyStore, hash_key
from gateway.db import ApiKey, make_engine, migrate
from gateway.errors import BadRequest, NotFound


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    migrate(engine)
    return engine


def test_created_key_authenticates_with_its_user_and_role(engine: Engine) -> None:
    store = KeyStore(engine, b"pepper", cache_ttl_s=0)
    info, key = store.create("alice", "admin")
    identity = store.lookup(key)
    assert identity is not None
    assert (identity.user, identity.role, identity.key_id, identity.is_admin) == (
        "alice",
        "admin",
        info.id,
        True,
    )
    assert key.startswith(f"vsk_{info.id}_")


def test_only_an_hmac_is_stored(engine: Engine, tmp_path: Path) -> None:
    store = KeyStore(engine, b"pepper", cache_ttl_s=0)
    _, key = store.create("bob")
    with Session(engine) as session:
        row = session.scalar(select(ApiKey))
    assert row is not None and row.key_hash == hash_key(b"pepper", key) and key not in row.key_hash
    secret = key.rsplit("_", 1)[1].encode()
    for path in tmp_path.glob("gw.db*"):
        assert secret not in path.read_bytes()


def test_a_different_pepper_cannot_use_the_keys(engine: Engine) -> None:
    _, key = KeyStore(engine, b"pepper-1").create("carol")
    assert KeyStore(engine, b"pepper-2").lookup(key) is None


def test_unknown_malformed_and_revoked_keys_are_rejected(engine: Engine) -> None:
    store = KeyStore(engine, b"pepper", cache_ttl_s=0)
    info, key = store.create("dave")
    assert store.lookup("vsk_000000000000_" + "x" * 43) is None
    assert store.lookup("not a key") is None
    assert store.lookup(key[:-1]) is None
    revoked = store.revoke(info.id)
    assert [k.id for k in revoked] == [info.id] and not revoked[0].active
    assert store.lookup(key) is None
    with pytest.raises(NotFound):
        store.revoke(info.id)


def test_revoke_by_name_revokes_every_key_of_the_user(engine: Engine) -> None:
    store = KeyStore(engine, b"pepper", cache_ttl_s=0)
    keys = [store.create("erin")[1] for _ in range(2)]
    _, other = store.create("frank")
    assert len(store.revoke(name="erin")) == 2
    assert all(store.lookup(k) is None for k in keys)
    assert store.lookup(other) is not None
    assert [k.name for k in store.list(include_revoked=False)] == ["frank"]
    assert len(store.list()) == 3


def test_revocation_is_seen_after_the_cache_ttl(engine: Engine) -> None:
    cached = KeyStore(engine, b"pepper", cache_ttl_s=0.3)
    info, key = cached.create("gina")
    assert cached.lookup(key) is not None
    KeyStore(engine, b"pepper").revoke(info.id)  # another process revokes
    assert cached.lookup(key) is not None  # still cached
    time.sleep(0.35)
    assert cached.lookup(key) is None


@pytest.mark.parametrize(
    "name,role", [("", "user"), ("has space", "user"), ("x" * 101, "user"), ("ok", "root")]
)
def test_invalid_names_and_roles_are_refused(engine: Engine, name: str, role: str) -> None:
    with pytest.raises(BadRequest):
        KeyStore(engine, b"pepper").create(name, role)


@pytest.mark.anyio
async def test_async_lookup_matches(engine: Engine) -> None:
    store = KeyStore(engine, b"pepper")
    _, key = store.create("hank")
    first = await store.alookup(key)
    second = await store.alookup(key)  # served from the cache
    assert first == second and first is not None and first.user == "hank"
    assert await store.alookup("garbage") is None


def _made_up_key(n: int) -> str:
    return f"vsk_{n:012x}_{'A' * 40}"


def test_unknown_keys_never_evict_valid_ones(engine: Engine) -> None:
    """Finding: 10,000 misses cleared the one lookup cache, valid keys included."""
    store = KeyStore(engine, b"pepper", cache_ttl_s=3600)
    info, key = store.create("ivan")
    assert store.lookup(key) is not None
    KeyStore(engine, b"pepper").revoke(info.id)  # from now on only the cache can say "ivan"
    for n in range(10_001):
        assert store.lookup(_made_up_key(n)) is None
    assert store.lookup(key) is not None  # still served from the cache of found keys
    assert store.cached(_made_up_key(10_000)) == (True, None)  # the latest misses are remembered


def test_misses_are_cached_apart_and_bounded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.auth._MISS_CACHE_MAX", 100)
    store = KeyStore(engine, b"pepper", cache_ttl_s=3600)
    queries: list[str] = []
    real_query = store._query
    store._query = lambda digest: queries.append(digest) or real_query(digest)  # type: ignore[method-assign]
    assert store.cached(_made_up_key(1)) == (False, None)  # only the database can tell
    store.lookup(_made_up_key(1))
    store.lookup(_made_up_key(1))
    assert len(queries) == 1  # the second miss cost no query
    assert store.cached("not-a-key") == (True, None)  # malformed: known without a lookup
    for n in range(2, 105):
        store.lookup(_made_up_key(n))
    assert len(store._missing) <= 100 and store.cached(_made_up_key(1)) == (False, None)  # oldest went
