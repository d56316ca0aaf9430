"""``/quote/{token}``: the customer's quote page and its two buttons (CONTRACT §9).

A GET only reads (mail scanners follow links); each POST decides once inside one
transaction, then answers ``303`` to the page, which shows the outcome. A link that
names no decidable quote answers its 403, 404 or 410 page, for a GET and a POST alike.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway import queues
from gateway.context import Context
from gateway.orders.quote_page import REASON_LIMIT, QuoteDecision, QuoteProblem, QuoteView, decide, quote_for_token
from gateway.transaction import transaction
from gateway.web.bodies import TooLarge, read_form_fields
from gateway.web.i18n import browser_locale
from gateway.web.pages import PAGE_HEADERS, form_too_large, render_page
from gateway.web.state import context_of


def _page(request: Request, context: Context, found: QuoteView | QuoteProblem) -> HTMLResponse:
    settings = context.settings
    if isinstance(found, QuoteProblem):
        locale = found.view.locale if found.view else browser_locale(request, settings.locale)
        return render_page(settings, "problem", locale, found.http_status, problem=found.kind, view=found.view)
    return render_page(settings, "quote", found.locale, view=found, reason_limit=REASON_LIMIT)


def _look_up(context: Context, token: str) -> QuoteView | QuoteProblem:
    with context.sessions() as session:  # closed without a commit: looking never changes anything
        return quote_for_token(session, context.settings, token)


def show(request: Request) -> HTMLResponse:
    """``GET /quote/{token}`` (and HEAD): the quote with its buttons, its outcome, or why there is none."""
    context = context_of(request)
    return _page(request, context, _look_up(context, request.path_params["token"]))


def _decide(context: Context, token: str, accept: bool, reason: str) -> QuoteDecision | QuoteProblem:
    with transaction(context) as (session, mailer):
        outcome = decide(session, context.settings, mailer, token, accept, reason)
    if isinstance(outcome, QuoteDecision) and outcome.changed:
        queues.follow_up_quote(outcome.quote_id)
    return outcome


async def _answer(request: Request, accept: bool, reason: str = "") -> Response:
    context = context_of(request)
    token = request.path_params["token"]
    outcome = await run_in_threadpool(_decide, context, token, accept, reason)
    if isinstance(outcome, QuoteProblem):
        return _page(request, context, outcome)
    return RedirectResponse(request.url_for("quote", token=token).path, status_code=303, headers=PAGE_HEADERS)


async def accept(request: Request) -> Response:
    """``POST /quote/{token}/accept``: needs nothing but the token."""
    return await _answer(request, accept=True)


async def decline(request: Request) -> Response:
    """``POST /quote/{token}/decline`` with an optional form field ``reason``, read only once the token
    names a quote (a forged link is answered without reading what was posted to it)."""
    context = context_of(request)
    found = await run_in_threadpool(_look_up, context, request.path_params["token"])
    if isinstance(found, QuoteProblem):
        return _page(request, context, found)
    try:
        form = await read_form_fields(request)
    except TooLarge:
        return form_too_large()
    return await _answer(request, accept=False, reason=form.get("reason", ""))
