"""Orders posted by a shop (``POST /api/orders``) or created by hand (``gateway orders create``).

``validate_order`` checks a JSON-like payload and returns every field error at once
(the web layer answers them with 422, the CLI with one line); ``create_order`` opens the
request and its order card, and tells the customer and the coordinators, like a mail would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.addresses import BadAddress, addr_spec
from gateway.helpdesk import SUBJECT_LENGTH, Author, add_comment, find_person, join, record_event, upsert_person
from gateway.models import Product, Request
from gateway.notify import Mailer
from gateway.orders.card import OrderError, recompute_total
from gateway.orders.mail import tell_coordinators, tell_customer
from gateway.orders.models import PAYMENT_METHODS, SOURCES, ZERO, Order, OrderItem
from gateway.orders.money import LARGEST, amount_of, format_amount, is_currency
from gateway.orders.timeline import placed
from gateway.outbound.compose import new_message_id
from gateway.settings import Settings

MAX_QUANTITY = 1_000_000
ADDRESS_LENGTH = 500
SHORT_LENGTH = 200  # the String(200) columns: people.name, order_items.offer, orders.card_reference, orders.plan
DESCRIPTION_LENGTH = 1000  # an item's description: one row of the delivery note, on one page

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["customer"],
    "additionalProperties": False,
    "properties": {
        "customer": {"type": "object", "required": ["email"], "additionalProperties": False, "properties": {
            "email": {"type": "string", "format": "email"}, "name": {"type": "string", "maxLength": SHORT_LENGTH},
            "locale": {"type": "string", "enum": ["fr", "en"]}}},
        "subject": {"type": "string", "maxLength": SUBJECT_LENGTH},
        "items": {"type": "array", "items": {
            # unit_price may be left out only for a product priced on quote (``gateway products add --on-quote``)
            "type": "object", "required": ["quantity"], "additionalProperties": False,
            "anyOf": [{"required": ["sku"]}, {"required": ["description"]}], "properties": {
                "sku": {"type": "string"}, "offer": {"type": "string", "maxLength": SHORT_LENGTH},
                "description": {"type": "string", "maxLength": DESCRIPTION_LENGTH},
                "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
                "unit_price": {"type": "string", "pattern": r"^\d{1,10}([.,]\d{1,2})?$"}}}},
        "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
        "discount": {"type": "string", "pattern": r"^\d{1,10}([.,]\d{1,2})?$"},
        "payment_method": {"type": "string", "enum": list(PAYMENT_METHODS)},
        "card_reference": {"type": "string", "maxLength": SHORT_LENGTH},
        "plan": {"type": "string", "maxLength": SHORT_LENGTH},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": "string"},
        "on_quote": {"type": "boolean"},
        "shipping_address": {"type": "string", "maxLength": ADDRESS_LENGTH},
    },
}
_FIELDS = frozenset(ORDER_SCHEMA["properties"])
_CUSTOMER_FIELDS = frozenset(ORDER_SCHEMA["properties"]["customer"]["properties"])
_ITEM_FIELDS = frozenset(ORDER_SCHEMA["properties"]["items"]["items"]["properties"])


@dataclass(frozen=True)
class FieldError:
    field: str  # a path such as ``items[0].unit_price``
    message: str


@dataclass
class DraftItem:
    quantity: int
    unit_price: Decimal
    product: Product | None = None
    offer: str = ""
    description: str = ""


@dataclass
class OrderDraft:
    """A valid order, ready for ``create_order``."""

    email: str
    name: str = ""
    locale: str | None = None
    subject: str = ""
    items: list[DraftItem] = field(default_factory=list)
    currency: str = "EUR"
    discount: Decimal = ZERO
    payment_method: str = "transfer"
    card_reference: str | None = None
    plan: str | None = None
    tags: list[str] = field(default_factory=list)
    note: str = ""
    on_quote: bool = False
    shipping_address: str = ""


def _text(payload: dict[str, Any], key: str, path: str, errors: list[FieldError], limit: int | None = None) -> str:
    """The field's text, stripped; ``limit``: its schema's maxLength, counted as sent (spaces included)."""
    value = payload.get(key, "")
    if not isinstance(value, str):
        errors.append(FieldError(path, "must be a string"))
        return ""
    if limit is not None and len(value) > limit:  # refused, and still read: no second error about it
        errors.append(FieldError(path, f"at most {limit} characters"))
    if "\x00" in value:  # PostgreSQL refuses it in a text column: a 422 naming the field, not a 500
        errors.append(FieldError(path, "must not contain a NUL character"))
        return ""
    return value.strip()


def _customer(session: Session, value: object, draft: OrderDraft, errors: list[FieldError]) -> None:
    if not isinstance(value, dict):
        errors.append(FieldError("customer", "required: an object with at least an email"))
        return
    errors.extend(FieldError(f"customer.{key}", "unknown field") for key in value if key not in _CUSTOMER_FIELDS)
    email = value.get("email")
    try:
        draft.email = addr_spec(email if isinstance(email, str) else "")
    except BadAddress as error:
        errors.append(FieldError("customer.email", f"required: {error}"))
    draft.name = _text(value, "name", "customer.name", errors, SHORT_LENGTH)
    locale = value.get("locale")
    if locale is not None and locale not in ("fr", "en"):
        errors.append(FieldError("customer.locale", "must be fr or en"))
    draft.locale = locale if locale in ("fr", "en") else None


def _items(session: Session, value: object, draft: OrderDraft, errors: list[FieldError]) -> None:
    if not isinstance(value, list):
        errors.append(FieldError("items", "must be a list of items"))
        return
    for index, raw in enumerate(value):
        path = f"items[{index}]"
        if not isinstance(raw, dict):
            errors.append(FieldError(path, "must be an object with quantity and unit_price"))
            continue
        errors.extend(FieldError(f"{path}.{key}", "unknown field") for key in raw if key not in _ITEM_FIELDS)
        quantity = raw.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
            errors.append(FieldError(f"{path}.quantity", f"required: a whole number from 1 to {MAX_QUANTITY}"))
            quantity = None
        product = None
        sku = _text(raw, "sku", f"{path}.sku", errors)
        if sku:
            product = session.scalars(select(Product).where(Product.sku == sku)).first()
            if product is None:
                errors.append(FieldError(f"{path}.sku", f"no product with SKU {sku}"))
        price = amount_of(raw.get("unit_price"))
        if price is None and "unit_price" not in raw and product is not None and product.on_quote:
            price, draft.on_quote = ZERO, True  # priced on quote: the order waits for one
        if price is None:
            errors.append(FieldError(f"{path}.unit_price", 'required: an amount as a string such as "19.90"'))
        description = _text(raw, "description", f"{path}.description", errors, DESCRIPTION_LENGTH)
        offer = _text(raw, "offer", f"{path}.offer", errors, SHORT_LENGTH)
        if not sku and not description:
            errors.append(FieldError(path, "needs a sku or a description"))
        if quantity is not None and price is not None and quantity * price > LARGEST:
            errors.append(FieldError(path, f"quantity x unit_price exceeds the largest amount, {LARGEST}"))
        elif quantity is not None and price is not None:
            draft.items.append(DraftItem(quantity, price, product, offer, description))


def validate_order(session: Session, settings: Settings, payload: object) -> OrderDraft | list[FieldError]:
    """An ``OrderDraft``, or every field error of the payload (nothing is stored either way)."""
    if not isinstance(payload, dict):
        return [FieldError("", "the order must be a JSON object")]
    errors = [FieldError(key, "unknown field") for key in payload if key not in _FIELDS]
    draft = OrderDraft(email="", currency=settings.currency, payment_method=settings.default_payment_method)
    _customer(session, payload.get("customer"), draft, errors)
    _items(session, payload.get("items", []), draft, errors)
    draft.subject = _text(payload, "subject", "subject", errors, SUBJECT_LENGTH)
    draft.note = _text(payload, "note", "note", errors)
    draft.shipping_address = _text(payload, "shipping_address", "shipping_address", errors, ADDRESS_LENGTH)
    currency = payload.get("currency", settings.currency)
    if not isinstance(currency, str) or not is_currency(currency):
        errors.append(FieldError("currency", "must be a currency code such as EUR"))
    else:
        draft.currency = currency.upper()
    if "discount" in payload:
        discount = amount_of(payload["discount"])
        if discount is None:
            errors.append(FieldError("discount", 'must be an amount as a string such as "5.00"'))
        draft.discount = discount or ZERO
    method = payload.get("payment_method", draft.payment_method)
    if method not in PAYMENT_METHODS:
        errors.append(FieldError("payment_method", f"must be one of {', '.join(PAYMENT_METHODS)}"))
    elif method == "invoice":
        person = find_person(session, draft.email) if draft.email else None
        if person is None or not person.invoice_enabled:
            errors.append(FieldError("payment_method", "invoice payment is not enabled for this customer"))
    draft.payment_method = method if isinstance(method, str) else draft.payment_method
    draft.card_reference = _text(payload, "card_reference", "card_reference", errors, SHORT_LENGTH) or None
    draft.plan = _text(payload, "plan", "plan", errors, SHORT_LENGTH) or None
    tags = payload.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) and tag.strip() for tag in tags):
        errors.append(FieldError("tags", "must be a list of non-empty strings"))
    else:
        draft.tags = [tag.strip() for tag in tags]
    on_quote = payload.get("on_quote", False)
    if not isinstance(on_quote, bool):
        errors.append(FieldError("on_quote", "must be true or false"))
    draft.on_quote = draft.on_quote or on_quote is True
    if sum((item.quantity * item.unit_price for item in draft.items), ZERO) > LARGEST:
        errors.append(FieldError("items", f"the items add up to more than the largest amount, {LARGEST}"))
    if not draft.items and not draft.on_quote and "items" not in [e.field.split("[")[0] for e in errors]:
        errors.append(FieldError("items", "at least one item, unless the order is on quote (\"on_quote\": true)"))
    return errors or draft


def _summary(draft: OrderDraft, currency: str, total: Decimal) -> str:
    lines = [f"{item.quantity} x {item.description or (item.product.name if item.product else item.offer)}"
             f"{f' ({item.offer})' if item.offer else ''} {format_amount(item.unit_price)} {currency}"
             for item in draft.items]
    if draft.discount:
        lines.append(f"discount -{format_amount(draft.discount)} {currency}")
    lines.append(f"total {format_amount(total)} {currency}" if draft.items else "on quote")
    return "\n".join(lines + ([f"\n{draft.note}"] if draft.note else []))


def create_order(session: Session, settings: Settings, mailer: Mailer, draft: OrderDraft,
                 source: str = "api") -> Order:
    """Open the order request and its card, then mail the customer a confirmation and the coordinators a notice."""
    if source not in SOURCES:
        raise ValueError(f"unknown order source {source!r}")
    mailbox = next((m for m in settings.mailboxes if m.kind == "orders"), None)
    if mailbox is None:
        raise OrderError("no orders mailbox in the configuration: add a [[mailboxes]] with kind = \"orders\"")
    customer = upsert_person(session, draft.email, name=draft.name or None, locale=draft.locale)
    request = Request(kind="order", mailbox=mailbox.address, status="pending",
                      subject=draft.subject or f"Order from {draft.name or draft.email}",
                      root_message_id=new_message_id(settings), expected_response="coordinator")
    session.add(request)
    session.flush()
    requester = join(session, request, customer.email, role="requester", name=customer.name, person=customer)
    order = Order(request_id=request.id, request=request, customer=customer, currency=draft.currency,
                  discount=draft.discount, payment_method=draft.payment_method, payment_status="unpaid",
                  card_reference=draft.card_reference, plan=draft.plan, tags=list(draft.tags), on_quote=draft.on_quote,
                  source=source, amount_paid=ZERO, created_at=request.created_at,
                  shipping_address=draft.shipping_address,
                  items=[OrderItem(position=index, product=item.product, offer=item.offer,
                                   description=item.description, quantity=item.quantity, unit_price=item.unit_price)
                         for index, item in enumerate(draft.items)])
    recompute_total(order)
    session.add(order)
    add_comment(session, request, Author(customer.email, "requester", requester),
                _summary(draft, order.currency, order.total), visibility="public",
                source="web" if source == "api" else "system")
    record_event(request, "order", f"order #{request.id} created ({source})")
    session.flush()
    placed(session, settings, order)
    tell_customer(mailer, order, "order_received", {})
    tell_coordinators(mailer, order, "order_new", {"source": source})
    return order
