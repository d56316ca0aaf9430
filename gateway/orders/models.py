"""Order tables (DESIGN "Orders"); imported by the migrations' environment with ``gateway.models``."""

from __future__ import annotations
