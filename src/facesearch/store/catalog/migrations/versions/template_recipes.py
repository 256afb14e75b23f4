"""Template recipes (``vision/recipes.py``): each collection records the recipe of its templates, each protected
template its own, and re-embedded templates wait in ``reindex_templates`` until a collection switches recipe whole
(``facesearch reindex``). Faces recorded their embedder's name (``dlib-resnet-v1``, ``dlib-resnet-v1/4-views``):
that becomes their recipe's name. An existing folder's collections and protected templates are marked as the recipe
the folder was made with (its ``template_views``; one view before that was recorded).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LEGACY = {"dlib-resnet-v1": "dlib-1view-v1", "dlib-resnet-v1/4-views": "dlib-4view-v1"}


def _folder_recipe() -> str:
    views = op.get_bind().execute(sa.text("SELECT value FROM meta WHERE key = 'template_views'")).scalar()
    return f"dlib-{views or 1}view-v1"


def upgrade() -> None:
    """Idempotent, as revision 0001 is: a folder whose tables were made before migrations by a facesearch that
    already had these columns keeps them."""
    recipe = _folder_recipe()
    inspector = sa.inspect(op.get_bind())
    for table in ("collections", "protected_templates"):
        if "template_recipe" not in {column["name"] for column in inspector.get_columns(table)}:
            column = sa.Column("template_recipe", sa.String(length=32), nullable=False, server_default=recipe)
            op.add_column(table, column)
    faces = sa.table("faces", sa.column("embedder", sa.String))
    for old, new in LEGACY.items():
        op.execute(faces.update().where(faces.c.embedder == old).values(embedder=new))
    if "reindex_templates" in inspector.get_table_names():
        return
    op.create_table(
        "reindex_templates",
        sa.Column("face_id", sa.Integer(), nullable=False),
        sa.Column("template_recipe", sa.String(length=32), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["face_id"], ["faces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("face_id"),
    )


def downgrade() -> None:
    op.drop_table("reindex_templates")
    faces = sa.table("faces", sa.column("embedder", sa.String))
    for old, new in LEGACY.items():
        op.execute(faces.update().where(faces.c.embedder == new).values(embedder=old))
    with op.batch_alter_table("protected_templates") as batch:
        batch.drop_column("template_recipe")
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("template_recipe")
