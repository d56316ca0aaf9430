"""Helpdesk commands: status, assignment, labels, observers, expected response, product, delivery, help."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.addresses import BadAddress, addr_spec
from gateway.change import RequestChange
from gateway.commands.grammar import Command, allowed
from gateway.commands.registry import ORDER_ONLY, CommandError, handles, validates
from gateway.helpdesk import find_person, join, record_event
from gateway.models import Label, Product, Request
from gateway.orders.card import OrderError, ensure_order
from gateway.orders.lifecycle import payment_link, start_processing
from gateway.orders.mail import order_link
from gateway.orders.summaries import order_detail
from gateway.outbound.guide import table
from gateway.settings import Settings


@handles("status")
def set_status(context: RequestChange, command: Command) -> None:
    status = command.args.lower()
    request = context.request
    if request.kind == "order" and status != "in-progress":
        raise CommandError(command.line, "an order's status changes with #confirm, #decline, #ship, #complete")
    if request.kind == "order":
        try:
            start_processing(context.mailer, ensure_order(context.session, request, context.settings),
                             context.author.email)
        except OrderError as error:
            raise CommandError(command.line, str(error)) from error
        return
    if request.status != status:
        record_event(request, "status", f"{request.status} -> {status} by {context.author.email}")
        request.status = status


@validates("assign")
def known_coordinator(session: Session, command: Command) -> str | None:
    target = command.args.lower()
    if target in ("all", "me"):
        return None
    person = find_person(session, target)
    return None if person is not None and person.role == "coordinator" else f"{target} is not a coordinator"


@handles("assign")
def assign(context: RequestChange, command: Command) -> None:
    target = command.args.lower()
    if target == "all":
        context.request.assignee = None
        record_event(context.request, "assignment", f"everyone, by {context.author.email}")
        return
    email = context.author.email if target == "me" else target
    person = find_person(context.session, email)
    if person is None or person.role != "coordinator":
        raise CommandError(command.line, f"{email} is not a coordinator")
    context.request.assignee = person
    record_event(context.request, "assignment", f"{email}, by {context.author.email}")


@handles("label")
def label(context: RequestChange, command: Command) -> None:
    if command.args not in {existing.name for existing in context.request.labels}:
        context.request.labels.append(Label(name=command.args))


@handles("unlabel")
def unlabel(context: RequestChange, command: Command) -> None:
    context.request.labels[:] = [existing for existing in context.request.labels if existing.name != command.args]


@validates("observer")
def one_address(session: Session, command: Command) -> str | None:
    try:
        addr_spec(command.args.split(None, 1)[1].strip())
    except BadAddress as error:
        return str(error)
    return None


@handles("observer")
def observer(context: RequestChange, command: Command) -> None:
    action, email = command.args.split(None, 1)
    email = addr_spec(email.strip())
    request = context.request
    if action.lower() == "remove":
        found = next((p for p in request.participants if p.email == email and p.role == "observer"), None)
        if found is None:
            raise CommandError(command.line, f"{email} is not an observer of this request")
        found.active = False
        record_event(request, "observer", f"{email} removed by {context.author.email}")
        return
    person = find_person(context.session, email)
    participant = join(context.session, request, email, role="observer", person=person, mail_only=person is None)
    record_event(request, "observer", f"{email} added by {context.author.email}")
    if person is not None:
        context.mailer.send(request, participant, "observer_added", "coordinator", {"added_by": context.author.email})


@handles("help")
def help_table(context: RequestChange, command: Command) -> None:
    """Every command the author may write, with what it does, mailed to them alone."""
    author = context.author
    if author.participant is None:
        return
    context.mailer.send(context.request, author.participant, "help", "sender",
                        help_context(author.role, context.request.kind), auto_submitted="auto-replied")


def help_context(role: str, kind: str | None = None) -> dict[str, object]:
    """The command table of ``role``, in both languages (the template picks the reader's); on a helpdesk
    request, without the commands that apply to orders alone."""
    names = [name for name in allowed(role) if kind != "helpdesk" or name not in ORDER_ONLY]
    return {"role": role, "table_en": table(names, "en"), "table_fr": table(names, "fr")}


def shown(session: Session, command: Command) -> Request | None:
    """The request ``#show NUMBER`` names (``#show`` alone: None, the request replied to)."""
    number = command.args.lstrip("#")
    return session.get(Request, int(number)) if number else None


def no_such_request(command: Command) -> str:
    return f"there is no request #{command.args.lstrip('#')}"


@validates("show")
def known_request(session: Session, command: Command) -> str | None:
    return no_such_request(command) if command.args and shown(session, command) is None else None


def card_context(session: Session, settings: Settings, request: Request) -> dict[str, object]:
    """The request's whole card: participants, labels, product and delivery, and for an order its items,
    payments, payment link, tags, manager, internal comment and deadlines."""
    order = ensure_order(session, request, settings) if request.kind == "order" else None
    return {"card": order_detail(session, request), "participants": [p for p in request.participants if p.active],
            "labels": [label.name for label in request.labels], "product": request.product,
            "delivery": request.delivery_ref, "currency": order.currency if order else "",
            "payment_link": payment_link(settings, order) if order else None,
            "order_link": order_link(settings, order) if order else None}


@handles("show")
def show_card(context: RequestChange, command: Command) -> None:
    """The card of the request replied to, or of the one ``#show NUMBER`` names, mailed to the coordinator
    who asked, from that request's address: their reply to it is theirs on that request."""
    author = context.author
    if author.participant is None:
        return
    request = shown(context.session, command) or context.request
    participant = author.participant if request is context.request else join(
        context.session, request, author.email, role="coordinator", person=author.participant.person)
    context.mailer.send(request, participant, "card", "sender", card_context(context.session, context.settings,
                                                                             request), auto_submitted="auto-replied")


@handles("expect")
def expect(context: RequestChange, command: Command) -> None:
    value = command.args.lower()
    context.request.expected_response = None if value == "none" else value


def _product(session: Session, sku: str) -> Product | None:
    return session.scalars(select(Product).where(Product.sku == sku)).first()


@validates("product")
def known_product(session: Session, command: Command) -> str | None:
    if _product(session, command.args) is None:
        return f"no product with SKU {command.args} (see `gateway products add`)"
    return None


@handles("product")
def product(context: RequestChange, command: Command) -> None:
    found = _product(context.session, command.args)
    if found is None:
        raise CommandError(command.line, f"no product with SKU {command.args} (see `gateway products add`)")
    context.request.product = found


@handles("delivery")
def delivery(context: RequestChange, command: Command) -> None:
    context.request.delivery_ref = command.args
