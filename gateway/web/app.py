"""The web app: one screen of routes whose endpoints call domain functions."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from gateway.context import Context
from gateway.web import api, files, health, metrics, mine, openapi, order, quote, webhooks

ROUTES = [
    Route("/healthz", health.healthz),
    Route("/metrics", metrics.metrics),
    Route("/quote/{token}", quote.show, name="quote"),
    Route("/quote/{token}/accept", quote.accept, methods=["POST"]),
    Route("/quote/{token}/decline", quote.decline, methods=["POST"]),
    Route("/order/{token}", order.show, name="order"),
    Route("/order/{token}/complete", order.complete, methods=["POST"]),
    Route("/order/{token}/revision", order.revision, methods=["POST"]),
    Route("/order/{token}/cancel", order.cancel, methods=["POST"]),
    Route("/files/{token}", files.download, name="file"),
    Route("/me/{token}", mine.show, name="mine"),
    Route("/webhooks/stripe", webhooks.stripe_webhook, methods=["POST"]),
    Route("/api/orders", api.post_order, methods=["POST"]),
    Route("/openapi.json", openapi.document),
]


def create_app(context: Context) -> Starlette:
    """The app for one gateway; endpoints find the context in ``app.state``."""
    app = Starlette(routes=ROUTES)
    app.state.context = context
    return app
