"""The gateway's listening ports, bound with a clear error: a port that is taken stops the start and
says which one, rather than leaving a gateway running without it."""

from __future__ import annotations

import socket

from gateway.settings import ConfigError


def bind(host: str, port: int, what: str, error: type[ConfigError] = ConfigError) -> socket.socket:
    """A socket bound to ``host:port`` (IPv6 when the host is written with a colon); ``error`` names
    ``what`` the port is for."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past connections do not count
    try:
        sock.bind((host, port))
    except OSError as problem:
        sock.close()
        raise error(f"{what} on {host}:{port}: {problem.strerror or problem}") from None
    return sock
