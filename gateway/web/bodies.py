"""Request bodies read with a limit: a POST never costs more memory than its form can need.

Starlette's ``request.body()`` reads whatever the client sends before anyone looks at it: a
large POST to a forged quote link would cost its whole size in memory. Here the announced
``Content-Length`` is refused at once, and a body sent without one (chunked) is refused as soon as
it passes the limit. Each route reads its body only once the token or key in the request is known
to be good.
"""

from __future__ import annotations

from starlette.requests import Request


class TooLarge(Exception):
    """The body is over the route's limit: answer 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or ``TooLarge`` before more than ``limit`` bytes are held."""
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise TooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # where Starlette keeps a body read once: ``request.form()`` parses it from there
    return body


FORM_LIMIT = 64 * 1024  # a page's form holds a reason or a review of at most a few thousand characters


async def read_form_fields(request: Request, limit: int = FORM_LIMIT) -> dict[str, str]:
    """The text fields of a posted form (a file field reads as ""), or ``TooLarge``."""
    await read_body(request, limit)
    return {name: value if isinstance(value, str) else "" for name, value in (await request.form()).items()}
