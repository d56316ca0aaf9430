"""Whether a message really comes from the domain its From names (CONTRACT §4).

A mail without the sender's own reply token gains a coordinator's, supplier's or observer's
rights only when it is *authenticated*: DKIM or DMARC pass, aligned with the From domain, as
recorded by the site's own MTA in the topmost ``Authentication-Results`` header (RFC 8601) whose
authserv-id is ``[smtp] trusted_authserv_id``. Every other header of that name is ignored: any
sender can write one, and an MTA that does not strip them passes them on. The headers are read
with ``authres``, the parser the Python mail-filter projects maintain.

When the gateway is the MX itself (``[smtp] check_dkim``), no MTA wrote such a header: it checks
the DKIM signatures itself with ``dkimpy``, whose key lookup (``Settings.dkim_txt``) is DNS in
production and a table in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import authres

_DKIM_OR_DMARC = ("dkim", "dmarc")
TxtLookup = Callable[..., bytes | None]  # dkimpy's ``dnsfunc``: (b"sel._domainkey.example.", timeout=) -> TXT
MOST_SIGNATURES = 3  # checked per message: each costs a DNS lookup, and a sender may write fifty
# dkimpy logs every failed signature at ERROR: a forged one is an everyday event here, not ours.
_QUIET = logging.getLogger("gateway.dkim")
_QUIET.setLevel(logging.CRITICAL)


def _aligned(signing_domain: str, from_domain: str) -> bool:
    """Relaxed alignment (RFC 7489 3.1.1): the same domain, or the From domain below the signing one,
    which is at least a registered name (``client.example``), never a top-level domain."""
    signing_domain = signing_domain.lower().rstrip(".")
    return "." in signing_domain and (from_domain == signing_domain or from_domain.endswith("." + signing_domain))


def authenticated_by(results: Sequence[str], from_address: str, trusted_authserv_id: str) -> str | None:
    """How the message was authenticated (``"dkim=pass header.d=client.example"``), or None.

    ``results``: the values of every ``Authentication-Results`` header, top first, as received. Only
    the topmost one of the trusted MTA counts: it adds its own above those the mail came with, and a
    sender can write one with any authserv-id below it (an MTA should remove those; if it does not,
    they are still ignored). DMARC's ``header.from`` is the From domain itself; DKIM's ``header.d``
    may be a parent of it (relaxed alignment).
    """
    if not trusted_authserv_id or "@" not in from_address:
        return None
    from_domain = from_address.rpartition("@")[2].lower().rstrip(".")
    ours = next((value for value in results
                 if value.split(";", 1)[0].strip().lower() == trusted_authserv_id.lower()), None)
    if ours is None:
        return None
    try:
        header = authres.AuthenticationResultsHeader.parse_value(" ".join(ours.split()))
    except (authres.AuthResError, ValueError, IndexError):
        return None
    if (header.authserv_id or "").lower() != trusted_authserv_id.lower():
        return None
    for result in header.results:
        if result.method not in _DKIM_OR_DMARC or (result.result or "").lower() != "pass":
            continue
        wanted = "d" if result.method == "dkim" else "from"
        for prop in result.properties:
            if prop.type != "header" or prop.name != wanted:
                continue
            domain = str(prop.value).lower().rstrip(".")
            if domain == from_domain if result.method == "dmarc" else _aligned(domain, from_domain):
                return f"{result.method}=pass header.{wanted}={prop.value} ({header.authserv_id})"
    return None


def dkim_verified(raw: bytes, from_address: str, txt: TxtLookup | None = None) -> str | None:
    """How the gateway's own DKIM check authenticated the message (``"dkim=pass header.d=… (gateway)"``),
    or None: a signature that verifies, whose ``d=`` is aligned with From, that signs From and covers
    the whole body. A signature with a body length (``l=``)
    is not taken: anyone may append text, and with it ``#`` commands, below the signed part.
    """
    if "@" not in from_address or b"dkim-signature" not in raw[:65536].lower():
        return None
    # Here, not at the top: dkimpy and dnspython weigh 14 MB in every process that applies messages,
    # and only a site whose gateway is its MX (check_dkim) asks for them.
    import dkim
    import dkim.dnsplug

    from_domain = from_address.rpartition("@")[2].lower().rstrip(".")
    try:
        checker = dkim.DKIM(raw, logger=_QUIET)
    except dkim.DKIMException:
        return None
    signatures = sum(1 for name, _value in checker.headers if name.lower() == b"dkim-signature")
    for index in range(min(signatures, MOST_SIGNATURES)):
        try:
            if not checker.verify(idx=index, dnsfunc=txt or dkim.dnsplug.get_txt):
                continue
        except dkim.DKIMException:
            continue
        signature = checker.signature_fields
        domain = signature.get(b"d", b"").decode("ascii", "replace")
        if b"l" not in signature and b"from" in checker.include_headers and _aligned(domain, from_domain):
            return f"dkim=pass header.d={domain} (gateway)"
    return None
