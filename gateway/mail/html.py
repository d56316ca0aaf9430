"""HTML bodies turned into readable plain text.

HTML-only mail is common (phones, web clients, ticketing tools), and everything
downstream (reply extraction, commands, the comment shown to the team) works on
text. The conversion therefore keeps the structure a reader relies on: one line
per block, blank lines around paragraphs, list bullets, table rows, links as
``text (url)``, and quoted blocks (``<blockquote>``) as ``> `` lines so that the
plain-text reply rules recognise them like any other quote.

Mail clients also mark their quoted history with well-known containers
(Gmail's ``gmail_quote``, Outlook's ``divRplyFwdMsg``, Thunderbird's
``moz-cite-prefix``...). ``html_reply_text`` stops at the first of them, which is
more reliable than any textual rule when the HTML is available.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import unescape

_SKIPPED = frozenset({"script", "style", "head", "title", "template", "noscript", "object", "svg"})
_BLOCKS = frozenset({
    "address", "article", "aside", "body", "center", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "header", "html", "main", "nav", "section",
    "summary", "table", "tbody", "thead", "tfoot", "tr", "caption",
})
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "ul", "ol"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "base", "col", "area", "wbr", "source"})
# Quote containers of the common clients, matched in the id or class attribute
# (``x_`` prefixes from Outlook's web rewriting are covered by the search).
_QUOTE_MARKERS = re.compile(
    r"gmail_quote|yahoo_quoted|moz-cite-prefix|protonmail_quote|divRplyFwdMsg|appendonsend"
    r"|OLK_SRC_BODY_SECTION|mail-editor-reference-message-container|zmail_extra"
    r"|ms-outlook-mobile-reference-message|AppleOriginalContents|WordSection-quote",
    re.I,
)
_MAY_HAVE_QUOTE = re.compile(_QUOTE_MARKERS.pattern + r"|type=[\"']?cite", re.I)
_SPACES = re.compile(r"[ \t\n\r\f\v\u00a0]+")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\ufeff\u00ad"), None)
_LINK_SCHEMES = ("http://", "https://", "ftp://")
# A regex tokenizer: several times faster than html.parser, and as forgiving. Comments,
# declarations and processing instructions are dropped; raw-text elements are skipped whole.
_TOKEN = re.compile(
    r"<!--.*?(?:-->|$)|<![^>]*>|<\?[^>]*>"
    r"|<(/?)([a-zA-Z][^\s/>]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>"
    r"|[^<]+|<",
    re.S,
)
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_RAW_TEXT = frozenset({"script", "style", "textarea", "title", "xmp"})
_RAW_END = {tag: re.compile(rf"</{tag}\s*>", re.I) for tag in _RAW_TEXT}


class _TextWriter:
    """Collects text as lines, one block per line, quoted blocks prefixed with ``>``."""

    def __init__(self, stop_at_quote: bool) -> None:
        self.stop_at_quote = stop_at_quote
        self.found_quote = False
        self.lines: list[str] = []
        self.parts: list[str] = []  # the current line, joined when it ends (no quadratic +=)
        self.has_text = False  # whether the current line holds more than spaces
        self.line_depth = 0
        self.depth = 0  # blockquote nesting
        self.skipping = 0
        self.preformatted = 0
        self.lists: list[int] = []  # per open list: next number, or 0 for bullets
        self.links: list[tuple[str, int, int]] = []  # href, line count and part index at the start
        self.stack: list[str] = []

    # -- output -------------------------------------------------------------
    @property
    def line(self) -> str:
        return "".join(self.parts)

    def newline(self) -> None:
        content = self.line.rstrip()
        prefix = "> " * self.line_depth
        self.lines.append(prefix + content if self.has_text else prefix.rstrip())
        self.parts, self.has_text = [], False
        self.line_depth = self.depth

    def end_block(self) -> None:
        if self.has_text:
            self.newline()
        else:
            self.parts = []
            self.line_depth = self.depth

    def blank_line(self) -> None:
        self.end_block()
        if self.lines and self.lines[-1].strip("> "):
            self.lines.append(">" * self.depth if self.depth else "")

    def write(self, text: str) -> None:
        if not self.has_text:
            self.line_depth = self.depth
            self.has_text = not text.isspace() and text != ""
        self.parts.append(text)

    # -- parser hooks -------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found_quote and self.stop_at_quote:
            return
        if tag in _SKIPPED:
            self.skipping += 1
            return
        if tag == "body":  # a <head> left open must not swallow the body
            self.skipping = 0
        if self.skipping:
            return
        attributes = {name: value or "" for name, value in attrs}
        if self.stop_at_quote and self._is_quote_container(tag, attributes):
            self.found_quote = True
            return
        if tag not in _VOID:
            self.stack.append(tag)
        self._open(tag, attributes)

    def handle_endtag(self, tag: str) -> None:
        if self.found_quote and self.stop_at_quote:
            return
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
            return
        if self.skipping or tag not in self.stack:
            return
        while self.stack:  # close what the author left open inside this element
            open_tag = self.stack.pop()
            self._close(open_tag)
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skipping or (self.found_quote and self.stop_at_quote):
            return
        data = data.translate(_INVISIBLE)
        if self.preformatted:
            parts = data.replace("\r\n", "\n").split("\n")
            for index, part in enumerate(parts):
                if index:
                    self.newline()
                self.write(part)
            return
        text = _SPACES.sub(" ", data)
        if not self.has_text or (self.parts and self.parts[-1].endswith(" ")):
            text = text.lstrip()
        if text:
            self.write(text)

    # -- elements -----------------------------------------------------------
    @staticmethod
    def _is_quote_container(tag: str, attributes: dict[str, str]) -> bool:
        if tag == "blockquote" and attributes.get("type", "").lower() == "cite":
            return True
        marker = attributes.get("id", "") + " " + attributes.get("class", "")
        return bool(marker.strip()) and _QUOTE_MARKERS.search(marker) is not None

    def _open(self, tag: str, attributes: dict[str, str]) -> None:
        if tag == "br":
            self.newline()
        elif tag == "hr":
            self.end_block()
            self.lines.append("> " * self.depth + "---")
        elif tag == "blockquote":
            self.blank_line()
            self.depth += 1
            self.line_depth = self.depth
        elif tag in ("ul", "ol"):
            self.end_block()
            if not self.lists:
                self.blank_line()
            self.lists.append(1 if tag == "ol" else 0)
        elif tag == "li":
            self.end_block()
            indent = "  " * max(0, len(self.lists) - 1)
            if self.lists and self.lists[-1]:
                self.write(f"{indent}{self.lists[-1]}. ")
                self.lists[-1] += 1
            else:
                self.write(f"{indent}- ")
        elif tag in _PARAGRAPHS:
            self.blank_line()
            if tag == "pre":
                self.preformatted += 1
        elif tag in _BLOCKS:
            self.end_block()
        elif tag in ("td", "th"):
            if self.has_text:
                self.write(" ")
        elif tag == "a":
            self.links.append((attributes.get("href", "").strip(), len(self.lines), len(self.parts)))

    def _close(self, tag: str) -> None:
        if tag == "blockquote":
            self.end_block()
            self.depth = max(0, self.depth - 1)
            self.line_depth = self.depth
            self.blank_line()
        elif tag in ("ul", "ol"):
            self.end_block()
            if self.lists:
                self.lists.pop()
            if not self.lists:
                self.blank_line()
        elif tag == "li":
            self.end_block()
        elif tag in _PARAGRAPHS:
            if tag == "pre":
                self.preformatted = max(0, self.preformatted - 1)
            self.blank_line()
        elif tag in _BLOCKS:
            self.end_block()
        elif tag == "a" and self.links:
            self._close_link(*self.links.pop())

    def _close_link(self, href: str, line_count: int, first_part: int) -> None:
        parts = self.parts[first_part:] if line_count == len(self.lines) else self.parts
        label = "".join(parts).strip()
        if href.lower().startswith("mailto:"):
            address = href[7:].split("?")[0]
            if address and label and address.lower() not in label.lower():
                self.write(f" <{address}>")
        elif href.lower().startswith(_LINK_SCHEMES) and label and href.rstrip("/") not in label:
            self.write(f" ({href})")

    def text(self) -> str:
        self.end_block()
        lines = [line.rstrip() for line in self.lines]
        while lines and not lines[-1].strip("> "):
            lines.pop()
        while lines and not lines[0].strip("> "):
            lines.pop(0)
        return "\n".join(lines)


def _attributes(source: str) -> list[tuple[str, str | None]]:
    return [(name.lower(), unescape(value.strip("\"'")) if value else None)
            for name, value in _ATTRIBUTE.findall(source)]


def _convert(html: str, stop_at_quote: bool) -> _TextWriter:
    writer = _TextWriter(stop_at_quote)
    position, length = 0, len(html)
    while position < length:
        token = _TOKEN.match(html, position)
        if token is None:  # cannot happen: the last alternative matches any "<"
            break
        position = token.end()
        name = token.group(2)
        if name is None:
            text = token.group(0)
            if not text.startswith("<") or text == "<":
                writer.handle_data(unescape(text))
            continue
        tag = name.lower()
        if token.group(1):
            writer.handle_endtag(tag)
        elif tag in _RAW_TEXT:
            end = _RAW_END[tag].search(html, position)
            position = end.end() if end else length
        else:
            writer.handle_starttag(tag, _attributes(token.group(3)))
            if token.group(3).rstrip().endswith("/") and tag not in _VOID:
                writer.handle_endtag(tag)
        if writer.found_quote and stop_at_quote:
            break
    return writer


@lru_cache(maxsize=4)
def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body: blocks on their own lines, quotes as ``>`` lines.

    Remembered for the last few bodies: the parser and the classification both read an
    HTML-only mail's text.
    """
    return _convert(html, stop_at_quote=False).text()


def html_reply_text(html: str) -> str | None:
    """The text before the first quote container of a known mail client, or None without one.

    A cheap search comes first: most HTML bodies have no container and never need the parse.
    """
    if not _MAY_HAVE_QUOTE.search(html):
        return None
    writer = _convert(html, stop_at_quote=True)
    return writer.text() if writer.found_quote else None
