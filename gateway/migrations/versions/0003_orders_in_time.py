"""deadlines: what the sweep does at a time if nothing happens before; orders in time: the delivery
deadline, the review, the customer's cancellation and revision requests (CONTRACT §10); payment
providers' events applied once; outbox claims, so a mail has one sender at a time

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'deadlines',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('due_at', sa.DateTime(), nullable=False),
        sa.Column('state', sa.String(length=8), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('outcome', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['request_id'], ['requests.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_deadlines_state_due_at', 'deadlines', ['state', 'due_at'])
    op.create_index('ix_deadlines_request_id', 'deadlines', ['request_id'])
    with op.batch_alter_table('orders') as batch_op:
        for column in _ORDER_COLUMNS:
            batch_op.add_column(column)
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.add_column(sa.Column('claim', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(), nullable=True))
    op.create_table(
        'subscriptions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('plan', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=20), nullable=True),
        sa.Column('current_period_start', sa.DateTime(), nullable=True),
        sa.Column('current_period_end', sa.DateTime(), nullable=True),
        sa.Column('next_charge_at', sa.DateTime(), nullable=True),
        sa.Column('next_plan', sa.String(length=200), nullable=True),
        sa.Column('ends_at_period_end', sa.Boolean(), nullable=False),
        sa.Column('failed_charges', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.request_id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('order_id'),
    )
    with op.batch_alter_table('people') as batch_op:
        batch_op.add_column(sa.Column('card_reference', sa.String(length=200), nullable=True))
    op.create_table(
        'provider_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=20), nullable=False),
        sa.Column('event_id', sa.String(length=255), nullable=False),
        sa.Column('kind', sa.String(length=100), nullable=False),
        sa.Column('outcome', sa.Text(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('provider', 'event_id'),
    )


_ORDER_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column('due_at', sa.DateTime(), nullable=True),
    sa.Column('late', sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('review_rating', sa.Integer(), nullable=True),
    sa.Column('review_text', sa.Text(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('cancellation_status', sa.String(length=10), nullable=True),
    sa.Column('cancellation_by', sa.String(length=320), nullable=True),
    sa.Column('cancellation_reason', sa.Text(), nullable=True),
    sa.Column('revision_status', sa.String(length=10), nullable=True),
    sa.Column('revision_reason', sa.Text(), nullable=True),
    sa.Column('plan_starts_at', sa.DateTime(), nullable=True),
)


def downgrade() -> None:
    op.drop_table('provider_events')
    with op.batch_alter_table('people') as batch_op:
        batch_op.drop_column('card_reference')
    op.drop_table('subscriptions')
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claim')
    with op.batch_alter_table('orders') as batch_op:
        for column in reversed(_ORDER_COLUMNS):
            batch_op.drop_column(column.name)
    op.drop_index('ix_deadlines_request_id', 'deadlines')
    op.drop_index('ix_deadlines_state_due_at', 'deadlines')
    op.drop_table('deadlines')
