"""Over real HTTP: a POST is answered before its body is read when its link or key is not good, and
a body announced over the route's limit gets 413 without being read."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Gateway, write_home

API_KEY = "shop-key-0123456789"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    running = Gateway(write_home(tmp_path / "home", sections=f'[orders]\napi_key = "{API_KEY}"\n')).start()
    yield running
    if running.process is not None:
        assert running.stop() == 0


def post_head(gw: Gateway, path: str, announced: int, headers: str = "") -> str:
    """POST announcing ``announced`` bytes but sending 1 KB of them: the status line, if the server
    answers without waiting for the rest (it would wait for ever otherwise: the socket times out)."""
    with socket.create_connection(("127.0.0.1", gw.http_port), timeout=10) as client:
        client.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {announced}\r\n"
                        f"Content-Type: application/x-www-form-urlencoded\r\n{headers}\r\n").encode() + b"x" * 1024)
        answer = b""
        while b"\r\n" not in answer:
            data = client.recv(4096)
            if not data:
                break
            answer += data
    return answer.split(b"\r\n", 1)[0].decode()


def test_a_forged_link_is_answered_before_its_50_mb_body_is_read(shop: Gateway) -> None:
    assert post_head(shop, "/quote/forged/decline", 50 * 1024 * 1024).startswith("HTTP/1.1 403")


def test_an_order_announced_over_the_limit_is_refused_without_being_read(shop: Gateway) -> None:
    assert post_head(shop, "/api/orders", 50 * 1024 * 1024).startswith("HTTP/1.1 401"), "the key comes first"
    status = post_head(shop, "/api/orders", 50 * 1024 * 1024, f"Authorization: Bearer {API_KEY}\r\n")
    assert status.startswith("HTTP/1.1 413")
