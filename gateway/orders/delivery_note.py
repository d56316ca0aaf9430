"""The delivery note ``#ship`` sends the customer: a PDF of the order's items and quantities, its
number, the date, the tracking reference, and the two addresses (the site's ``site_address``, the
order's ``shipping_address`` from the shop's API or ``#address``), from ``pdf/delivery_note.html.j2``
(a home overrides it like any template), written by fpdf2 with Debian's DejaVu fonts (the euro sign
and every accent) when the machine has them, else with the PDF's own Helvetica.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import TemplateError

from gateway.clock import utcnow
from gateway.orders.models import Order
from gateway.outbound.compose import MailFile
from gateway.outbound.render import environment
from gateway.settings import Settings

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


class NoteUnwritable(Exception):
    """The note could not be written: a home's template that does not render, or a line fpdf2 cannot lay
    out on a page."""


def _addressed(name: str, address: str) -> list[str]:
    """The name, then the address's lines; the name once when the address begins with it already."""
    lines = [line.strip() for line in address.splitlines() if line.strip()]
    return lines if lines and lines[0].casefold() == name.casefold() else [name, *lines]


def delivery_note(settings: Settings, order: Order, locale: str) -> MailFile:
    """The PDF, named for the order; ``NoteUnwritable`` when it cannot be written (the caller ships without)."""
    # fpdf2 and its Pillow and fontTools take a third of a second to import: paid by a process that
    # ships an order, not by every command's start.
    from fpdf import FPDF
    from fpdf.errors import FPDFException

    try:
        html = environment(settings.home).get_template("pdf/delivery_note.html.j2").render(
            locale=locale, site_name=settings.site_name, number=order.number,
            shipped_at=order.shipped_at or utcnow(), tracking=order.tracking or "",
            customer_name=order.customer.name or "", customer_email=order.customer.email,
            ship_from=_addressed(settings.site_name, settings.site_address),
            ship_to=_addressed(order.customer.name or order.customer.email, order.shipping_address),
            items=[{"quantity": item.quantity, "description": item.description or item.offer}
                   for item in order.items])
        pdf = FPDF(format="A4")
        pdf.set_title(f"{'Bon de livraison' if locale == 'fr' else 'Delivery note'} {order.number}")
        pdf.set_creator(settings.site_name)
        if (DEJAVU / "DejaVuSans.ttf").exists():
            pdf.add_font("DejaVu", "", str(DEJAVU / "DejaVuSans.ttf"))
            pdf.add_font("DejaVu", "B", str(DEJAVU / "DejaVuSans-Bold.ttf"))
            pdf.set_font("DejaVu", size=11)
        else:
            pdf.set_font("Helvetica", size=11)
            html = html.encode("latin-1", "replace").decode("latin-1")
        pdf.add_page()
        pdf.write_html(html)
        payload = bytes(pdf.output())
    except (TemplateError, FPDFException, ValueError, NotImplementedError) as error:  # fpdf2's HTML limits too
        raise NoteUnwritable(f"{type(error).__name__}: {error}") from error
    name = f"{'bon-de-livraison' if locale == 'fr' else 'delivery-note'}-{order.number}.pdf"
    return MailFile(name, "application/pdf", payload)
