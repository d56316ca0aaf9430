"""Reply tokens: ``support+TOKEN@domain`` names one participant of one request, signed.

A token is lowercase base32 of (request id, participant id, truncated HMAC-SHA256),
the design Gitea uses for its incoming mail: it survives mail servers that lowercase
local parts, cannot be guessed or edited, and needs no table to look up. The HMAC also
covers the mailbox (``support``): a token is valid only at the address it was given
with, never at another mailbox of the site.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

_MAC_BYTES = 10
_ID_BYTES = 5  # up to ~10^12 requests and participants


@dataclass(frozen=True)
class ReplyToken:
    request_id: int
    participant_id: int


def _mac(secret_key: str, mailbox: str, payload: bytes) -> bytes:
    signed = b"reply:" + mailbox.lower().encode() + b":" + payload
    return hmac.new(secret_key.encode(), signed, hashlib.sha256).digest()[:_MAC_BYTES]


def mint_reply_token(secret_key: str, mailbox: str, request_id: int, participant_id: int) -> str:
    """A token of at most 32 characters, ``[a-z2-7]`` only, for ``mailbox+TOKEN@`` (``mailbox``: the
    local part of the request's mailbox address)."""
    payload = request_id.to_bytes(_ID_BYTES, "big") + participant_id.to_bytes(_ID_BYTES, "big")
    raw = payload + _mac(secret_key, mailbox, payload)
    return base64.b32encode(raw).decode().rstrip("=").lower()


def verify_reply_token(secret_key: str, token: str, mailbox: str) -> ReplyToken | None:
    """The request and participant a token names, or None when it is malformed, forged, or was given
    with another mailbox's address."""
    if not token or len(token) > 40:
        return None
    padded = token.upper() + "=" * (-len(token) % 8)
    try:
        raw = base64.b32decode(padded)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 2 * _ID_BYTES + _MAC_BYTES:
        return None
    payload, mac = raw[: 2 * _ID_BYTES], raw[2 * _ID_BYTES :]
    if not hmac.compare_digest(mac, _mac(secret_key, mailbox, payload)):
        return None
    return ReplyToken(int.from_bytes(payload[:_ID_BYTES], "big"), int.from_bytes(payload[_ID_BYTES:], "big"))


def reply_address(local_part: str, domain: str, token: str) -> str:
    return f"{local_part}+{token}@{domain}"


_QUOTE_ID_BYTES = 5
_QUOTE_VERSION_BYTES = 2
_QUOTE_MAC_BYTES = 11  # 5 + 2 + 11 = 18 bytes: 24 characters, no padding bits to edit


@dataclass(frozen=True)
class QuoteToken:
    quote_id: int
    version: int


def _quote_mac(secret_key: str, payload: bytes) -> bytes:
    return hmac.new(secret_key.encode(), b"quote:" + payload, hashlib.sha256).digest()[:_QUOTE_MAC_BYTES]


def _urlsafe_token(payload: bytes, signature: bytes) -> str:
    """A link token: base64url of the payload and its HMAC, without padding (``A-Z a-z 0-9 _ -``)."""
    return base64.urlsafe_b64encode(payload + signature).decode().rstrip("=")


def mint_quote_token(secret_key: str, quote_id: int, version: int) -> str:
    """The token of a quote link: base64url (``A-Z a-z 0-9 _ -``) of the quote, its version and an HMAC."""
    payload = quote_id.to_bytes(_QUOTE_ID_BYTES, "big") + version.to_bytes(_QUOTE_VERSION_BYTES, "big")
    return _urlsafe_token(payload, _quote_mac(secret_key, payload))


def _urlsafe_signed(token: str, size: int, mac_bytes: int, mac: Callable[[bytes], bytes]) -> bytes | None:
    """The payload of a base64url link token of ``size`` bytes and its HMAC, or None: malformed, of
    another length, or not signed with the key."""
    if not token or len(token) > 40 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != size + mac_bytes:
        return None
    payload, signature = raw[:size], raw[size:]
    return payload if hmac.compare_digest(signature, mac(payload)) else None


def verify_quote_token(secret_key: str, token: str) -> QuoteToken | None:
    """The quote and version a link names, or None when it is malformed or its signature is wrong."""
    payload = _urlsafe_signed(token, _QUOTE_ID_BYTES + _QUOTE_VERSION_BYTES, _QUOTE_MAC_BYTES,
                              lambda signed: _quote_mac(secret_key, signed))
    if payload is None:
        return None
    quote_id, version = payload[:_QUOTE_ID_BYTES], payload[_QUOTE_ID_BYTES:]
    return QuoteToken(int.from_bytes(quote_id, "big"), int.from_bytes(version, "big"))


_ORDER_ID_BYTES = 5
_ORDER_MAC_BYTES = 13  # 5 + 13 = 18 bytes: 24 characters


def _order_mac(secret_key: str, payload: bytes) -> bytes:
    return hmac.new(secret_key.encode(), b"order:" + payload, hashlib.sha256).digest()[:_ORDER_MAC_BYTES]


def mint_order_token(secret_key: str, order_number: int) -> str:
    """The token of an order page link (CONTRACT §10): base64url of the order number and an HMAC."""
    payload = order_number.to_bytes(_ORDER_ID_BYTES, "big")
    return _urlsafe_token(payload, _order_mac(secret_key, payload))


def verify_order_token(secret_key: str, token: str) -> int | None:
    """The order number a link names, or None when it is malformed or its signature is wrong."""
    payload = _urlsafe_signed(token, _ORDER_ID_BYTES, _ORDER_MAC_BYTES, lambda signed: _order_mac(secret_key, signed))
    return int.from_bytes(payload, "big") if payload is not None else None


_FILE_ID_BYTES = 6
_FILE_UNTIL_BYTES = 4  # the hour it expires, counted from 1970
_FILE_MAC_BYTES = 14  # 6 + 4 + 14 = 24 bytes: 32 characters


class FileToken(NamedTuple):
    attachment_id: int
    expires_at: datetime  # naive UTC, as every stored time


def _file_mac(secret_key: str, payload: bytes) -> bytes:
    return hmac.new(secret_key.encode(), b"file:" + payload, hashlib.sha256).digest()[:_FILE_MAC_BYTES]


def mint_file_token(secret_key: str, attachment_id: int, expires_at: datetime) -> str:
    """The token of a download link to one stored file of a comment, good until ``expires_at`` (to the hour)."""
    hours = int(expires_at.replace(tzinfo=UTC).timestamp() // 3600)
    payload = attachment_id.to_bytes(_FILE_ID_BYTES, "big") + hours.to_bytes(_FILE_UNTIL_BYTES, "big")
    return _urlsafe_token(payload, _file_mac(secret_key, payload))


def verify_file_token(secret_key: str, token: str) -> FileToken | None:
    """The file and the expiry a download link names, or None when it is malformed or forged."""
    payload = _urlsafe_signed(token, _FILE_ID_BYTES + _FILE_UNTIL_BYTES, _FILE_MAC_BYTES,
                              lambda signed: _file_mac(secret_key, signed))
    if payload is None:
        return None
    hours = int.from_bytes(payload[_FILE_ID_BYTES:], "big")
    return FileToken(int.from_bytes(payload[:_FILE_ID_BYTES], "big"),
                     datetime.fromtimestamp(hours * 3600, UTC).replace(tzinfo=None))


_PERSON_ID_BYTES = 5
_PERSON_KEY_BYTES = 2
_PERSON_MAC_BYTES = 14  # 5 + 2 + 14 = 21 bytes: 28 characters


def _person_mac(secret_key: str, payload: bytes) -> bytes:
    return hmac.new(secret_key.encode(), b"person:" + payload, hashlib.sha256).digest()[:_PERSON_MAC_BYTES]


def mint_person_token(secret_key: str, person_id: int, page_key: int) -> str:
    """The token of a customer's own page link: their account and its current ``page_key``, signed."""
    payload = person_id.to_bytes(_PERSON_ID_BYTES, "big") + (page_key % 65536).to_bytes(_PERSON_KEY_BYTES, "big")
    return _urlsafe_token(payload, _person_mac(secret_key, payload))


def verify_person_token(secret_key: str, token: str) -> tuple[int, int] | None:
    """The account and page key a page link names, or None when it is malformed or forged."""
    payload = _urlsafe_signed(token, _PERSON_ID_BYTES + _PERSON_KEY_BYTES, _PERSON_MAC_BYTES,
                              lambda signed: _person_mac(secret_key, signed))
    if payload is None:
        return None
    return int.from_bytes(payload[:_PERSON_ID_BYTES], "big"), int.from_bytes(payload[_PERSON_ID_BYTES:], "big")
