"""A real browser opens the quote link from the mail, accepts, and sees the outcome.

Debian's ``chromium`` driven by Playwright for Python (never ``playwright install``: it
downloads a browser). Screenshots land in ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Gateway
from test_orders_in_time import CUSTOMER, FAKE_CARD, MARKETPLACE, confirmed_order, page_link, start_market
from test_orders_in_time import answer as answer_as_alice
from test_quote_page import ALICE, answer, order_with_quote, quote_statuses, start_shop
from test_templates import MAILS, mail_context

from gateway.outbound.render import render_mail

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    running = start_shop(tmp_path / "home")
    yield running
    if running.process is not None:
        assert running.stop() == 0


def test_a_customer_accepts_the_quote_in_a_real_browser_on_a_phone(shop: Gateway, browser: Any) -> None:
    _, link = order_with_quote(shop, "#quote\n2 x Page supplémentaire 150\n1 x Logo 120")
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page.goto(f"http://127.0.0.1:{shop.http_port}{link}")
    assert "420,00" in page.inner_text(".amount")
    assert page.locator("button.accept").is_visible() and page.locator("button.decline").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    page.screenshot(path=str(ARTIFACTS / "quote-open-phone.png"), full_page=True)

    page.click("button.accept")
    page.wait_for_url(f"**{link}")
    assert "Devis accepté" in page.inner_text("main")
    assert page.locator("button").count() == 0
    page.screenshot(path=str(ARTIFACTS / "quote-accepted-phone.png"), full_page=True)
    page.close()

    shop.wait_idle()
    assert quote_statuses(shop) == ["accepted"]
    assert "accepted" in str(shop.mails_to(ALICE)[-1]["Subject"])


def test_the_gone_page_reads_well_in_a_browser(shop: Gateway, browser: Any) -> None:
    alert, first = order_with_quote(shop)
    answer(shop, alert, "#quote 500")
    page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    response = page.goto(f"http://127.0.0.1:{shop.http_port}{first}")
    assert response is not None and response.status == 410
    page.screenshot(path=str(ARTIFACTS / "quote-replaced-phone.png"), full_page=True)
    page.click("a.button")
    assert "500,00" in page.inner_text(".amount")
    page.close()


@pytest.fixture
def market(tmp_path: Path) -> Iterator[Gateway]:
    running = start_market(tmp_path / "home", orders_mailbox=MARKETPLACE, sections=FAKE_CARD, moved_clock=False)
    yield running
    if running.process is not None:
        assert running.stop() == 0


def test_a_customer_completes_a_delivered_order_in_a_real_browser_and_a_stale_page_answers_409(
        market: Gateway, browser: Any) -> None:
    number, notice = confirmed_order(market)
    answer_as_alice(market, notice, "#deliver\nVoici votre logo.")
    [delivered] = [m for m in market.mails_to(CUSTOMER) if "livrée" in str(m["Subject"])]
    link = page_link(market, delivered)
    page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    opened = page.goto(link)
    assert opened is not None and opened.status == 200
    assert "Livrée" in page.inner_text("main")
    page.reload()  # a mail scanner or a second look: reading never acts
    assert (market.show(number)["status"], market.show(number)["order"]["review"]) == ("delivered", None)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "order-delivered-phone.png"), full_page=True)
    stale = browser.new_page()
    stale.goto(link)

    page.select_option("#rating", "4")
    page.fill("#review", "Très bien, rapide.")
    page.click("button.accept")
    page.wait_for_url(link)
    assert "Terminée" in page.inner_text("main") and "Très bien, rapide." in page.inner_text("main")
    assert page.locator("button").count() == 0
    assert market.show(number)["order"]["review"] == {"rating": 4, "text": "Très bien, rapide."}

    stale.fill("#revision-reason", "Trop tard ?")
    answer_409 = stale.expect_response(lambda response: response.request.method == "POST")
    with answer_409 as posted:
        stale.click("button.decline >> nth=0")
    assert posted.value.status == 409
    assert "Cette action n'est plus possible" in stale.inner_text("main")
    assert market.show(number)["order"]["revision"] is None
    forged = browser.new_page()
    gone = forged.goto(link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB"))
    assert gone is not None and gone.status == 404, "a forged token names no order"


def test_every_customer_mail_reads_on_a_phone_and_a_desktop_and_in_dark_mode(browser: Any, tmp_path: Path) -> None:
    """Each customer mail's HTML part as a mail client shows it: no sideways scrolling on a phone, the
    dark-mode rules applied; screenshots in ``test-artifacts/mail-*.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport=PHONE, device_scale_factor=2)
    customer_mails = [mail for mail in MAILS if mail.endswith(".customer")]
    assert len(customer_mails) >= 15
    for mail in customer_mails:
        event, audience = mail.split(".")
        html = render_mail(tmp_path, event, audience, "fr", mail_context()).html
        for width, name in ((PHONE["width"], "phone"), (1024, "desktop")):
            page.set_viewport_size({"width": width, "height": 900})
            page.emulate_media(color_scheme="light")
            page.set_content(html)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{mail} scrolls sideways"
            page.screenshot(path=str(ARTIFACTS / f"mail-{event}-{name}.png"), full_page=True)
        page.emulate_media(color_scheme="dark")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 20, 24)", f"{mail} in dark mode: {background}"
    page.close()
