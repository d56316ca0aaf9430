"""What a mail tells its reader they can do next by mail: the ``#commands`` that make sense at the
request's stage, for their role, in their language, and the whole table that ``#help`` answers with.

Who may use a command is decided by ``commands.grammar``; this module only says which ones are worth
naming now (a new order: quote, confirm or decline it; a confirmed one: ship it, record a payment,
cancel it), so that a coordinator who never read the manual learns them from the mails themselves.
"""

from __future__ import annotations

import re

from gateway.models import Request

# Each command as it is written, with what it does: English, then French.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "private": ("#private", "this comment stays with the team", "ce commentaire reste dans l'équipe"),
    "public": ("#public", "this comment goes to the customer", "ce commentaire part au client"),
    "note": ("#note TEXT", "an internal note", "une note interne"),
    "status": ("#status new|in-progress|resolved", "the request's status", "l'état de la demande"),
    "assign": ("#assign EMAIL|me|all", "who handles it", "qui s'en occupe"),
    "label": ("#label NAME", "a label for the team", "une étiquette pour l'équipe"),
    "unlabel": ("#unlabel NAME", "takes a label off", "retire une étiquette"),
    "observer": ("#observer add|remove EMAIL", "someone who follows by mail", "quelqu'un qui suit par mail"),
    "expect": ("#expect customer|coordinator|supplier|none", "who must answer next", "qui doit répondre"),
    "quote": ("#quote AMOUNT [CURRENCY]", "sends the customer a price to accept", "envoie un devis au client"),
    "withdraw": ("#withdraw", "withdraws the open quote", "retire le devis ouvert"),
    "confirm": ("#confirm", "confirms the order", "confirme la commande"),
    "decline": ("#decline REASON", "declines the order", "refuse la commande"),
    "plan": ("#plan NAME [from DATE]", "the subscription's plan", "la formule de l'abonnement"),
    "terminate": ("#terminate [now]", "ends the subscription", "met fin à l'abonnement"),
    "due": ("#due DATE|3d", "the delivery deadline", "la date de livraison promise"),
    "payment": ("#payment card|transfer|cash|invoice", "the payment method", "le moyen de paiement"),
    "paid": ("#paid AMOUNT [REFERENCE] [-- COMMENT]", "records a payment", "enregistre un paiement"),
    "remind": ("#remind", "reminds the customer to pay", "relance le client pour le paiement"),
    "ship": ("#ship [TRACKING]", "shipped: the customer is told", "expédiée : le client est prévenu"),
    "deliver": ("#deliver", "your text and files are the delivery", "votre texte et vos fichiers sont la livraison"),
    "complete": ("#complete [force]", "completes the order", "termine la commande"),
    "cancel": ("#cancel REASON", "cancels and refunds", "annule et rembourse"),
    "revision": ("#revision accept|refuse [REASON]", "answers the customer's revision request",
                 "répond à la demande de révision"),
    "cancellation": ("#cancellation accept|refuse [REASON]", "answers the customer's cancellation request",
                     "répond à la demande d'annulation"),
    "product": ("#product SKU", "the product it is about", "le produit concerné"),
    "delivery": ("#delivery REF", "the delivery it is about", "la livraison concernée"),
    "address": ("#address LINE / LINE …", "the order's delivery address, on its delivery note",
                "l'adresse de livraison de la commande, sur son bon de livraison"),
    "list": ("#list [STATUS]", "to the mailbox's address: the open requests", "à l'adresse de la boîte : les "
             "demandes ouvertes"),
    "help": ("#help", "this table (in a reply, or to the mailbox's address)",
             "ce tableau (dans une réponse, ou à l'adresse de la boîte)"),
    "show": ("#show [NUMBER]", "mails you the request's whole card (another one's: its number, here or to the "
             "mailbox's address; answer that mail to act on it)", "vous envoie la fiche complète de la demande "
             "(d'une autre : son numéro, ici ou à l'adresse de la boîte ; répondez à ce mail pour agir dessus)"),
    "manager": ("#manager EMAIL|me|none", "the order's manager", "le responsable de la commande"),
    "tag": ("#tag NAME", "a tag on the order", "une étiquette sur la commande"),
    "untag": ("#untag NAME", "takes a tag off the order", "retire une étiquette de la commande"),
    "comment": ("#comment TEXT", "the order's internal comment", "le commentaire interne de la commande"),
}

_ORDER_STAGES: dict[str, tuple[str, ...]] = {
    "pending": ("quote", "confirm", "decline", "private", "note"),
    "in-progress": ("quote", "confirm", "decline", "private", "note"),
    "confirmed": ("ship", "deliver", "paid", "due", "address", "cancel", "note"),
    "shipped": ("complete", "paid", "cancel", "note"),
    "delivered": ("note",),
}
_HELPDESK_STAGES: dict[str, tuple[str, ...]] = {
    "new": ("private", "note", "assign", "status", "label"),
    "in-progress": ("private", "note", "status", "assign", "label"),
    "resolved": ("status", "note"),
}
_AROUND_THE_TEAM = {"supplier": ("private", "public", "note"), "observer": ("private", "public")}


def next_commands(request: Request, role: str, also: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The commands worth naming to ``role`` at the request's stage (names, in the order to show);
    ``also``: what the order's own state adds (``orders.mail.order_context``: a request to answer,
    a subscription running), first."""
    if role != "coordinator":
        return _AROUND_THE_TEAM.get(role, ())
    stages = _ORDER_STAGES if request.kind == "order" else _HELPDESK_STAGES
    return also + tuple(name for name in stages.get(request.status, ("note",)) if name not in also)


# The placeholders of the commands as written, in French; the words the commands take themselves (``me``,
# ``accept``, ``force``, a status) stay as they are: the grammar reads only those.
_FRENCH_PLACEHOLDERS = {"AMOUNT": "MONTANT", "COMMENT": "COMMENTAIRE", "CURRENCY": "DEVISE", "LINE": "LIGNE",
                        "NAME": "NOM", "NUMBER": "NUMÉRO", "REASON": "RAISON", "REF": "RÉF",
                        "REFERENCE": "RÉFÉRENCE", "STATUS": "ÉTAT", "TEXT": "TEXTE", "TRACKING": "SUIVI"}
_PLACEHOLDER = re.compile(r"\b[A-Z]{3,}\b")


def written(name: str, locale: str) -> str:
    """``#name`` as it is written, its placeholders in the reader's language (``#note TEXTE``)."""
    syntax = COMMANDS[name][0]
    if locale != "fr":
        return syntax
    return _PLACEHOLDER.sub(lambda found: _FRENCH_PLACEHOLDERS.get(found[0], found[0]), syntax)


def hint(request: Request, role: str, locale: str, also: tuple[str, ...] = ()) -> str:
    """One line for a mail's footer: the commands of ``next_commands``, as they are written."""
    named = next_commands(request, role, also)
    if not named:
        return ""
    lead = "Commandes en tête de réponse" if locale == "fr" else "Commands at the top of a reply"
    return lead + (" : " if locale == "fr" else ": ") + ", ".join(written(name, locale) for name in named)


def table(names: list[str], locale: str) -> list[tuple[str, str]]:
    """``#help``'s answer: each command as written, with what it does."""
    column = 2 if locale == "fr" else 1
    return [(written(name, locale), COMMANDS[name][column]) for name in names if name in COMMANDS]
