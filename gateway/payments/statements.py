"""Bank statements as credits: ISO 20022 CAMT.053 (what European banks export) and a plain CSV.

CAMT.053 is read with ``pycamt`` (lxml, entities off, no network: an XML file from outside cannot
reach into the machine). A CSV has the columns ``date,amount,currency,reference[,entry_id]``, with
or without that header line. Only booked credits come out: debits, reversals and pending entries are
not money received. Each credit has the bank's entry id, which makes a statement imported twice
record each payment once; a CSV line without one gets the hash of its fields.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pycamt.parser import Camt053Parser


class StatementError(ValueError):
    """The file is not a statement this reader knows; the message says where and why."""


@dataclass(frozen=True)
class Credit:
    entry_id: str
    date: str
    amount: Decimal
    currency: str
    reference: str  # the remittance information the payer wrote
    line: int  # where it is in the file (the entry's position for CAMT.053), for the report


def read_statement(data: bytes) -> list[Credit]:
    """The credits of a CAMT.053 document (it starts with ``<``) or of a CSV file."""
    return _camt(data) if data.lstrip()[:1] == b"<" else _csv(data)


def _amount(text: str, where: str) -> Decimal:
    try:
        amount = Decimal(text.strip().replace(",", "."))
    except InvalidOperation as error:
        raise StatementError(f"{where}: {text!r} is not an amount") from error
    if not amount.is_finite():
        raise StatementError(f"{where}: {text!r} is not an amount")
    return amount.quantize(Decimal("0.01"))


def _camt(data: bytes) -> list[Credit]:
    try:
        entries = Camt053Parser(data).get_transactions()
    except Exception as error:  # lxml's and pycamt's errors alike: the file is not one we read
        raise StatementError(f"not a CAMT.053 statement: {error}") from error
    credits = []
    for position, entry in enumerate(entries, start=1):
        if entry.get("CreditDebitIndicator") != "CRDT" or str(entry.get("ReversalIndicator")).lower() == "true":
            continue
        if entry.get("Status") not in (None, "BOOK"):
            continue
        reference = entry.get("RemittanceInformationFull") or entry.get("AdditionalEntryInformation") or ""
        bank_id = entry.get("TransactionID") or ""
        detail = entry.get("EndToEndId") or ""
        entry_id = f"{bank_id}/{detail}" if bank_id and detail and detail != "NOTPROVIDED" else bank_id
        amount = _amount(str(entry.get("Amount") or ""), f"entry {position}")
        entry_id = entry_id or _hash(str(entry.get("BookingDate")), str(amount), reference)
        credits.append(Credit(entry_id, str(entry.get("BookingDate") or ""), amount,
                              str(entry.get("Currency") or ""), " ".join(reference.split()), position))
    return credits


def _csv(data: bytes) -> list[Credit]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252")
    credits = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        if number == 1 and row[0].strip().lower() == "date":
            continue
        if len(row) < 4:
            raise StatementError(f"line {number}: {len(row)} columns; a line is date,amount,currency,reference"
                                 "[,entry_id]")
        date, amount_text, currency, reference = (cell.strip() for cell in row[:4])
        amount = _amount(amount_text, f"line {number}")
        if amount <= 0:
            continue
        entry_id = row[4].strip() if len(row) > 4 and row[4].strip() else _hash(date, str(amount), currency, reference)
        credits.append(Credit(entry_id, date, amount, currency.upper(), reference, number))
    return credits


def _hash(*fields: str) -> str:
    return "sha256:" + hashlib.sha256("\x1f".join(fields).encode()).hexdigest()[:32]
