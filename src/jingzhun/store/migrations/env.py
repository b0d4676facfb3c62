"""Alembic environment of the operational store.

At run time ``OperationalStore.migrate()`` hands over its connection through
``config.attributes["connection"]`` (inside its transaction and lock). A developer running the
``alembic`` command with ``alembic.ini`` beside this file gets a connection made from
``JINGZHUN_STORE_URL`` or the ini's ``sqlalchemy.url`` instead; see the package README.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from pathlib import Path
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from jingzhun.store._engine import begin_immediately, create_store_engine, resolve_url
from jingzhun.store._models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def _render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations are frozen snapshots: write the plain column type, not jingzhun's class.
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        **options,
    )


def _run(connection: Connection) -> None:
    # SQLite can change a table only by rebuilding it: batch mode does the copy-and-move.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _developer_url() -> str:
    url = os.environ.get("JINGZHUN_STORE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set JINGZHUN_STORE_URL or sqlalchemy.url in alembic.ini")
    return url


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    if context.is_offline_mode():
        url = _developer_url()
        _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = create_store_engine(
            resolve_url(_developer_url(), Path.cwd()), foreign_keys=False, pooled=False
        )
        try:
            with begin_immediately(engine).begin() as developer_connection:
                _run(developer_connection)
        finally:
            engine.dispose()
