"""``gateway check``: a home validated (config, mailboxes, rules, templates) without starting anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError

from gateway.outbound.render import DEFAULTS, environment
from gateway.rules.loader import load_rules
from gateway.settings import ConfigError, Settings


def check_home(settings: Settings) -> dict[str, Any]:
    """Raises ``ConfigError`` or ``RuleFileError`` naming the file, line and reason of the first problem."""
    rules = load_rules(settings.home)
    env = environment(settings.home)
    templates = 0
    for root in (settings.home / "templates", DEFAULTS):
        for path in sorted(root.rglob("*.j2")) if root.is_dir() else []:
            try:
                env.parse(path.read_text(encoding="utf-8"))
            except TemplateSyntaxError as error:
                raise ConfigError(f"{path}:{error.lineno}: {error.message}") from error
            templates += 1
    return {"home": str(settings.home), "mailboxes": [m.address for m in settings.mailboxes],
            "rules": len(rules), "templates": templates, "database": _redacted(settings.db_url),
            "data_dir": str(Path(settings.data_dir))}


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if "@" in rest else url
