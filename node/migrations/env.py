"""Alembic environment: migrations run on the connection the node hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import node.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from node.db import make_engine

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # the alembic command line: connect with the configured URL
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    connection = engine.connect()
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
