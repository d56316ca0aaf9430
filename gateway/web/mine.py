"""``GET /me/{token}``: a customer's own page (``orders.customer_page``). It only reads; a forged,
unknown or revoked link is ``404``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse

from gateway.orders.customer_page import customer_view
from gateway.web.i18n import browser_locale
from gateway.web.pages import render_page
from gateway.web.state import context_of


def show(request: Request) -> HTMLResponse:
    """``GET /me/{token}`` (and HEAD)."""
    context = context_of(request)
    with context.sessions() as session:  # closed without a commit: looking never changes anything
        view = customer_view(session, context.settings, request.path_params["token"])
    if view is None:
        return render_page(context.settings, "order_problem", browser_locale(request, context.settings.locale), 404,
                           key="order_forged", view=None)
    return render_page(context.settings, "mine", view.locale, view=view)
