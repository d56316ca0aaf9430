"""Money and dates as each reader writes them, by Babel: ``1 500,00 €`` and ``5 janvier 2027`` for a
French reader, ``€1,500.00`` and ``January 5, 2027`` for an English one.

Amounts are kept as ``Decimal`` (or their ``"450.00"`` strings) and times as naive UTC ``datetime``
until the moment a mail or a page is rendered for one reader; these are the template filters that
write them then (``render.environment``, ``web.pages``). Times are shown in UTC, as stored, and say so.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from babel.dates import format_date, format_time
from babel.numbers import format_currency, format_decimal

LOCALES = ("fr", "en")


def _locale(locale: str) -> str:
    return locale if locale in LOCALES else "fr"


def money(amount: Decimal | str | int, currency: str, locale: str) -> str:
    """``1 500,00 €`` / ``€1,500.00``: the amount with its currency, as the reader writes it."""
    return format_currency(Decimal(str(amount)), currency, locale=_locale(locale))


def number(value: Decimal | int | float | str, locale: str) -> str:
    return format_decimal(Decimal(str(value)), locale=_locale(locale))


def day(value: date | datetime | str | None, locale: str) -> str:
    """``5 janvier 2027`` / ``January 5, 2027`` (French writes the first of the month ``1er``)."""
    if value is None or value == "":
        return ""
    when = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    written = format_date(when, format="long", locale=_locale(locale))
    return "1er" + written[1:] if _locale(locale) == "fr" and when.day == 1 else written


def moment(value: datetime | None, locale: str) -> str:
    """``5 janvier 2027 à 14:00 UTC`` / ``January 5, 2027 at 2:00 PM UTC``."""
    if value is None:
        return ""
    at = " à " if _locale(locale) == "fr" else " at "
    return day(value, locale) + at + format_time(value, format="short", locale=_locale(locale)) + " UTC"


def size(count: int, locale: str) -> str:
    """A file's size: ``12,3 Mo`` / ``12.3 MB`` (kilobytes below one megabyte)."""
    megabytes = count / (1024 * 1024)
    unit = ("Mo", "Ko") if _locale(locale) == "fr" else ("MB", "KB")
    if megabytes >= 1:
        return f"{format_decimal(round(megabytes, 1), locale=_locale(locale))}\xa0{unit[0]}"
    return f"{format_decimal(max(1, round(count / 1024)), locale=_locale(locale))}\xa0{unit[1]}"


# The states and roles the team's mails show, in French; English shows the codes themselves, which are the
# words the commands take (``#status in-progress``, ``#expect supplier``).
FRENCH_WORDS = {
    "new": "nouvelle", "in-progress": "en cours", "resolved": "résolue",
    "pending": "en attente", "confirmed": "confirmée", "declined": "refusée", "shipped": "expédiée",
    "delivered": "livrée", "completed": "terminée", "cancelled": "annulée",
    "unpaid": "non payée", "partial": "payée en partie", "paid": "payée", "refunded": "remboursée",
    "card": "carte", "transfer": "virement", "cash": "espèces", "invoice": "facture",
    "payment:succeeded": "réussi", "payment:declined": "refusé", "payment:failed": "échoué",  # un paiement
    "customer": "client", "coordinator": "équipe", "supplier": "fournisseur",
    "role:coordinator": "coordinateur", "role:requester": "client", "role:customer": "client",
    "role:supplier": "fournisseur", "role:observer": "observateur",  # who someone is on a request
}


def word(code: str, locale: str, of: str = "") -> str:
    """A state or a role as the reader says it: ``en cours`` for a French reader, ``in-progress`` else;
    ``of`` names what the state is of where French words differ (a payment ``refusé``, an order ``refusée``)."""
    if _locale(locale) != "fr":
        return code
    return FRENCH_WORDS.get(f"{of}:{code}") or FRENCH_WORDS.get(code, code)


FILTERS = {"money": money, "number": number, "day": day, "moment": moment, "size": size, "word": word}
