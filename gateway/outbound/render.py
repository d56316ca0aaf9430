"""Mail and page templates: the home's ``templates/`` first, the built-in defaults second.

A mail is three templates, ``mail/<locale>/<event>.<audience>.{subject,txt,html}.j2``,
so a site can override one language or one part without copying the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

DEFAULTS = Path(__file__).resolve().parent.parent / "defaults" / "templates"
LOCALES = ("fr", "en")


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
    return Environment(loader=loader, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                       keep_trailing_newline=True, auto_reload=False)


@lru_cache(maxsize=256)
def _mail_templates(home: Path, base: str) -> tuple[Template, Template, Template]:
    """A mail's three templates, looked up once per process (Jinja's own lookup, at every mail, was a
    sixth of rendering)."""
    env = environment(home)
    return (env.get_template(f"{base}.subject.j2"), env.get_template(f"{base}.txt.j2"),
            env.get_template(f"{base}.html.j2"))


def render_mail(home: Path, event: str, audience: str, locale: str, context: dict[str, Any]) -> RenderedMail:
    """The subject, text and HTML of one mail, in ``locale`` (French when unknown)."""
    subject, text, html = _mail_templates(home, f"mail/{locale if locale in LOCALES else 'fr'}/{event}.{audience}")
    return RenderedMail(subject=" ".join(subject.render(context).split()), text=text.render(context),
                        html=html.render(context))
