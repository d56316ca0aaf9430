"""HTML answers: a page template rendered in one locale, with the headers a one-click page needs.

Templates load like mail templates (the home's ``templates/`` first, then the built-in
ones), so a site restyles ``web/base.html.j2`` without touching the package.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse, PlainTextResponse

from gateway.outbound.l10n import day
from gateway.outbound.render import environment
from gateway.settings import Settings
from gateway.web.i18n import strings

# The token is in the URL: no Referer leaks it, no cache keeps it, no frame can overlay the buttons.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def form_too_large() -> PlainTextResponse:
    """The answer to a page's form over ``bodies.FORM_LIMIT``."""
    return PlainTextResponse("413 the form is too large", status_code=413, headers=PAGE_HEADERS)


def render_page(settings: Settings, template: str, locale: str, status_code: int = 200,
                **context: Any) -> HTMLResponse:
    """``web/<template>.html.j2`` in ``locale``, with the site name and the page strings as ``t``."""
    page = environment(settings.home).get_template(f"web/{template}.html.j2")
    html = page.render(locale=locale, t=strings(locale), site_name=settings.site_name,
                       date=lambda value: day(value, locale), **context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
