"""conversations: each inbound message's conversation key and, on PostgreSQL, its raw bytes; the hosts
taking mail in and their watermarks (CONTRACT §11); messages imported quietly, whose mails are never sent

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound') as batch_op:
        batch_op.add_column(sa.Column('raw', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('conversation', sa.String(length=400), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('quiet', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('ix_inbound_status_received_at', ['status', 'received_at'])
        batch_op.create_index('ix_inbound_message_id', ['message_id'])
    op.create_table(
        'intake_nodes',
        sa.Column('name', sa.String(length=300), nullable=False),
        sa.Column('watermark', sa.DateTime(), nullable=False),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('intake_nodes')
    with op.batch_alter_table('inbound') as batch_op:
        batch_op.drop_index('ix_inbound_message_id')
        batch_op.drop_index('ix_inbound_status_received_at')
        batch_op.drop_column('quiet')
        batch_op.drop_column('conversation')
        batch_op.drop_column('raw')
