"""The web app: one screen of routes whose endpoints call domain functions."""

from __future__ import annotations

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.context import Context


def create_app(context: Context) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        with context.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok", "database": context.engine.dialect.name})

    return Starlette(routes=[Route("/healthz", healthz)])
