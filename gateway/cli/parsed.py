"""What ``gateway parse --json`` prints of a message (CONTRACT §6): the parse, and the commands its reply
carries. Light: it loads no database code."""

from __future__ import annotations

from typing import Any

from gateway.commands.grammar import split_commands
from gateway.mail.parse import ParsedMail


def parsed_json(parsed: ParsedMail) -> dict[str, Any]:
    commands, _rest = split_commands(parsed.reply_text, parsed.own_reply_text)
    return {
        "from": parsed.sender.as_json() if parsed.sender else None,
        "to": [a.as_json() for a in parsed.to],
        "cc": [a.as_json() for a in parsed.cc],
        "subject": parsed.subject,
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "references": parsed.references,
        "date": parsed.date.isoformat() if parsed.date else None,
        "text": parsed.text,
        "reply_text": parsed.reply_text,
        "html": parsed.html,
        "attachments": [a.as_json() for a in parsed.attachments],
        "auto": parsed.auto,
        "auto_reason": parsed.classification.reason,
        "delivery": delivery.as_json() if (delivery := parsed.classification.delivery) else None,
        "feedback_report": parsed.classification.feedback_report,
        "tokens": parsed.tokens(),
        "commands": [{"name": c.name, "args": c.args} for c in commands],
        "defects": parsed.defects,
        "forwarded": {"from": {"address": original.address, "name": original.name}, "subject": original.subject,
                      "text": original.text, "note": original.note, "attached": original.attached}
        if (original := parsed.forwarded) is not None else None,
    }
