"""A change to one request inside one transaction: what the rules' actions and the ``#commands`` act with."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from gateway.helpdesk import Author
from gateway.mail.parse import Attachment
from gateway.models import Comment, Request
from gateway.notify import Mailer
from gateway.settings import Settings


@dataclass
class RequestChange:
    session: Session
    settings: Settings
    mailer: Mailer
    request: Request
    author: Author  # who wrote the mail that makes the change
    comment: Comment | None = None  # the comment it made, if any
    text: str = ""  # the mail's text after the command lines (a command that takes it: #quote, #deliver)
    attachments: tuple[Attachment, ...] = ()  # the mail's files (#deliver sends them)
    stopped: bool = False  # a rule said stop: no later rule of this event runs
