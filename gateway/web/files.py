"""``GET /files/{token}``: one file of a comment, from the link a mail carries instead of the file when
a comment's files were too large to attach (``attachments.travelling``).

The token is the only key: it names one stored file and the hour it stops working, signed with the
site's secret. A forged or unknown one is ``404``, an expired one ``410``; there is no listing. The file
is always a download (``Content-Disposition: attachment``, no sniffing), never a page of this site.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from gateway.attachments import attachment_path
from gateway.clock import utcnow
from gateway.models import CommentAttachment
from gateway.tokens import verify_file_token
from gateway.web.pages import PAGE_HEADERS
from gateway.web.state import context_of


def download(request: Request) -> Response:
    """``GET /files/{token}`` (and HEAD)."""
    context = context_of(request)
    named = verify_file_token(context.settings.secret_key, request.path_params["token"])
    if named is None:
        return PlainTextResponse("404 no such file", status_code=404, headers=PAGE_HEADERS)
    if named.expires_at <= utcnow():
        return PlainTextResponse("410 this link has expired: ask for the file again by replying to the mail",
                                 status_code=410, headers=PAGE_HEADERS)
    with context.sessions() as session:
        stored = session.get(CommentAttachment, named.attachment_id)
    path = attachment_path(context.settings.data_dir, stored.sha256) if stored is not None else None
    if stored is None or path is None or not path.exists():
        return PlainTextResponse("404 no such file", status_code=404, headers=PAGE_HEADERS)
    disposition = f"attachment; filename*=UTF-8''{quote(stored.filename, safe='')}"
    return FileResponse(path, media_type=stored.content_type or "application/octet-stream",
                        headers={**PAGE_HEADERS, "Content-Disposition": disposition})
