"""Rate limits kept in the catalog, so that every server process on one catalog (``facesearch serve --workers N`` on
PostgreSQL, or several servers) shares each key's budget: one row per counted call of an API key in the last window
(``rate_limit_calls``), and the faces and images each key was just shown, whose pictures follow uncounted
(``shown_items``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())  # a catalog whose tables were made from the models
    if "rate_limit_calls" not in present:
        op.create_table(
            "rate_limit_calls",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("key_id", sa.Integer(), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_rate_limit_calls_key_at", "rate_limit_calls", ["key_id", "at"])
    if "shown_items" not in present:
        op.create_table(
            "shown_items",
            sa.Column("key_id", sa.Integer(), nullable=False),
            sa.Column("kind", sa.String(length=8), nullable=False),
            sa.Column("item_id", sa.Integer(), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("key_id", "kind", "item_id"),
        )


def downgrade() -> None:
    op.drop_table("shown_items")
    op.drop_index("ix_rate_limit_calls_key_at", table_name="rate_limit_calls")
    op.drop_table("rate_limit_calls")
