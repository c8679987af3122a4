"""Migration 0003 (issue 19): repairs get the department of the record they were pushed
for, from the rows the database holds at 0002, on both backends."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from node.db import alembic_config, make_engine

T = 2**33

# (department, record_id, resident_id, repairs, status), inserted in this order (ids ascending)
ROWS_AT_0002 = [
    # a repair of the department's own record
    ("tax", "t-1", "alice", None, "active"),
    ("tax", "fix-1", "alice", "t-1", "active"),
    # the credit centre's repair of the court's record; the tax office's J-9 came later
    ("court", "J-9", "bob", None, "active"),
    ("centre", "fix-9", "bob", "J-9", "active"),
    ("tax", "J-9", "bob", None, "active"),
    # the library's repair of its own J-77, since removed; the court's J-77 counts
    ("court", "J-77", "carol", None, "active"),
    ("library", "J-77", "carol", None, "removed"),
    ("library", "fix-77", "carol", "J-77", "active"),
    # two other departments' records counted when the repair came: it can't be told
    ("tax", "x", "dave", None, "active"),
    ("police", "x", "dave", None, "objected"),
    ("centre", "fix-x", "dave", "x", "active"),
    # one of the two was removed since: the one still counting is the one it was for
    ("court", "y", "erin", None, "removed"),
    ("police", "y", "erin", None, "active"),
    ("centre", "fix-y", "erin", "y", "active"),
    # nothing of that id is hers (the only "w" is erin's); nothing of that id at all
    ("tax", "w", "erin", None, "active"),
    ("tax", "fix-w", "frank", "w", "active"),
    ("tax", "fix-z", "frank", "z", "active"),
    # only a removed record of another department: that one (it repairs nothing anyway)
    ("court", "v", "gina", None, "removed"),
    ("centre", "fix-v", "gina", "v", "active"),
]

EXPECTED = {
    ("tax", "fix-1"): "tax",
    ("centre", "fix-9"): "court",
    ("library", "fix-77"): "library",
    ("centre", "fix-x"): None,
    ("centre", "fix-y"): "police",
    ("tax", "fix-w"): None,
    ("tax", "fix-z"): None,
    ("centre", "fix-v"): "court",
}


def _run(engine: Engine, action: Any, revision: str) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)


RECORD_AT_0002 = sa.table(
    "record",
    *(
        sa.column(name)
        for name in (
            "department",
            "record_id",
            "resident_id",
            "kind",
            "occurred_at",
            "recorded_at",
            "repairs",
            "status",
        )
    ),
)


def _repairs_departments(engine: Engine) -> dict[tuple[str, str], str | None]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT department, record_id, repairs_department FROM record")
        )
        return {(department, record_id): found for department, record_id, found in rows}


def test_the_migration_gives_each_repair_the_department_it_was_pushed_for(
    node_database_url: str,
) -> None:
    engine = make_engine(node_database_url)
    try:
        _run(engine, command.upgrade, "0002")
        with engine.begin() as connection:
            for department, record_id, resident_id, repairs, status in ROWS_AT_0002:
                connection.execute(
                    RECORD_AT_0002.insert().values(
                        department=department,
                        record_id=record_id,
                        resident_id=resident_id,
                        kind="repair_completed" if repairs else "tax_arrears",
                        occurred_at=T,
                        recorded_at=T,
                        repairs=repairs,
                        status=status,
                    )
                )
        _run(engine, command.upgrade, "head")
        found = _repairs_departments(engine)
        assert {key: found[key] for key in EXPECTED} == EXPECTED
        assert {found[key] for key in found.keys() - EXPECTED.keys()} == {None}  # not repairs

        # run again, it sets nothing more (what could not be told still can't)
        script = ScriptDirectory.from_config(alembic_config(node_database_url))
        revision = script.get_revision("0003")
        assert revision is not None
        with engine.begin() as connection:
            assert revision.module.backfill(connection) == 0

        # down and up again: the column goes, and comes back filled the same way
        _run(engine, command.downgrade, "0002")
        columns = {c["name"] for c in inspect(engine).get_columns("record")}
        assert "repairs_department" not in columns
        _run(engine, command.upgrade, "head")
        assert _repairs_departments(engine) == found
    finally:
        engine.dispose()
