"""``POST /webhooks/stripe``: Stripe's events, verified with the endpoint's signing secret (CONTRACT §10).

The signature is checked by Stripe's own library (``stripe.Webhook.construct_event``: an HMAC of the
timestamp and the body, five minutes of tolerance) before anything is read as JSON; a bad one is
``400``. A body over ``BODY_LIMIT`` is ``413``. A verified event is applied once, and answered
``200`` with what it did, so Stripe stops retrying.
"""

from __future__ import annotations

import json
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.context import Context
from gateway.orders.stripe_events import apply_event
from gateway.transaction import transaction
from gateway.web.bodies import TooLarge, read_body
from gateway.web.state import context_of

log = logging.getLogger("gateway.web")
BODY_LIMIT = 256 * 1024  # Stripe's events are a few kilobytes


def _apply(context: Context, event: dict[str, object]) -> str:
    with transaction(context) as (session, mailer):
        return apply_event(session, mailer, event)


async def stripe_webhook(request: Request) -> JSONResponse:
    context = context_of(request)
    secret = context.settings.stripe_webhook_secret
    if not secret:
        return JSONResponse({"error": "no [payments] stripe_webhook_secret: this endpoint is off"}, status_code=503)
    try:
        body = await read_body(request, BODY_LIMIT)
    except TooLarge:
        return JSONResponse({"error": f"the event is larger than {BODY_LIMIT} bytes"}, status_code=413)
    import stripe  # here, not at the top: 26 MB in every gateway serve, for a site that may not use Stripe

    try:
        stripe.Webhook.construct_event(body, request.headers.get("stripe-signature"), secret)
    except (stripe.SignatureVerificationError, ValueError) as error:
        log.warning("stripe webhook refused: %s", error)
        return JSONResponse({"error": "bad signature"}, status_code=400)
    event = json.loads(body)
    outcome = await run_in_threadpool(_apply, context, event)
    log.info("stripe event %s (%s): %s", event.get("id"), event.get("type"), outcome)
    return JSONResponse({"received": True, "outcome": outcome})
