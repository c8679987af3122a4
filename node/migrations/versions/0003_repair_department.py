"""a repair stores the department of the record it repairs (issue 19)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 00:00:00

Until now rescoring resolved a repair's ``repairs`` (a record id) again at every
rescore, so rows pushed later could cancel a repair or hand it to another department's
record. From this revision a repair repairs the row of ``(repairs_department,
repairs)`` only (node.services.scoring). Existing repairs get the department of the
record they were pushed for, as far as the rows still tell (:func:`backfill`); where
they don't, NULL, and the repair repairs nothing.

Stored scores are not recomputed here (a migration has no scoring model): the next
rescore of each resident applies the rule, at the latest the monthly job; an operator
who wants it at once runs ``POST /v1/admin/rescore`` after upgrading.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The statuses in which a record counts (node.services.scoring.COUNTING_STATUSES at
# this revision; copied, as a migration must not change when the code does).
COUNTING = ("active", "objected")

_RECORD = sa.table(
    "record",
    sa.column("id", sa.Integer),
    sa.column("department", sa.String),
    sa.column("record_id", sa.String),
    sa.column("resident_id", sa.String),
    sa.column("repairs", sa.String),
    sa.column("repairs_department", sa.String),
    sa.column("status", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("record") as batch:
        batch.add_column(
            sa.Column(
                "repairs_department", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
            )
        )
    backfill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("record") as batch:
        batch.drop_column("repairs_department")


def backfill(connection: sa.Connection) -> int:
    """Set ``repairs_department`` on every repair row (``repairs`` not null) whose
    department is still NULL, to the department of the record it was pushed for;
    returns how many rows it set.

    The candidates of a repair are the resident's non-repair rows of that record id
    stored before it (a lower id: the push checked the repair against rows already
    there, its own batch's earlier rows included), whatever their status now:

    - one of the repair's own department: that department (the push looked there
      first). If that record was removed since, the repair now repairs nothing, rather
      than another department's record of the same id;
    - else the other departments' candidates, the counting ones if any (a record
      counting now counted then: a removed record never comes back): exactly one is the
      record the push accepted (two counting ones would have been refused as
      ambiguous); several, NULL.

    This is not the lookup rescoring did until now: that one also saw rows pushed after
    the repair (which made certified repairs ambiguous) and moved a repair to another
    department's record once its own was removed; the backfill undoes both."""
    fix, target = _RECORD.alias("fix"), _RECORD.alias("target")
    rows = connection.execute(
        sa.select(fix.c.id, fix.c.department, target.c.department, target.c.status)
        .select_from(
            fix.join(
                target,
                sa.and_(
                    target.c.resident_id == fix.c.resident_id,
                    target.c.record_id == fix.c.repairs,
                    target.c.repairs.is_(None),
                    target.c.id < fix.c.id,
                ),
            )
        )
        .where(fix.c.repairs.is_not(None), fix.c.repairs_department.is_(None))
    )
    candidates: dict[int, list[tuple[str, str]]] = defaultdict(list)
    own: dict[int, str] = {}
    for repair_pk, department, candidate_department, status in rows:
        if candidate_department == department:
            own[repair_pk] = department
        else:
            candidates[repair_pk].append((candidate_department, status))
    found = dict(own)
    for repair_pk, others in candidates.items():
        if repair_pk in own:
            continue
        counting = [d for d, status in others if status in COUNTING]
        pool = counting or [d for d, _ in others]
        if len(pool) == 1:
            found[repair_pk] = pool[0]
    if found:
        connection.execute(
            sa.update(_RECORD)
            .where(_RECORD.c.id == sa.bindparam("pk"))
            .values(repairs_department=sa.bindparam("found")),
            [{"pk": pk, "found": d} for pk, d in sorted(found.items())],
        )
    return len(found)
