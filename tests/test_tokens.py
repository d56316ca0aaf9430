"""Reply tokens: what the gateway signed verifies; anything else, however close, is refused.

A mutation check once found that a token signed without the key, or a signature covering only the
request, passed every test: each case below fails on one of those mutants.
"""

from __future__ import annotations

import base64

import pytest

from gateway.tokens import (
    ReplyToken,
    mint_order_token,
    mint_quote_token,
    mint_reply_token,
    verify_order_token,
    verify_reply_token,
)

KEY = "k" * 43
TOKEN = mint_reply_token(KEY, "support", 12, 34)


def _edited(token: str, index: int, delta: int = 1) -> str:
    """The token with one byte of its decoded content changed, re-encoded as the gateway encodes."""
    raw = bytearray(base64.b32decode(token.upper() + "=" * (-len(token) % 8)))
    raw[index] = (raw[index] + delta) % 256
    return base64.b32encode(bytes(raw)).decode().rstrip("=").lower()


def test_a_token_names_its_request_and_participant_at_its_own_mailbox() -> None:
    assert TOKEN.isalnum() and TOKEN.islower() and len(TOKEN) <= 40
    assert verify_reply_token(KEY, TOKEN, "support") == ReplyToken(12, 34)
    assert verify_reply_token(KEY, TOKEN, "SUPPORT") == ReplyToken(12, 34), "mail servers may change the case"


@pytest.mark.parametrize("forged, mailbox", [
    (mint_reply_token("another key of the same length, 43 chars..", "support", 12, 34), "support"),
    (mint_reply_token("", "support", 12, 34), "support"),
    (TOKEN, "orders"),
    *[(_edited(TOKEN, index), "support") for index in range(20)],
    (TOKEN[:-1], "support"), (TOKEN[:-8], "support"), (TOKEN + "a", "support"), (TOKEN + "aaaaaaaa", "support"),
    ("a" + TOKEN, "support"), (TOKEN.replace(TOKEN[3], "2" if TOKEN[3] != "2" else "3", 1), "support"),
    ("", "support"), ("0" * 32, "support"), ("a" * 41, "support"),
], ids=["another key", "no key", "another mailbox", *[f"byte {i} edited" for i in range(20)], "one character short",
        "eight characters short", "one more", "eight more", "one before", "a character changed", "empty",
        "not base32", "too long"])
def test_anything_else_is_refused(forged: str, mailbox: str) -> None:
    assert verify_reply_token(KEY, forged, mailbox) is None


def test_the_signature_covers_the_participant_not_only_the_request() -> None:
    """One participant's address must not be turned into another's of the same request."""
    raw = bytearray(base64.b32decode(TOKEN.upper() + "=" * (-len(TOKEN) % 8)))
    other = mint_reply_token(KEY, "support", 12, 35)
    raw[5:10] = (35).to_bytes(5, "big")  # the participant's bytes, the first token's signature
    swapped = base64.b32encode(bytes(raw)).decode().rstrip("=").lower()
    assert swapped != other and verify_reply_token(KEY, swapped, "support") is None


def test_an_order_link_names_its_order_and_nothing_forged_passes() -> None:
    key = "k" * 40
    token = mint_order_token(key, 1234)
    assert verify_order_token(key, token) == 1234
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[4] ^= 1  # another order, its signature kept
    edited = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    for forged in (mint_order_token("another-key-" + "x" * 30, 1234), edited, token[:-1], token + "A", "",
                   token.replace(token[0], "~", 1), mint_quote_token(key, 1234, 1)):
        assert verify_order_token(key, forged) is None, forged
