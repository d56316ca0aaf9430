"""Which Authentication-Results make a From authenticated: only the trusted MTA's, only a pass, only aligned."""

from __future__ import annotations

import pytest

from gateway.mail.authentication import authenticated_by

TRUSTED = "mx.shop.example"


@pytest.mark.parametrize("results, sender, expected", [
    ([f"{TRUSTED}; dkim=pass header.d=client.example header.s=s1"], "jean@client.example",
     "dkim=pass header.d=client.example (mx.shop.example)"),
    ([f"{TRUSTED}; spf=pass smtp.mailfrom=client.example; dmarc=pass (p=reject) header.from=client.example"],
     "jean@client.example", "dmarc=pass header.from=client.example (mx.shop.example)"),
    ([f"{TRUSTED.upper()}; dkim=pass header.d=Client.Example"], "jean@mail.client.example",
     "dkim=pass header.d=Client.Example (mx.shop.example)"),
    (["mx.attacker.example; dkim=fail", f"{TRUSTED}; dkim=pass header.d=client.example",
      f"{TRUSTED}; dkim=fail header.d=client.example"],
     "jean@client.example", "dkim=pass header.d=client.example (mx.shop.example)"),
], ids=["dkim pass", "dmarc pass", "relaxed alignment, any case", "the topmost of the trusted MTA's"])
def test_a_pass_aligned_with_from_from_the_trusted_mta_authenticates(results: list[str], sender: str,
                                                                     expected: str) -> None:
    assert authenticated_by(results, sender, TRUSTED) == expected


@pytest.mark.parametrize("results, sender, trusted", [
    ([f"{TRUSTED}; dkim=pass header.d=client.example"], "jean@client.example", ""),
    (["mx.attacker.example; dkim=pass header.d=client.example"], "jean@client.example", TRUSTED),
    ([f"{TRUSTED}; dkim=pass header.d=attacker.example"], "jean@client.example", TRUSTED),
    ([f"{TRUSTED}; dkim=pass header.d=example"], "jean@client.example", TRUSTED),
    ([f"{TRUSTED}; dkim=pass header.d=lient.example"], "jean@client.example", TRUSTED),
    ([f"{TRUSTED}; dkim=pass header.d=mail.client.example"], "jean@client.example", TRUSTED),
    ([f"{TRUSTED}; dkim=fail header.d=client.example; spf=pass smtp.mailfrom=client.example"],
     "jean@client.example", TRUSTED),
    ([f"{TRUSTED}; dmarc=pass header.from=attacker.example"], "jean@client.example", TRUSTED),
    ([f"{TRUSTED}; dmarc=pass header.from=client.example"], "jean@evil.client.example", TRUSTED),
    ([f"{TRUSTED}; dkim=fail header.d=client.example", f"{TRUSTED}; dkim=pass header.d=client.example"],
     "jean@client.example", TRUSTED),
    ([f"{TRUSTED}; dkim=pass header.i=@client.example"], "jean@client.example", TRUSTED),
    ([f"{TRUSTED}; dkim=pass header.d=client.example"], "not an address", TRUSTED),
    ([f"{TRUSTED}; none", "garbage ;;; =", "", f"{TRUSTED}.attacker.example; dkim=pass header.d=client.example"],
     "jean@client.example", TRUSTED),
], ids=["no MTA trusted", "another authserv-id", "not aligned", "a top-level domain", "a suffix, not a parent",
        "signed by a subdomain, From the parent (strict is not relaxed)", "only SPF passed", "dmarc of another domain",
        "dmarc of a parent domain", "a forged pass below the trusted MTA's own header",
        "no header.d", "no From address", "garbage and look-alikes"])
def test_anything_else_does_not(results: list[str], sender: str, trusted: str) -> None:
    assert authenticated_by(results, sender, trusted) is None
