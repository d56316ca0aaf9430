"""The quote page in-process: every answer it can give, in French and English, and a site's own templates."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.exceptions import StarletteDeprecationWarning

from gateway.context import Context, open_context
from gateway.helpdesk import open_request, upsert_person
from gateway.models import Outbox
from gateway.orders.card import ensure_order
from gateway.orders.models import Quote
from gateway.orders.quote_page import unfollowed
from gateway.orders.quotes import create_quote, withdraw_quote
from gateway.outbound import l10n
from gateway.service.broker import configure
from gateway.service.tasks import follow_up_quote
from gateway.settings import Mailbox, Settings
from gateway.tokens import mint_quote_token
from gateway.transaction import mailing
from gateway.web.app import create_app
from gateway.web.openapi import openapi_document

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2 than httpx: same client
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ORDERS = Mailbox("orders@shop.example", "orders")
COORDINATOR = "alice@shop.example"


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Context]:
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", secret_key="test-secret", site_name="Boutique Test",
                        mailboxes=(Mailbox("support@shop.example"), ORDERS))
    context = open_context(settings)
    configure(settings)  # the POSTs hand their mails to a stub broker that nobody runs
    yield context
    context.engine.dispose()


@pytest.fixture
def client(context: Context) -> Iterator[TestClient]:
    with TestClient(create_app(context), follow_redirects=False) as client:
        yield client


def quote(context: Context, locale: str = "fr", amount: str = "450", customer: str = "jean@client.example") -> str:
    """A new open quote for a new order of ``customer``; its link's path."""
    with mailing(context) as (session, mailer):
        upsert_person(session, COORDINATOR, role="coordinator")
        person = upsert_person(session, customer, name="Jean Dupont", locale=locale)
        request, _ = open_request(session, ORDERS, "Site vitrine", person, f"<{customer}@x>")
        order = ensure_order(session, request, context.settings)
        made = create_quote(session, context.settings, mailer, order,
                            author=COORDINATOR, amount=Decimal(amount))
        session.flush()
        return f"/quote/{mint_quote_token(context.settings.secret_key, made.id, made.version)}"


def requote(context: Context, amount: str) -> str:
    """Alice quotes order 1 again: the path of the new version."""
    with mailing(context) as (session, mailer):
        order = ensure_order(session, session.scalars(select(Quote)).first().order.request,  # type: ignore[union-attr]
                             context.settings)
        made = create_quote(session, context.settings, mailer, order,
                            author=COORDINATOR, amount=Decimal(amount))
        session.flush()
        return f"/quote/{mint_quote_token(context.settings.secret_key, made.id, made.version)}"


def outbox_rows(context: Context) -> int:
    """Outbox rows written so far, once the decisions waiting for the worker are followed up."""
    with context.sessions() as session:
        waiting = unfollowed(session)
    for quote_id in waiting:
        follow_up_quote(quote_id)  # what the worker does with what the POST enqueued
    with context.sessions() as session:
        return session.scalar(select(func.count(Outbox.id))) or 0


def test_an_open_quote_shows_its_amount_validity_and_two_buttons_in_the_customers_language(
        context: Context, client: TestClient) -> None:
    french, english = quote(context), quote(context, "en", "99.5", "mary@client.example")
    page = client.get(french)
    assert page.status_code == 200 and 'lang="fr"' in page.text
    assert "450,00\xa0€" in page.text and "Accepter le devis" in page.text and "Refuser le devis" in page.text
    assert "Valable jusqu&#39;au" in page.text
    assert f'action="{french}/accept"' in page.text and f'action="{french}/decline"' in page.text
    page = client.get(english, headers={"Accept-Language": "fr"})
    assert 'lang="en"' in page.text and "€99.50" in page.text and "Accept the quote" in page.text
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"


def test_a_post_decides_once_and_redirects_to_the_outcome(context: Context, client: TestClient) -> None:
    path = quote(context)
    mails = outbox_rows(context)
    first = client.post(f"{path}/decline", data={"reason": "  Trop cher  "})
    assert first.status_code == 303 and first.headers["location"] == path
    assert outbox_rows(context) == mails + 1, "the coordinator is told once"
    second = client.post(f"{path}/accept")
    assert second.status_code == 303 and outbox_rows(context) == mails + 1
    page = client.get(path)
    assert "Devis refusé" in page.text and "Trop cher" in page.text and "<form" not in page.text


def test_each_link_that_names_no_decidable_quote_says_why(context: Context, client: TestClient) -> None:
    first = quote(context)
    second = requote(context, "500")
    replaced = client.get(first)
    assert replaced.status_code == 410 and "remplacé" in replaced.text and f'href="{second}"' in replaced.text
    with mailing(context) as (session, mailer):
        order = session.get(Quote, 2).order  # type: ignore[union-attr]
        withdraw_quote(context.settings, mailer, order, COORDINATOR)
    assert client.get(second).status_code == 410 and "retiré" in client.get(second).text
    third = requote(context, "600")
    with context.sessions.begin() as session:
        session.get(Quote, 3).valid_until = datetime(2020, 1, 1)  # type: ignore[union-attr]
    expired = client.get(third)
    assert expired.status_code == 410 and "expiré" in expired.text and "1er janvier 2020" in expired.text
    forged = client.get("/quote/forged", headers={"Accept-Language": "en"})
    assert forged.status_code == 403 and "This link is not valid" in forged.text
    unknown = client.get(f"/quote/{mint_quote_token('test-secret', 77, 1)}")
    assert unknown.status_code == 404 and "Devis introuvable" in unknown.text
    mails = outbox_rows(context)
    assert client.post(f"{third}/accept").status_code == 410
    assert outbox_rows(context) == mails + 1, "an expiry noticed by a click is told to the coordinators"
    assert client.post(f"{third}/accept").status_code == 410
    assert client.post("/quote/forged/decline", data={"reason": "x"}).status_code == 403
    assert outbox_rows(context) == mails + 1


def test_a_site_restyles_the_page_from_its_home(context: Context, client: TestClient) -> None:
    override = context.settings.home / "templates" / "web"
    override.mkdir(parents=True)
    base = (Path(__file__).parents[1] / "gateway/defaults/templates/web/base.html.j2").read_text()
    (override / "base.html.j2").write_text(base.replace("<main>", '<main class="our-own-look">'))
    assert 'class="our-own-look"' in client.get(quote(context)).text


def test_an_oversized_decline_form_is_refused(context: Context, client: TestClient) -> None:
    path = quote(context)
    assert client.post(f"{path}/decline", data={"reason": "x" * 70_000}).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused once past the limit, as it streams
        yield b"reason="
        for _ in range(100):
            yield b"y" * 1024

    streamed = client.post(f"{path}/decline", content=chunks(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413 and streamed.headers["cache-control"] == "no-store"
    assert "Accepter le devis" in client.get(path).text


def test_the_redirect_after_a_decision_carries_the_pages_security_headers(context: Context,
                                                                           client: TestClient) -> None:
    answer = client.post(f"{quote(context)}/accept")
    assert answer.status_code == 303
    assert answer.headers["referrer-policy"] == "no-referrer" and answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_money_and_dates_read_as_each_reader_writes_them() -> None:
    assert l10n.day(datetime(2026, 12, 1), "fr") == "1er décembre 2026"
    assert l10n.day(datetime(2027, 1, 5) + timedelta(hours=5), "fr") == "5 janvier 2027"
    assert l10n.day(datetime(2026, 12, 23), "en") == "December 23, 2026"
    assert l10n.moment(datetime(2027, 1, 5, 14, 0), "fr") == "5 janvier 2027 à 14:00 UTC"
    assert l10n.money("1500.00", "EUR", "fr") == "1\u202f500,00\xa0€"
    assert l10n.money(Decimal("1500"), "EUR", "en") == "€1,500.00"
    assert l10n.money("99.5", "USD", "fr") == "99,50\xa0$US"


def test_the_openapi_document_is_version_3_with_the_bearer_key() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.0")
    assert document["paths"]["/api/orders"]["post"]["security"] == [{"apiKey": []}]
    assert document["components"]["schemas"]["Order"]["required"] == ["customer"]
