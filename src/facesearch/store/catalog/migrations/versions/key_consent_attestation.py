"""API keys carry a consent attestation: where the consent of the subjects a key enrols is held.

Keys made before it have none (an empty attestation), so they cannot enrol through the CompreFace API until an
administrator issues a key with one. A catalog whose tables were made from the models before migrations began may
have the column already: it is added only when missing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("api_keys")}
    if "consent_attestation" in columns:
        return
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("consent_attestation", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("consent_attestation")
