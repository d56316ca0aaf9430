"""``GET /openapi.json``: the OpenAPI 3 description of the order API, built on ``ORDER_SCHEMA``.

No ``servers`` entry: the API lives beside the document, whatever host or port serves it.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.orders.placing import ORDER_SCHEMA

_TEXT = {"type": "string"}
_AMOUNT = {"type": "string", "pattern": r"^\d+\.\d{2}$", "example": "450.00"}
_NULLABLE_TEXT = {"type": "string", "nullable": True}

ORDER_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": ["number", "status", "currency", "total", "items", "customer"],
    "properties": {
        "number": {"type": "integer", "description": "the order number, also the request number"},
        "status": _TEXT, "payment_method": _TEXT, "payment_status": _TEXT, "currency": _TEXT,
        "discount": _AMOUNT, "total": _AMOUNT, "amount_paid": _AMOUNT,
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "sku": _NULLABLE_TEXT, "offer": _TEXT, "description": _TEXT, "quantity": {"type": "integer"},
            "unit_price": _AMOUNT, "amount": _AMOUNT}}},
        "on_quote": {"type": "boolean"}, "source": _TEXT, "plan": _NULLABLE_TEXT,
        "tags": {"type": "array", "items": _TEXT}, "tracking": _NULLABLE_TEXT,
        "customer": {"type": "string", "description": "the customer's email"}, "manager": _NULLABLE_TEXT,
    },
}
VALIDATION_ERRORS: dict[str, Any] = {
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["field", "message"], "properties": {
            "field": {"type": "string", "description": 'a path such as "items[0].unit_price"; "" for the body'},
            "message": _TEXT}}}},
}
ERROR: dict[str, Any] = {"type": "object", "required": ["error"], "properties": {"error": _TEXT}}
EXAMPLE = {"customer": {"email": "jean.dupont@client.example", "name": "Jean Dupont", "locale": "fr"},
           "subject": "Audit SEO", "currency": "EUR", "payment_method": "transfer",
           "items": [{"description": "Audit SEO", "quantity": 1, "unit_price": "450.00"}]}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def openapi_document() -> dict[str, Any]:
    """The whole document; ``ORDER_SCHEMA`` is copied so nothing here can change it."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "gateway order API", "version": "1",
                 "description": "Shops post orders; each one opens an order request, mails the customer a "
                                "confirmation and the coordinators a notice. Amounts are decimal strings."},
        "paths": {"/api/orders": {"post": {
            "operationId": "createOrder",
            "summary": "Open an order",
            "security": [{"apiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Order"}, "example": EXAMPLE}}},
            "responses": {
                "201": _json("OrderSummary", "the order was opened"),
                "401": _json("Error", "missing or wrong API key"),
                "413": _json("Error", "the body is too large"),
                "422": _json("ValidationErrors", "the body is not JSON, or fields are wrong; nothing was stored"),
                "503": _json("Error", "the order API is disabled on this site"),
            },
        }}},
        "components": {
            "schemas": {"Order": copy.deepcopy(ORDER_SCHEMA), "OrderSummary": ORDER_SUMMARY,
                        "ValidationErrors": VALIDATION_ERRORS, "Error": ERROR},
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "the api_key of the [orders] section of gateway.toml"}},
        },
    }


def document(request: Request) -> JSONResponse:
    """``GET /openapi.json``."""
    return JSONResponse(openapi_document())
