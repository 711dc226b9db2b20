"""Alembic environment of the gateway database.

``gateway.db.migrate`` (called by the gateway and by ``visionserve keys`` on start) passes its
connection in ``config.attributes["connection"]``; standalone Alembic runs take the URL from
``-x url=…`` or the gateway settings (``DATABASE_URL``).
"""

from __future__ import annotations

from alembic import context

from gateway.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from gateway.settings import GatewaySettings

    url = context.get_x_argument(as_dictionary=True).get("url") or GatewaySettings().sqlalchemy_url
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


def run_migrations_offline() -> None:
    from gateway.settings import GatewaySettings

    url = context.get_x_argument(as_dictionary=True).get("url") or GatewaySettings().sqlalchemy_url
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
