"""comments.degraded: why the pipeline could not apply the message a comment was kept from;
participants by email: the requests a sender opened in the last hour

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('comments') as batch_op:
        batch_op.add_column(sa.Column('degraded', sa.Text(), nullable=True))
    op.create_index('ix_participants_email', 'participants', ['email'])


def downgrade() -> None:
    op.drop_index('ix_participants_email', 'participants')
    with op.batch_alter_table('comments') as batch_op:
        batch_op.drop_column('degraded')
