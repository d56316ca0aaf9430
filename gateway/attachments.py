"""Attachments stored once by SHA-256 under ``<data>/attachments``, whatever mail carried them."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.mail.parse import Attachment
from gateway.models import Comment, CommentAttachment


def attachment_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "attachments" / sha256[:2] / sha256


def keep_attachments(data_dir: Path, comment: Comment, attachments: list[Attachment]) -> None:
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
