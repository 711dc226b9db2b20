"""``visionserve gateway`` (serve the BentoML service) and ``visionserve keys`` (API keys).

``gateway`` migrates the database once, then *becomes* ``bentoml serve`` (exec), so signals
and the process group are BentoML's: Ctrl-C / SIGTERM stop every worker.

``keys create --name NAME [--role admin]`` prints the new key once, on the last line of
stdout (so ``KEY=$(visionserve keys create --name ci | tail -1)`` works); ``keys list``
shows ids, users, roles and states; ``keys revoke ID`` or ``keys revoke --name NAME``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.auth import ROLES, KeyStore
from gateway.db import make_engine, migrate
from gateway.settings import GatewaySettings, load_pepper
from visionserve.settings import DEFAULT_GATEWAY_PORT, DEFAULT_GRPC_PORT

__all__ = ["keys_main", "serve_main"]

SERVICE = "gateway.service:Gateway"


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="visionserve gateway",
        description="Run the BentoML gateway. Settings come from the environment (TRITON_URL, REDIS_URL, "
        "DATABASE_URL, GATEWAY_*); these options override them.",
    )
    p.add_argument("--host", default=None, help="address to bind (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=None, help=f"port (default {DEFAULT_GATEWAY_PORT})")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default 1)")
    p.add_argument("--triton-url", default=None, help=f"Triton gRPC host:port (default 127.0.0.1:{DEFAULT_GRPC_PORT})")
    p.add_argument("--redis-url", default=None, help="redis://… for a shared cache and rate limits")
    p.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite under .state/)")
    p.add_argument("--state-dir", default=None, help="directory of the default database and pepper")
    return p


def serve_main(argv: list[str]) -> int:
    """Migrate, then exec ``bentoml serve gateway.service:Gateway`` with the chosen settings."""
    args = _serve_parser().parse_args(argv)
    overrides = {
        "GATEWAY_WORKERS": args.workers,
        "TRITON_URL": args.triton_url,
        "REDIS_URL": args.redis_url,
        "DATABASE_URL": args.database_url,
        "GATEWAY_STATE_DIR": args.state_dir,
    }
    # This process becomes bentoml (exec): its environment is what the workers inherit.
    os.environ.update({k: str(v) for k, v in overrides.items() if v is not None})
    settings = GatewaySettings()
    os.environ["GATEWAY_STATE_DIR"] = str(settings.state_dir)  # absolute: workers agree on it
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    load_pepper(settings)  # create it now, once, rather than racing in several workers
    engine = make_engine(settings.sqlalchemy_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    host = args.host or settings.host
    port = args.port or settings.port
    working_dir = str(Path(__file__).resolve().parent.parent)
    cmd = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port),
           "--working-dir", working_dir]  # fmt: skip
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)
    return 0  # not reached


def _keys_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="visionserve keys", description="Manage gateway API keys.")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a key; it is printed once, on the last line")
    create.add_argument("--name", required=True, help="the user the key belongs to")
    create.add_argument("--role", choices=ROLES, default="user", help="user (own history) or admin (all)")
    lst = sub.add_parser("list", help="list keys (never the keys themselves)")
    lst.add_argument("--active", action="store_true", help="only keys that are not revoked")
    revoke = sub.add_parser("revoke", help="revoke a key by id, or every key of a user")
    revoke.add_argument("key_id", nargs="?", help="the key's id (see `keys list`)")
    revoke.add_argument("--name", help="revoke every active key of this user")
    return p


def keys_main(argv: list[str]) -> int:
    """Create, list or revoke API keys in the gateway database (``DATABASE_URL`` or SQLite)."""
    parser = _keys_parser()
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    engine = make_engine(settings.sqlalchemy_url)
    try:
        migrate(engine)
        store = KeyStore(engine, load_pepper(settings))
        if args.action == "create":
            info, key = store.create(args.name, args.role)
            print(f"created key {info.id} for {info.name} (role {info.role}); it is shown only once:")
            print(key)
        elif args.action == "list":
            rows = store.list(include_revoked=not args.active)
            print(f"{'ID':<14}{'NAME':<24}{'ROLE':<7}{'CREATED (UTC)':<21}STATE")
            for k in rows:
                state = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
                print(f"{k.id:<14}{k.name:<24}{k.role:<7}{k.created_at:%Y-%m-%d %H:%M:%S}  {state}")
            if not rows:
                print("(no keys; create one with `visionserve keys create --name NAME`)")
        else:
            if (args.key_id is None) == (args.name is None):
                parser.error("revoke: give a key id or --name, not both")
            for k in store.revoke(args.key_id, name=args.name):
                print(f"revoked key {k.id} of {k.name}")
        return 0
    finally:
        engine.dispose()
