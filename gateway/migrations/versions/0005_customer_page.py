"""customer page: the key in each person's page link, changed to revoke the links sent before; the
customer's side: observers from the Cc of a customer's first mail, who see what the customer sees

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('people') as batch_op:
        batch_op.add_column(sa.Column('page_key', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('participants') as batch_op:
        batch_op.add_column(sa.Column('customer_side', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('participants') as batch_op:
        batch_op.drop_column('customer_side')
    with op.batch_alter_table('people') as batch_op:
        batch_op.drop_column('page_key')
