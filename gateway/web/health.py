"""``GET /healthz``: the process answers and its database too."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.web.state import context_of


def healthz(request: Request) -> JSONResponse:
    engine = context_of(request).engine
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return JSONResponse({"status": "ok", "database": engine.dialect.name})
