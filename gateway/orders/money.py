"""Amounts as exact decimals: read from a command line or JSON, written as ``"450.00"``."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
LARGEST = Decimal("9999999999.99")  # what a Numeric(12, 2) column holds
_AMOUNT = re.compile(r"^\d{1,10}(?:[.,]\d{1,2})?$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


def parse_amount(text: str) -> Decimal | None:
    """``450``, ``450.5`` or ``450,50`` as ``Decimal("450.50")``; None when it is not such an amount."""
    text = text.strip()
    if not _AMOUNT.match(text):
        return None
    try:
        return Decimal(text.replace(",", ".")).quantize(CENT)
    except InvalidOperation:
        return None


def amount_of(value: object) -> Decimal | None:
    """A JSON amount: ``"19.90"``, ``19`` or a ``Decimal`` (``json.loads(..., parse_float=Decimal)``).

    A float is refused: it is not exact.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return parse_amount(str(value)) if value >= 0 else None  # past the context's precision: not an amount
    if isinstance(value, Decimal):
        return parse_amount(str(value)) if value.is_finite() else None
    if isinstance(value, str):
        return parse_amount(value)
    return None


def is_currency(text: str) -> bool:
    return bool(_CURRENCY.match(text))


def cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_amount(amount: Decimal) -> str:
    """Always two decimals, never a float: ``"450.00"``."""
    return str(amount.quantize(CENT, rounding=ROUND_HALF_UP))
