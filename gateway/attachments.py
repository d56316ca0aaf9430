"""Attachments stored once by SHA-256 under ``<data>/attachments``, whatever mail carried them, and
sent on with their comment to whoever may see it: as files up to ``attachments_max_mb`` a mail, as
signed download links past it (``/files/{token}``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import object_session

from gateway.clock import utcnow
from gateway.mail.parse import Attachment
from gateway.models import Comment, CommentAttachment
from gateway.outbound.compose import MailFile
from gateway.settings import Settings
from gateway.tokens import mint_file_token


def attachment_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "attachments" / sha256[:2] / sha256


def keep_attachments(data_dir: Path, comment: Comment, attachments: Sequence[Attachment]) -> None:
    """Write each new file (content-addressed, so a second copy costs nothing) and link it to the comment."""
    for attachment in attachments:
        path = attachment_path(data_dir, attachment.sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_bytes(attachment.payload)
            temporary.rename(path)
        comment.attachments.append(CommentAttachment(
            filename=attachment.filename, content_type=attachment.content_type,
            size=len(attachment.payload), sha256=attachment.sha256))


@dataclass(frozen=True)
class Travelling:
    """What a comment's mails carry of its files: the files themselves, or links to them."""

    files: list[MailFile] = field(default_factory=list)
    links: list[dict[str, object]] = field(default_factory=list)  # filename, size, url
    links_until: datetime | None = None


def travelling(settings: Settings, comment: Comment | None) -> Travelling:
    """The comment's files for its mails: attached while they add up to ``attachments_max_mb`` at most,
    else a download link each, good for ``attachment_link_days``. A stranger's files (an unverified
    comment) are never attached: the shop's own address would hand them on past the team's filters."""
    stored = list(comment.attachments) if comment is not None else []
    if not stored:
        return Travelling()
    assert comment is not None
    if not comment.unverified_sender and sum(a.size for a in stored) <= settings.attachments_max_mb * 1024 * 1024:
        return Travelling(files=[MailFile(a.filename, a.content_type,
                                          attachment_path(settings.data_dir, a.sha256).read_bytes()) for a in stored])
    session = object_session(comment)
    if session is not None:
        session.flush()  # the links name the rows
    until = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(days=settings.attachment_link_days)
    return Travelling(links=[{"filename": a.filename, "size": a.size,
                              "url": f"{settings.base_url}/files/{mint_file_token(settings.secret_key, a.id, until)}"}
                             for a in stored], links_until=until)
