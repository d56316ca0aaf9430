"""A home made by ``gateway init`` serves mail with nothing else done to it (issue 21)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import Gateway, body_text, mail


def test_a_home_from_gateway_init_passes_check_and_answers_a_customer(tmp_path: Path) -> None:
    home = tmp_path / "maboutique"
    made = subprocess.run([sys.executable, "-m", "gateway", "init", str(home), "--domain", "maboutique.example",
                           "--site-name", "Ma Boutique"], capture_output=True, text=True, check=True)
    assert "gateway serve --config" in made.stdout
    config = home / "gateway.toml"
    check = subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    gateway = Gateway(config).start()
    try:
        gateway.add_person("alice@maboutique.example", "coordinator")
        gateway.send(mail("Jeanne <jeanne@client.example>", "support@maboutique.example", "Colis abîmé",
                          "Bonjour, mon colis est arrivé abîmé."))
        gateway.wait_idle()
        [acknowledgment] = gateway.mails_to("jeanne@client.example")
        assert acknowledgment["From"].addresses[0].display_name == "Ma Boutique"
        assert str(acknowledgment["Reply-To"]).startswith("support+")
        assert "abîmé" in body_text(gateway.mails_to("alice@maboutique.example")[0])
    finally:
        assert gateway.stop() == 0
