"""``POST /api/orders``: a shop posts an order as JSON, with the API key of the config as a Bearer token.

The body is read with exact decimals (``parse_float=Decimal``: a float price is refused by
the domain, never rounded). Every field error comes back at once as ``422``
``{"errors": [{"field", "message"}]}`` and nothing is stored; a good order answers ``201``
with its summary, the customer and the coordinators being mailed as for an order by mail.
"""

from __future__ import annotations

import hmac
import json
from decimal import Decimal
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.context import Context
from gateway.orders.card import OrderError
from gateway.orders.placing import FieldError, create_order, validate_order
from gateway.orders.summaries import order_summary
from gateway.transaction import transaction
from gateway.web.bodies import TooLarge, read_body
from gateway.web.state import context_of

BODY_LIMIT = 1024 * 1024
DISABLED = ("the order API is disabled: set api_key in the [orders] section of gateway.toml "
            "(or the GATEWAY_API_KEY environment variable)")


class _Refused(Exception):
    """Leaves the transaction without storing anything."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors)
        self.errors = errors


def _error(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


def _unprocessable(errors: list[FieldError]) -> JSONResponse:
    return JSONResponse({"errors": [{"field": e.field, "message": e.message} for e in errors]}, status_code=422)


def _authorized(request: Request, api_key: str) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), api_key.encode())


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse(body: bytes) -> object | FieldError:
    """The JSON payload, or why the body is not JSON."""
    try:
        payload: object = json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant)
    except UnicodeDecodeError:
        return FieldError("", "the body is not UTF-8 text")
    except json.JSONDecodeError as error:
        return FieldError("", f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}")
    except (ValueError, RecursionError) as error:
        return FieldError("", f"the body is not valid JSON: {error}")
    return payload


def _create(context: Context, payload: object) -> dict[str, Any] | list[FieldError]:
    try:
        with transaction(context) as (session, mailer):
            draft = validate_order(session, context.settings, payload)
            if isinstance(draft, list):
                raise _Refused(draft)
            return order_summary(create_order(session, context.settings, mailer, draft, source="api"))
    except _Refused as refused:
        return refused.errors


async def post_order(request: Request) -> JSONResponse:
    """``201`` with the order summary; ``401`` without the key; ``422`` with every field error."""
    context = context_of(request)
    api_key = context.settings.api_key
    if not api_key:
        return _error(503, DISABLED)
    if not _authorized(request, api_key):
        return _error(401, "missing or wrong API key: send the header `Authorization: Bearer <api_key>`",
                      {"WWW-Authenticate": 'Bearer realm="orders"'})
    try:
        body = await read_body(request, BODY_LIMIT)
    except TooLarge:
        return _error(413, f"the order is larger than {BODY_LIMIT} bytes")
    payload = _parse(body)
    if isinstance(payload, FieldError):
        return _unprocessable([payload])
    try:
        created = await run_in_threadpool(_create, context, payload)
    except OrderError as error:  # the site cannot take orders (no orders mailbox): not the shop's fault
        return _error(503, str(error))
    if isinstance(created, list):
        return _unprocessable(created)
    return JSONResponse(created, status_code=201)
