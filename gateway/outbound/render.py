"""Mail and page templates: the home's ``templates/`` first, the built-in defaults second.

A mail is three templates, ``mail/<locale>/<event>.<audience>.{subject,txt,html}.j2``,
so a site can override one language or one part without copying the rest. The HTML part is set in
one layout for every mail (``mail/layout.html.j2``: the site's name, a readable width, the styles
for buttons and tables, dark mode), whose CSS is then inlined (css-inline) for the mail clients that
read only ``style`` attributes. Every template has ``locale`` and the filters of ``l10n``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup, escape

from gateway.outbound.l10n import FILTERS, LOCALES

DEFAULTS = Path(__file__).resolve().parent.parent / "defaults" / "templates"


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=8)
def environment(home: Path) -> Environment:
    """A home's templates, each read once per process, as its rules are: Jinja's reload check cost a
    ``stat`` of the file at every mail rendered."""
    loader = ChoiceLoader([FileSystemLoader(str(home / "templates")), FileSystemLoader(str(DEFAULTS))])
    env = Environment(loader=loader, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                      keep_trailing_newline=True, auto_reload=False)
    env.filters.update(FILTERS)
    return env


_SPACES = re.compile(r"[ \t\r\n]+")
# The layout's <style> stays too: mail clients that read it apply its dark-mode rules.
_INLINER = css_inline.CSSInliner(keep_style_tags=True)
_SUBJECT, _CONTENT = "gateway-layout-subject-3f9a", "gateway-layout-content-3f9a"
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)


@lru_cache(maxsize=64)
def _frame(home: Path, locale: str, site_name: str) -> tuple[str, str, str]:
    """The layout around every mail's HTML, rendered and inlined once per home, locale and site name:
    its head (the subject left to fill in), its tail, and its CSS, with which each mail's own fragment
    is then inlined alone (less work than the whole page each time). The layout sees only
    ``locale``, ``site_name``, ``subject`` and ``content``."""
    page = environment(home).get_template("mail/layout.html.j2").render(
        locale=locale, site_name=site_name, subject=_SUBJECT, content=Markup(_CONTENT))
    head, tail = _INLINER.inline(page).split(_CONTENT, 1)
    return head, tail, "\n".join(_STYLE.findall(page))


@lru_cache(maxsize=256)
def _mail_templates(home: Path, base: str) -> tuple[Template, Template, Template]:
    """A mail's three templates, looked up once per process rather than by Jinja at every mail."""
    env = environment(home)
    return (env.get_template(f"{base}.subject.j2"), env.get_template(f"{base}.txt.j2"),
            env.get_template(f"{base}.html.j2"))


def render_text(home: Path, event: str, audience: str, locale: str, context: dict[str, Any]) -> str:
    """The text part alone of ``render_mail``."""
    locale = locale if locale in LOCALES else "fr"
    return _mail_templates(home, f"mail/{locale}/{event}.{audience}")[1].render({**context, "locale": locale})


def render_mail(home: Path, event: str, audience: str, locale: str, context: dict[str, Any]) -> RenderedMail:
    """The subject, text and HTML of one mail, in ``locale`` (French when unknown)."""
    locale = locale if locale in LOCALES else "fr"
    subject, text, html = _mail_templates(home, f"mail/{locale}/{event}.{audience}")
    context = {**context, "locale": locale}
    title = _SPACES.sub(" ", subject.render(context)).strip()  # one line; Babel's no-break spaces stay
    return RenderedMail(subject=title, text=text.render(context), html=_html(home, html, locale, context, title))


def render_html(home: Path, event: str, audience: str, locale: str, context: dict[str, Any], title: str) -> str:
    """The HTML part alone of ``render_mail``, its ``<title>`` given (``bench/render.py`` times it)."""
    locale = locale if locale in LOCALES else "fr"
    html = _mail_templates(home, f"mail/{locale}/{event}.{audience}")[2]
    return _html(home, html, locale, {**context, "locale": locale}, title)


def _html(home: Path, html: Template, locale: str, context: dict[str, Any], title: str) -> str:
    """The mail's fragment, its CSS inlined, set in the layout."""
    head, tail, css = _frame(home, locale, str(context.get("site_name", "")))
    fragment = css_inline.inline_fragment(html.render(context), css)
    return head.replace(_SUBJECT, str(escape(title)), 1) + fragment + tail
