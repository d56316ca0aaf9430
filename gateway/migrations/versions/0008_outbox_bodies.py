"""outbox bodies: a mail's bytes in a row of their own, which claiming and marking it sent leave alone

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

The column is dropped and added in place (SQLite 3.35 and later do both), not by Alembic's batch
copy of the table: with foreign keys on, as the gateway runs SQLite, dropping the old copy of
``outbox`` would break the references of ``outbox_bodies`` to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox_bodies',
                    sa.Column('outbox_id', sa.Integer(), sa.ForeignKey('outbox.id'), primary_key=True),
                    sa.Column('raw', sa.LargeBinary(), nullable=False))
    op.execute('INSERT INTO outbox_bodies (outbox_id, raw) SELECT id, raw FROM outbox')
    op.drop_column('outbox', 'raw')


def downgrade() -> None:
    op.add_column('outbox', sa.Column('raw', sa.LargeBinary(), nullable=True))
    op.execute('UPDATE outbox SET raw = (SELECT raw FROM outbox_bodies WHERE outbox_bodies.outbox_id = outbox.id)')
    op.drop_table('outbox_bodies')
    with op.batch_alter_table('outbox') as batch_op:  # nothing refers to outbox any more: the copy may go
        batch_op.alter_column('raw', existing_type=sa.LargeBinary(), nullable=False)
