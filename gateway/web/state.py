"""What every route reads from the app: the gateway context ``create_app`` gave it."""

from __future__ import annotations

from typing import cast

from starlette.requests import Request

from gateway.context import Context


def context_of(request: Request) -> Context:
    return cast(Context, request.app.state.context)
