"""Order tables (DESIGN "Orders"); imported by the migrations' environment with ``gateway.models``.

An order is one ``Request`` of kind ``order`` plus its order card: the request's id is
the order number and the request's ``status`` is the order status. Amounts are exact
decimals (``Numeric(12, 2)``), always with their currency.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.clock import utcnow
from gateway.models import Base, Person, Product, Request

PAYMENT_METHODS = ("card", "transfer", "cash", "invoice")
SOURCES = ("mail", "api", "manual")
Money = Numeric(12, 2, asdecimal=True)
ZERO = Decimal("0.00")


class Order(Base):
    """The order card of one order request."""

    __tablename__ = "orders"
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    currency: Mapped[str] = mapped_column(String(3))
    discount: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    total: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    amount_paid: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    payment_method: Mapped[str] = mapped_column(String(10), default="transfer")
    payment_status: Mapped[str] = mapped_column(String(10), default="unpaid")
    card_reference: Mapped[str | None] = mapped_column(String(200), default=None)
    plan: Mapped[str | None] = mapped_column(String(200), default=None)
    plan_starts_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)  # #plan NAME from DATE
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    internal_comment: Mapped[str] = mapped_column(Text, default="")
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
    pipeline: Mapped[str] = mapped_column(String(100), default="orders")
    stage: Mapped[str] = mapped_column(String(100), default="new")
    on_quote: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(10), default="mail")
    tracking: Mapped[str | None] = mapped_column(String(200), default=None)
    shipping_address: Mapped[str] = mapped_column(Text, default="")  # lines, as the shop or #address gave them
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    # In time (CONTRACT §10): the delivery deadline, the review the customer left, what they asked.
    due_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    review_rating: Mapped[int | None] = mapped_column(Integer, default=None)
    review_text: Mapped[str | None] = mapped_column(Text, default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    cancellation_status: Mapped[str | None] = mapped_column(String(10), default=None)  # requested, accepted, refused
    cancellation_by: Mapped[str | None] = mapped_column(String(320), default=None)
    cancellation_reason: Mapped[str | None] = mapped_column(Text, default=None)
    revision_status: Mapped[str | None] = mapped_column(String(10), default=None)  # requested, accepted, refused
    revision_reason: Mapped[str | None] = mapped_column(Text, default=None)

    request: Mapped[Request] = relationship()
    customer: Mapped[Person] = relationship(foreign_keys=[customer_id])
    manager: Mapped[Person | None] = relationship(foreign_keys=[manager_id])
    items: Mapped[list[OrderItem]] = relationship(order_by="OrderItem.position", cascade="all, delete-orphan")
    quotes: Mapped[list[Quote]] = relationship(
        order_by="Quote.version", cascade="all, delete-orphan", back_populates="order")
    payments: Mapped[list[Payment]] = relationship(order_by="Payment.id", cascade="all, delete-orphan")
    subscription: Mapped[Subscription | None] = relationship(back_populates="order", uselist=False)

    @property
    def number(self) -> int:
        return self.request_id

    @property
    def amount_due(self) -> Decimal:
        return max(self.total - self.amount_paid, ZERO)

    @property
    def subscription_id(self) -> int | None:
        """The id of the subscription the order became at ``#confirm`` (with a plan), else None."""
        return self.subscription.id if self.subscription is not None else None

    @property
    def open_quote(self) -> Quote | None:
        return next((quote for quote in self.quotes if quote.status == "open"), None)


class OrderItem(Base):
    """One line of an order: a product (or a free description), an offer, a quantity and a unit price."""

    __tablename__ = "order_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.request_id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), default=None)
    offer: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[Decimal] = mapped_column(Money, default=ZERO)

    product: Mapped[Product | None] = relationship()

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


class Quote(Base):
    """One price proposal sent to the customer; version N of its order, decided once."""

    __tablename__ = "quotes"
    __table_args__ = (UniqueConstraint("order_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.request_id"))
    version: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default="open")
    reason: Mapped[str] = mapped_column(Text, default="")
    author_email: Mapped[str] = mapped_column(String(320), default="")
    valid_until: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    # A decision's consequences (order, mails) are applied after it, once: NULL until then.
    followed_up_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id"), default=None)

    order: Mapped[Order] = relationship(back_populates="quotes")
    items: Mapped[list[QuoteItem]] = relationship(order_by="QuoteItem.position", cascade="all, delete-orphan")
    replaced_by: Mapped[Quote | None] = relationship(remote_side=[id])


class QuoteItem(Base):
    """One line of a quote (``2 x Page supplémentaire 150``)."""

    __tablename__ = "quote_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[Decimal] = mapped_column(Money)

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


class Payment(Base):
    """One payment attempt or record: a charge, a manual payment, a refund."""

    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.request_id"))
    transaction_id: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String(10))
    provider: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10))  # succeeded, declined, failed (a refund: a negative amount)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    comment: Mapped[str] = mapped_column(Text, default="")


class Subscription(Base):
    """An order with a plan, once confirmed (CONTRACT §10): billed every period by the sweep."""

    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.request_id"), unique=True)
    plan: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="scheduled")  # active, payment-failed, inactive
    reason: Mapped[str | None] = mapped_column(String(20), default=None)  # payment-failed, terminated
    current_period_start: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    next_charge_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    next_plan: Mapped[str | None] = mapped_column(String(200), default=None)  # from the next period
    ends_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_charges: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    order: Mapped[Order] = relationship(back_populates="subscription")
