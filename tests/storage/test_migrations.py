"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

import node.models
from node.db import alembic_config, make_engine, migrate


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def schema(engine: Engine) -> dict[str, object]:
    """Tables, columns, indexes and unique constraints as the database reports them."""
    inspector = inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted(
                (i["name"] or "", tuple(i["column_names"])) for i in inspector.get_indexes(table)
            ),
            sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
        )
        for table in sorted(inspector.get_table_names())
    }


def test_migrate_creates_every_table_and_is_idempotent(node_database_url: str) -> None:
    engine = make_engine(node_database_url)
    try:
        assert inspect(engine).get_table_names() == []
        migrate(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
        assert tables - set(SQLModel.metadata.tables) == {"alembic_version"}
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head_revision(),)]

        before = schema(engine)
        migrate(engine)  # a second run changes nothing
        migrate(make_engine(node_database_url))  # nor does another engine (another worker)
        assert schema(engine) == before
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head_revision(),)]
    finally:
        engine.dispose()


def test_migrations_and_models_agree(engine: Engine) -> None:
    """What autogenerate would write after the last migration: nothing."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_every_model_has_a_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    for model in node.models.__all__:
        table = getattr(node.models, model).__table__
        assert table.name in tables, model


def test_big_integer_times_are_64_bit(engine: Engine) -> None:
    """Every time column (``*_at``) must hold times past 2038."""
    inspector = inspect(engine)
    for table in SQLModel.metadata.tables:
        for column in inspector.get_columns(table):
            if column["name"].endswith("_at") or column["name"] == "at":
                assert "BIGINT" in str(column["type"]).upper(), (table, column["name"])
