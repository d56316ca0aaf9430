"""Reply tokens: ``support+TOKEN@domain`` names one participant of one request, signed.

A token is lowercase base32 of (request id, participant id, truncated HMAC-SHA256),
the design Gitea uses for its incoming mail: it survives mail servers that lowercase
local parts, cannot be guessed or edited, and needs no table to look up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

_MAC_BYTES = 10
_ID_BYTES = 5  # up to ~10^12 requests and participants


@dataclass(frozen=True)
class ReplyToken:
    request_id: int
    participant_id: int


def _mac(secret_key: str, payload: bytes) -> bytes:
    return hmac.new(secret_key.encode(), b"reply:" + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def mint_reply_token(secret_key: str, request_id: int, participant_id: int) -> str:
    """A token of at most 32 characters, ``[a-z2-7]`` only."""
    payload = request_id.to_bytes(_ID_BYTES, "big") + participant_id.to_bytes(_ID_BYTES, "big")
    raw = payload + _mac(secret_key, payload)
    return base64.b32encode(raw).decode().rstrip("=").lower()


def verify_reply_token(secret_key: str, token: str) -> ReplyToken | None:
    """The request and participant a token names, or None when it is malformed or forged."""
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
    if not hmac.compare_digest(mac, _mac(secret_key, payload)):
        return None
    return ReplyToken(int.from_bytes(payload[:_ID_BYTES], "big"), int.from_bytes(payload[_ID_BYTES:], "big"))


def reply_address(local_part: str, domain: str, token: str) -> str:
    return f"{local_part}+{token}@{domain}"
