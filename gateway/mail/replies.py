"""The new text of a reply: quoted history and the signature removed.

Commands are read from the top of this text and the comment posted on a request
is the rest of it (CONTRACT §5), so both the quote and the signature must go,
while nothing the sender actually wrote may be lost. The rules are general, not
tuned per client: a reply is cut at the first *quote start*, which is one of

- an attribution line, possibly wrapped over up to three lines, in any of the
  languages mail clients write it ("On ... wrote:", "Le ... a écrit :",
  "Am ... schrieb ...:", "W dniu ... napisał:", "DATE, NAME <EMAIL>:"...);
- a separator such as "-----Original Message-----" or "Forwarded message";
- an Outlook-style header block ("From: / Sent: / To: / Subject:", in a dozen
  languages), together with the rule or blank lines just above it.

Lines quoted with ``>`` are dropped wherever they are, so inline answers
survive. When the sender wrote nothing above the first quote start (bottom
posting), the attribution and its ``>`` block are skipped and the text below is
the reply. The signature is then cut at a delimiter ("-- ", "__"), a mobile
footer ("Sent from my iPhone", "Envoyé de mon iPhone"...) or a closing
("Regards,", "Cordialement,"...) followed by a short block. When the HTML body
is at hand and holds a known quote container, it is used if the text gave no
answer of its own.
"""

from __future__ import annotations

import re

from gateway.mail.html import html_reply_text

# Verbs that end (or sit inside) an attribution line, in the languages we see.
_VERBS = (
    "wrote", "writes", "a écrit", "écrit", "escribió", "escribio", "ha scritto", "scritto",
    "escreveu", "schrieb", "schreef", "skrev", "kirjoitti", "napisał(a)", "napisała", "napisał",
    "napisal", "pisze", "написал(а)", "написала", "написал", "пишет", "yazdı", "έγραψε", "napsal",
    "napísal", "írta", "scrise", "kirjutas", "rašė", "rakstīja", "wrote on",
)
_CJK_VERBS = ("写道", "寫道", "のメッセージ", "작성")
_VERB_ALTERNATION = "|".join(re.escape(verb).replace(r"\ ", r"\s+") for verb in _VERBS)
_VERB_ENDINGS = tuple(verb.lower() for verb in _VERBS + _CJK_VERBS)
_VERB_INSIDE = re.compile(rf"(?<!\w)(?:{_VERB_ALTERNATION})(?!\w)", re.I)
_INTRO = re.compile(r"^(?:on|le|el|il|in\s+data|em|am|op|w\s+dniu|dnia|den|på|dne|в|在)\s", re.I)
_ADDRESS_THEN_COLON = re.compile(r"@[^\s<>()\[\]]+\s*[>)\]]?\s*[:：]$")
_DIGIT = re.compile(r"\d")
_SENTENCE_END = re.compile(r"[.!?]$")

_SEPARATOR = re.compile(
    r"^[-_=*~\s]*+(?:original\s+message|forwarded\s+message|message\s+d'origine|message\s+transféré"
    r"|oprindelig\s+besked|videresendt\s+besked|ursprüngliche\s+nachricht|weitergeleitete\s+nachricht"
    r"|mensaje\s+original|mensaje\s+reenviado|messaggio\s+originale|messaggio\s+inoltrato"
    r"|oorspronkelijk\s+bericht|origineel\s+bericht|doorgestuurd\s+bericht|ursprungligt\s+meddelande"
    r"|vidarebefordrat\s+meddelande|opprinnelig\s+melding|videresendt\s+melding|alkuperäinen\s+viesti"
    r"|välitetty\s+viesti|wiadomość\s+oryginalna|oryginalna\s+wiadomość|przekazana\s+wiadomość"
    r"|mensagem\s+original|mensagem\s+encaminhada|исходное\s+сообщение|пересылаемое\s+сообщение"
    r"|původní\s+zpráva|eredeti\s+üzenet|原始邮件|转发的邮件|元のメッセージ"
    r"|begin\s+forwarded\s+message|début\s+du\s+message\s+réexpédié|anfang\s+der\s+weitergeleiteten\s+nachricht"
    r"|inicio\s+del\s+mensaje\s+reenviado|inizio\s+messaggio\s+inoltrato|begin\s+doorgestuurd\s+bericht)"
    r"[-_=*~\s:]*$",
    re.I,
)
_FROM_KEYS = (
    "from", "de", "von", "van", "da", "fra", "från", "od", "от", "mittente", "lähettäjä", "feladó",
    "afzender", "remitente", "expéditeur", "gönderen", "发件人", "寄件者", "差出人", "보낸 사람",
)
_OTHER_KEYS = (
    "sent", "date", "to", "cc", "bcc", "subject", "reply-to", "envoyé", "envoyé le", "à", "a", "objet",
    "sujet", "copie à", "répondre à", "gesendet", "datum", "an", "betreff", "kopie", "verzonden",
    "verstuurd", "aan", "onderwerp", "inviato", "data", "oggetto", "sendt", "til", "emne", "dato",
    "skickat", "till", "ämne", "wysłano", "do", "temat", "отправлено", "дата", "кому", "тема", "копия",
    "enviado", "enviada", "para", "asunto", "fecha", "assunto", "lähetetty", "vastaanottaja", "aihe",
    "päivämäärä", "elküldve", "címzett", "tárgy", "发送时间", "收件人", "主题", "日付", "宛先", "件名",
)
_HEADER_LINE = re.compile(
    r"^\s*\*?(" + "|".join(re.escape(k).replace(r"\ ", r"\s+") for k in _FROM_KEYS + _OTHER_KEYS)
    + r")\*?\s*[:：]", re.I)
_FROM_KEY_SET = frozenset(_FROM_KEYS)

_STRICT_DELIMITERS = frozenset({"--", "__"})  # "-- " once lines are right-stripped
_RULE = re.compile(r"^(?:[-_=+*~#]{3,}|[—–]{2,}|={2,}|\+{2,})$")
_MOBILE = re.compile(
    r"^(?:sent\s+(?:from|with|via|using)|get\s+outlook\s+for|envoyé\s+(?:de|depuis|à\s+partir\s+de|avec)"
    r"|télécharger\s+outlook|obtenir\s+outlook|gesendet\s+(?:von|mit|vom)|von\s+meinem\s+\S+.*gesendet"
    r"|holen\s+sie\s+sich\s+outlook|enviado\s+(?:desde|de|do|con)|descargar\s+outlook|inviato\s+da"
    r"|scarica\s+outlook|verzonden\s+(?:vanaf|met|van)|verstuurd\s+(?:vanaf|met|van)|sendt\s+fra"
    r"|skickat\s+från|wysłane\s+z|отправлено\s+(?:с|из)|lähetetty\s+\S+sta|lähetetty\s+\S+lla"
    r"|odesláno\s+z|küldve\s+\S+|trimis\s+de\s+pe)\b",
    re.I,
)
_VALEDICTION = re.compile(
    r"^(?:(?:(?:best|kind|kindest|warm|warmest|with\s+(?:best|kind))\s+)?regards|cheers|best\s+wishes"
    r"|all\s+the\s+best|(?:bien\s+|très\s+)?cordialement|bien\s+à\s+vous|bonne\s+(?:journée|soirée)"
    r"|(?:mit\s+)?(?:freundlichen|besten|herzlichen|viele|liebe|beste)\s+gr(?:ü|ue|u)(?:ß|ss)e?n?|mfg"
    r"|(?:un\s+)?saludos?(?:\s+cordiales)?|atentamente|(?:cordiali|distinti)\s+saluti"
    r"|(?:met\s+)?vriendelijke\s+groet(?:en)?|pozdrawiam|z\s+poważaniem|с\s+уважением|atenciosamente"
    r"|(?:med\s+)?vänliga\s+hälsningar|(?:med\s+)?venlig\s+hilsen|mvh|ystävällisin\s+terveisin)\s*[,.!]?$"
    r"|^best\s*,$",
    re.I,
)
_SIGNATURE_TAIL = 10  # at most this many non-blank lines may follow a weak signature start
# A name signed under a closing ("Best regards," / "Jef"): a few words, no digits, address or link.
_NAME = re.compile(r"^(?:[-–—~]{1,2}|//)?\s?[^\W\d_][\w.'’-]*(?:\s[^\W\d_][\w.'’-]*){0,3}$")
# Marks that clients and tracking add-ons leave where nothing is written: zero-width characters and
# the "ᐧ" (U+1427) a tracking pixel's add-on puts on a line of its own.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad"
_MARK_LINE = re.compile(r"^[\s\u1427" + _INVISIBLE + r"]*$")
_ANY_MARK = re.compile(r"[\u1427" + _INVISIBLE + r"]")


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _cleaned(line: str) -> str:
    return " ".join(line.strip().strip("-*_").split())


def _ends_with_verb(candidate: str) -> bool:
    """A plain suffix test: cheaper than a regex on every line, and candidates are space-normalised."""
    ending = candidate.rstrip(":： ").lower()
    if not ending.endswith(_VERB_ENDINGS):
        return False
    for verb in _VERB_ENDINGS:
        if ending.endswith(verb):
            before = ending[:-len(verb)][-1:]
            if not before.isalnum() or verb in _CJK_VERBS:
                return True
    return False


def _is_attribution(candidate: str) -> bool:
    """Whether ``candidate`` (one or more joined lines) reads as "On DATE, NAME wrote:"."""
    if not 8 <= len(candidate) <= 400:
        return False
    verb_at_end = _ends_with_verb(candidate)
    if not verb_at_end and candidate[-1] not in ":：":
        return False
    dated = _DIGIT.search(candidate) is not None
    introduced = _INTRO.match(candidate) is not None
    if verb_at_end:
        return dated or introduced or "@" in candidate
    if _VERB_INSIDE.search(candidate):
        return dated and (introduced or "@" in candidate)
    return dated and _ADDRESS_THEN_COLON.search(candidate) is not None


def _attribution_length(lines: list[str], start: int) -> int:
    """How many lines (1 to 3) an attribution starting at ``start`` spans, or 0."""
    first = _cleaned(lines[start])
    if not first:
        return 0
    if _is_attribution(first):
        return 1
    if len(first) > 200 or _SENTENCE_END.search(first) or not (_DIGIT.search(first) or _INTRO.match(first)):
        return 0
    joined = first
    for end in range(start + 1, min(start + 3, len(lines))):
        following = _cleaned(lines[end])
        # A ">" may close an address the client wrapped ("<bob@example.com" / ">:"), not open a quote.
        closes_address = joined.count("<") > joined.count(">")
        if not following or (_is_quoted(lines[end]) and not closes_address) or len(following) > 200:
            return 0
        joined = f"{joined} {following}"
        if _is_attribution(joined):
            return end - start + 1
    return 0


def _header_block_length(lines: list[str], start: int) -> int:
    """How many lines an Outlook-style header block starting at ``start`` spans, or 0."""
    match = _HEADER_LINE.match(lines[start])
    if not match:
        return 0
    keys = [match.group(1).lower()]
    end, loose = start + 1, 0
    while end < len(lines) and end - start < 10 and lines[end].strip():
        match = _HEADER_LINE.match(lines[end])
        if match:
            keys.append(match.group(1).lower())
        elif (loose := loose + 1) > 2:
            break
        end += 1
    if not _FROM_KEY_SET.intersection(keys):
        return 0
    addressed = "@" in " ".join(lines[start:end])
    return end - start if len(set(keys)) >= 3 or (len(keys) >= 2 and addressed) else 0


def _quote_start(lines: list[str], start: int) -> tuple[int, int] | None:
    """The first quote start at or after ``start``: (its line, how many lines it spans)."""
    for index in range(start, len(lines)):
        line = lines[index]
        if not line.strip() or _is_quoted(line):
            continue
        if _SEPARATOR.match(line):
            return index, 1
        length = _header_block_length(lines, index) or _attribution_length(lines, index)
        if length:
            return index, length
    return None


def _without_quoted_lines(lines: list[str]) -> list[str]:
    """Drop ``>`` lines, and the blank line a dropped block would leave doubled."""
    kept: list[str] = []
    dropped = False
    for line in lines:
        if _is_quoted(line):
            dropped = True
            continue
        if dropped and not line.strip() and kept and not kept[-1].strip():
            continue
        dropped = False
        kept.append(line)
    return kept


def _is_prose(line: str) -> bool:
    return len(line.split()) >= 6 and _SENTENCE_END.search(line) is not None


def _short_tail(lines: list[str], start: int) -> bool:
    """Whether what follows ``start`` looks like a signature block rather than more message."""
    count = 0
    for line in lines[start + 1:]:
        line = line.strip()
        if not line:
            continue
        count += 1
        if count > _SIGNATURE_TAIL or _RULE.match(line) or _is_prose(line):
            return False
    return True


def _following(lines: list[str], index: int) -> list[str]:
    """The non-blank lines after ``index``."""
    return [line.strip() for line in lines[index + 1:] if line.strip()]


def _is_sign_off(lines: list[str], index: int) -> bool:
    """A closing followed by nothing but one short name ("Best regards," / "//Jef") before the end or a
    signature of its own (a "-- " block, "Sent from my iPhone"): the sender's own words, kept. With more
    under it (a title, a company, a phone), it opens a signature."""
    following: list[str] = []
    for line in _following(lines, index):
        if line in _STRICT_DELIMITERS or _MOBILE.match(line):
            break
        following.append(line)
    return len(following) <= 1 and all(_NAME.match(line) and len(line) <= 40 for line in following)


def _is_signature_start(lines: list[str], index: int) -> bool:
    line = lines[index].strip()
    if line in _STRICT_DELIMITERS:
        return True
    if _MOBILE.match(line):
        return len(line) <= 80 and ", " not in line and not line.endswith(".")
    if _RULE.match(line):
        return (index == 0 or not lines[index - 1].strip()) and _short_tail(lines, index)
    if _VALEDICTION.match(line):
        return (len(line) <= 40 and _short_tail(lines, index) and len(lines) - index <= _SIGNATURE_TAIL
                and not _is_sign_off(lines, index))
    return False


def _without_signature(lines: list[str], at_top: bool = False) -> list[str]:
    """Lines before the signature; ``at_top`` when the lines follow a quote, so may be all signature."""
    seen_content = at_top
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if seen_content and _is_signature_start(lines, index):
            return lines[:index]
        seen_content = True
    return lines


def _quote_block_end(lines: list[str], start: int) -> int:
    """The end of the ``>`` block at ``start``, over blank lines and lines wrapped out of the quote."""
    end = start
    while end < len(lines):
        line = lines[end]
        wrapped = (end > start and _is_quoted(lines[end - 1])
                   and end + 1 < len(lines) and _is_quoted(lines[end + 1]))
        if not (_is_quoted(line) or not line.strip() or wrapped):
            break
        end += 1
    return end


def _trimmed(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _reply_lines(lines: list[str], after_quote: bool = False) -> tuple[list[str], bool]:
    """The lines the sender wrote (signature removed), and whether quoted history was found.

    Above the first quote start is the reply (top posting). An attribution
    followed by a ``>`` block may also have answers below it (bottom or inline
    posting): what follows the block is read the same way. Anything else after a
    quote start (Outlook headers, a forward) is history to its end.
    """
    found = _quote_start(lines, 0)
    if found is None:
        kept = _without_signature(_without_quoted_lines(lines), after_quote)
        return _trimmed(kept), any(_is_quoted(line) for line in lines)
    index, length = found
    head_end = index
    while head_end > 0 and (not lines[head_end - 1].strip() or _RULE.match(lines[head_end - 1].strip())):
        head_end -= 1
    head = _trimmed(_without_signature(_without_quoted_lines(lines[:head_end]), after_quote))
    after = index + length
    while after < len(lines) and not lines[after].strip():
        after += 1
    rest: list[str] = []
    if after < len(lines) and _is_quoted(lines[after]):
        rest, _ = _reply_lines(lines[_quote_block_end(lines, after):], after_quote=True)
    if head and rest:
        return [*head, "", *rest], True
    return head or rest, True


def _split_lines(text: str) -> list[str]:
    """The lines, right-stripped, with the invisible marks at their ends gone (a line of marks only is blank)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if _ANY_MARK.search(text) is None:  # most mail: one search instead of one a line
        return [line.rstrip() for line in lines]
    return ["" if _MARK_LINE.match(line) else _without_marks(line) for line in lines]


def _without_marks(line: str) -> str:
    """A line without the invisible marks at its ends; a trailing "ᐧ" goes too unless it ends a word
    of Canadian syllabics (U+1400-U+167F), the one script where it is a letter."""
    line = line.rstrip().strip(_INVISIBLE).rstrip()
    if line.endswith("\u1427"):
        kept = line.rstrip("\u1427" + _INVISIBLE + " \t\u00a0")
        if not "\u1400" <= kept[-1:] <= "\u167f":
            return kept
    return line


def _reply(text: str) -> tuple[str, bool]:
    lines, quoted = _reply_lines(_split_lines(text))
    return "\n".join(lines), quoted


def extract_reply(text: str, html: str | None = None) -> str:
    """Only what the sender wrote in this message: no quoted history, no signature.

    Never empty when the body has text: a message that is all history (a bare
    forward, say) is returned whole, since then the history is the point.
    """
    reply, quoted = _reply(text)
    if html and not quoted:
        before_quote = html_reply_text(html)
        if before_quote is not None:
            html_reply, _ = _reply(before_quote)
            if html_reply and (not reply or len(html_reply) < len(reply)):
                reply = html_reply
    return reply or "\n".join(_trimmed(_split_lines(text)))
