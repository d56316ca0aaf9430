"""``POST /api/orders`` and ``/openapi.json`` over real HTTP, against a running ``gateway serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Gateway, body_text, write_home

from gateway.orders.placing import ORDER_SCHEMA

API_KEY = "shop-key-0123456789"
ALICE = "alice@shop.example"
CUSTOMER = "jean.dupont@client.example"
ORDER = {"customer": {"email": CUSTOMER, "name": "Jean Dupont", "locale": "fr"}, "subject": "Audit SEO",
         "items": [{"description": "Audit SEO", "quantity": 1, "unit_price": "450.00"},
                   {"description": "Rapport imprimé", "quantity": 2, "unit_price": "12.50"}]}


def _open_shop(home: Path) -> Iterator[Gateway]:
    """A gateway whose order API is open to the key ``API_KEY``, with Alice coordinating."""
    running = Gateway(write_home(home, sections=f'[orders]\napi_key = "{API_KEY}"\n')).start()
    running.add_person(ALICE, "coordinator", "en")
    yield running
    if running.process is not None:
        assert running.stop() == 0


def _client(gw: Gateway) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=30,
                        headers={"Authorization": f"Bearer {API_KEY}"})


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    yield from _open_shop(tmp_path / "home")


@pytest.fixture
def api(shop: Gateway) -> Iterator[httpx.Client]:
    with _client(shop) as client:
        yield client


@pytest.fixture(scope="module")
def refusing_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One shop for the many bodies that must be refused with nothing stored (a start of ``gateway serve``
    costs seconds of CPU): each test checks that nothing was stored, so one wrongly accepted fails it, and
    the ones after it too."""
    yield from _open_shop(tmp_path_factory.mktemp("refusing") / "home")


@pytest.fixture
def refusing_api(refusing_shop: Gateway) -> Iterator[httpx.Client]:
    with _client(refusing_shop) as client:
        yield client


def stored(gw: Gateway) -> int:
    return gw.count("SELECT count(*) FROM requests") + gw.count("SELECT count(*) FROM orders")


def fields(answer: httpx.Response) -> set[str]:
    assert answer.status_code == 422, answer.text
    return {error["field"] for error in answer.json()["errors"]}


def test_a_good_order_is_created_and_mails_the_customer_and_the_coordinators(
        shop: Gateway, api: httpx.Client) -> None:
    created = api.post("/api/orders", json=ORDER)
    assert created.status_code == 201, created.text
    summary: dict[str, Any] = created.json()
    assert summary["number"] == 1 and summary["total"] == "475.00" and summary["currency"] == "EUR"
    assert summary["source"] == "api" and summary["customer"] == CUSTOMER
    assert [item["amount"] for item in summary["items"]] == ["450.00", "25.00"]
    shop.wait_idle()
    [confirmation] = shop.mails_to(CUSTOMER)
    assert "n°1" in str(confirmation["Subject"]) and "475,00\xa0€" in body_text(confirmation)
    [notice] = shop.mails_to(ALICE)
    assert "#1" in str(notice["Subject"])
    shown = shop.show(1)
    assert shown["kind"] == "order" and shown["order"]["total"] == "475.00"


def test_an_order_without_or_with_a_wrong_key_is_refused_with_401(
        refusing_shop: Gateway, refusing_api: httpx.Client) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY},
                    {"Authorization": f"Basic {API_KEY}"}, {"Authorization": f"Bearer {API_KEY}x"}):
        refused = refusing_api.post("/api/orders", json=ORDER, headers=headers)
        assert refused.status_code == 401, headers
        assert "Bearer" in refused.json()["error"] and refused.headers["www-authenticate"].startswith("Bearer")
    assert stored(refusing_shop) == 0 and refusing_shop.outbox() == []


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"customer": }', b"\xff\xfe", b"[1, 2",
                                  b'{"customer": {"email": "a@b.example"}, "on_quote": true, "x": NaN}',
                                  b"[" * 100_000, b"1" * 5000])
def test_a_body_that_is_not_json_gets_422_and_nothing_is_stored(
        refusing_shop: Gateway, refusing_api: httpx.Client, body: bytes) -> None:
    answer = refusing_api.post("/api/orders", content=body, headers={"Content-Type": "application/json"})
    assert fields(answer) == {""}
    assert answer.json()["errors"][0]["message"]
    assert stored(refusing_shop) == 0


def test_missing_or_wrong_fields_get_422_naming_each_and_nothing_is_stored(
        refusing_shop: Gateway, refusing_api: httpx.Client) -> None:
    assert fields(refusing_api.post("/api/orders", json={})) >= {"customer", "items"}
    assert fields(refusing_api.post("/api/orders", json=[ORDER])) == {""}
    wrong = {"customer": {"email": "nobody", "phone": "0601"}, "currency": "euros", "colour": "red",
             "items": [{"quantity": 0, "unit_price": "nine"}, {"description": "x", "quantity": 1}]}
    assert fields(refusing_api.post("/api/orders", json=wrong)) >= {
        "customer.email", "customer.phone", "currency", "colour", "items[0].quantity", "items[0].unit_price",
        "items[1].unit_price"}
    floaty = json.dumps({**ORDER, "items": [{"description": "x", "quantity": 1, "unit_price": 19.999}]})
    assert "items[0].unit_price" in fields(refusing_api.post("/api/orders", content=floaty))
    assert stored(refusing_shop) == 0 and refusing_shop.outbox() == []


def test_the_api_is_disabled_with_a_clear_message_when_no_key_is_configured(gateway: Gateway) -> None:
    answer = httpx.post(f"http://127.0.0.1:{gateway.http_port}/api/orders", json=ORDER,
                        headers={"Authorization": "Bearer anything"})
    assert answer.status_code == 503 and "api_key" in answer.json()["error"]
    assert gateway.count("SELECT count(*) FROM requests") == 0


def test_the_openapi_document_describes_the_order_api_with_the_order_schema(refusing_api: httpx.Client) -> None:
    answer = refusing_api.get("/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.")
    assert document["components"]["schemas"]["Order"] == json.loads(json.dumps(ORDER_SCHEMA))
    operation = document["paths"]["/api/orders"]["post"]
    assert set(operation["responses"]) >= {"201", "401", "422"}
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_schemathesis_finds_no_server_error_in_the_order_api(shop: Gateway, api: httpx.Client) -> None:
    """Orders valid by the schema (the domain may still refuse some: a SKU it does not know), then invalid ones."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    base_url = f"http://127.0.0.1:{shop.http_port}"
    operation = schemathesis.openapi.from_url(f"{base_url}/openapi.json")["/api/orders"]["POST"]
    statuses: list[int] = []

    for mode, examples in ((schemathesis.GenerationMode.POSITIVE, 40), (schemathesis.GenerationMode.NEGATIVE, 30)):
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
        @given(case=operation.as_strategy(mode))
        def the_api_holds(case: Any) -> None:
            response = case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"},
                                              excluded_checks=[schemathesis.checks.positive_data_acceptance])
            statuses.append(response.status_code)

        the_api_holds()
    assert 201 in statuses and 422 in statuses and all(status < 500 for status in statuses)
    shop.wait_idle()
    assert shop.count("SELECT count(*) FROM outbox WHERE status = 'failed'") == 0


@pytest.mark.parametrize("email", [
    f"{CUSTOMER}\r\nBcc: evil@attacker.example", f"{CUSTOMER}\r\nBcc:evil@attacker.example",
    f"{CUSTOMER}\r\nSubject:Urgent\r\nContent-Type:text/html\r\n\r\n<a href=http://evil.example>pay</a>",
    f"{CUSTOMER}\nX-Injected:1", f"{CUSTOMER}, evil@attacker.example", f"Jean <{CUSTOMER}>", f"{CUSTOMER}\x00",
    "x" * 300 + "@client.example"])
def test_a_customer_address_that_is_not_one_address_is_refused_and_nothing_is_mailed(
        refusing_shop: Gateway, refusing_api: httpx.Client, email: str) -> None:
    """Header injection through the API: the CRLF payloads once added a Bcc and replaced the whole mail."""
    answer = refusing_api.post("/api/orders", json={**ORDER, "customer": {**ORDER["customer"], "email": email}})
    assert fields(answer) == {"customer.email"}
    assert "is not one address" in answer.text or "at most 254 characters" in answer.text
    refusing_shop.wait_idle()
    assert stored(refusing_shop) == 0 and refusing_shop.outbox() == []
