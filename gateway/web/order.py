"""``/order/{token}``: the customer's order page and its actions (CONTRACT §10).

As on the quote page: a GET only reads, each POST acts once in one transaction and answers ``303``
to the page; a forged or unknown link is ``404``, an action not open now ``409`` with a page that
says why. A form is read only once the token names an order, within ``bodies.FORM_LIMIT``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.context import Context
from gateway.orders.order_page import OrderProblem, OrderView, act, order_for_token
from gateway.transaction import transaction
from gateway.web.bodies import TooLarge, read_form_fields
from gateway.web.i18n import browser_locale
from gateway.web.pages import PAGE_HEADERS, form_too_large, render_page
from gateway.web.state import context_of


def _page(request: Request, context: Context, found: OrderView | OrderProblem) -> HTMLResponse:
    settings = context.settings
    if isinstance(found, OrderProblem):
        locale = found.view.locale if found.view else browser_locale(request, settings.locale)
        key = found.kind if found.kind in ("closed", "reason_needed") else f"order_{found.kind}"
        return render_page(settings, "order_problem", locale, found.http_status, key=key, view=found.view)
    return render_page(settings, "order", found.locale, view=found)


def _look_up(context: Context, token: str) -> OrderView | OrderProblem:
    with context.sessions() as session:  # closed without a commit: looking never changes anything
        found = order_for_token(session, context.settings, token)
        return found if isinstance(found, OrderProblem) else found[1]


def show(request: Request) -> HTMLResponse:
    """``GET /order/{token}`` (and HEAD)."""
    context = context_of(request)
    return _page(request, context, _look_up(context, request.path_params["token"]))


def _act(context: Context, token: str, action: str, rating: int | None, text: str) -> OrderView | OrderProblem:
    with transaction(context) as (session, mailer):
        return act(session, context.settings, mailer, token, action, rating=rating, text=text)


def _rating(value: str | None) -> int | None:
    return int(value) if value in ("1", "2", "3", "4", "5") else None


def _post(action: str, text_field: str, required: bool) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of one action: ``text_field`` is its form field (required for a reason)."""

    async def answer(request: Request) -> Response:
        context = context_of(request)
        token = request.path_params["token"]
        found = await run_in_threadpool(_look_up, context, token)
        if isinstance(found, OrderProblem):
            return _page(request, context, found)
        try:
            form = await read_form_fields(request)
        except TooLarge:
            return form_too_large()
        text = form.get(text_field, "")
        if required and not text.strip():
            return _page(request, context, OrderProblem("reason_needed", 422, found))
        outcome = await run_in_threadpool(_act, context, token, action, _rating(form.get("rating")), text)
        if isinstance(outcome, OrderProblem):
            return _page(request, context, outcome)
        return RedirectResponse(request.url_for("order", token=token).path, status_code=303, headers=PAGE_HEADERS)

    answer.__name__ = f"post_{action}"
    answer.__doc__ = f"``POST /order/{{token}}/{action}``"
    return answer


complete = _post("complete", "review", required=False)
revision = _post("revision", "reason", required=True)
cancel = _post("cancel", "reason", required=True)
