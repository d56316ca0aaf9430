"""A mail whose commands cannot all apply: nothing of it applies, and its sender is told why.

The error mail names each bad line and carries the original, at most once an hour per
sender for the same error, so a robot or a stuck client cannot make us loop.
"""

from __future__ import annotations

import hashlib

from gateway.helpdesk import find_person, record_event
from gateway.models import AppliedMessage, Request
from gateway.pipeline.message import CommandsRefused, Incoming


def refuse_commands(incoming: Incoming, refused: CommandsRefused) -> str:
    """After the rollback: claim the message again, record the refusal, mail the sender once an hour."""
    session = incoming.session
    session.add(AppliedMessage(mailbox=incoming.mailbox.address, key=incoming.key, inbound_id=incoming.row.id))
    request = session.get(Request, refused.request_id) if refused.request_id else None
    summary = "; ".join(f"{bad.line}: {bad.reason}" for bad in refused.bad)
    reply_to = incoming.mailbox.address
    if request is not None:
        incoming.row.request_id = request.id
        record_event(request, "commands-refused", f"{refused.author}: {summary}")
        participant = next((p for p in request.participants if p.email == refused.author), None)
        if participant is not None:
            reply_to = incoming.mailer.reply_to(request, participant)
    topic = "command-error:" + hashlib.sha256(summary.encode()).hexdigest()[:32]
    decision = f"commands refused from {refused.author}, nothing applied: {summary}"
    if incoming.mailer.recent(refused.author, topic=topic):
        return decision + " (error mail already sent this hour)"
    incoming.mailer.write("command_error", "sender", {"bad": refused.bad, "subject": incoming.parsed.subject,
                                                     "original_attached": True},
                          mailbox=incoming.mailbox.address, recipient=refused.author, reply_to=reply_to,
                          person=find_person(session, refused.author), request=request,
                          auto_submitted="auto-replied", original=incoming.raw, topic=topic)
    return decision
