"""The page strings in French and English, and which of the two a visitor reads.

A quote page speaks the customer's locale (the one their mails use); a page with
no quote behind it (a forged or unknown link) follows the browser, then the site.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.outbound.l10n import LOCALES

STRINGS: dict[str, dict[str, str]] = {
    "fr": {
        "quote": "Devis",
        "reference": "Devis n°{number}, version {version}",
        "title": "Devis pour la commande n°{number}",
        "hello": "Bonjour {name},",
        "intro": "Voici notre proposition. Vous pouvez l'accepter ou la refuser ci-dessous.",
        "total": "Montant total",
        "version": "Version {version}, envoyée le {date}",
        "valid_until": "Valable jusqu'au {date}",
        "item": "Désignation",
        "quantity": "Qté",
        "unit_price": "Prix unitaire",
        "amount": "Montant",
        "accept": "Accepter le devis",
        "accept_hint": "En acceptant, vous validez ce prix ; nous confirmons ensuite la commande par e-mail.",
        "decline_title": "Ce devis ne vous convient pas ?",
        "reason": "Raison (facultatif)",
        "reason_placeholder": "Par exemple : trop cher, délai trop long…",
        "decline": "Refuser le devis",
        "accepted": "Devis accepté",
        "accepted_text": "Vous avez accepté ce devis le {date}. Merci ! Nous confirmons la commande par e-mail.",
        "declined": "Devis refusé",
        "declined_text": "Vous avez refusé ce devis le {date}. Nous reviendrons vers vous par e-mail.",
        "your_reason": "Votre raison :",
        "questions": "Une question ? Répondez simplement au mail qui contenait ce lien.",
        "forged_title": "Ce lien n'est pas valide",
        "forged_text": "Le lien est incomplet ou a été modifié. Ouvrez-le depuis le mail reçu, "
                       "ou copiez-le en entier dans votre navigateur.",
        "unknown_title": "Devis introuvable",
        "unknown_text": "Nous ne trouvons pas ce devis. Ouvrez le lien du dernier mail reçu, "
                        "ou répondez à ce mail pour nous écrire.",
        "replaced_title": "Ce devis a été remplacé",
        "replaced_text": "La version {version} de ce devis a été remplacée par la version {new_version} : "
                         "{amount}.",
        "replaced_open": "Voir la version {new_version}",
        "withdrawn_title": "Ce devis a été retiré",
        "withdrawn_text": "Nous avons retiré ce devis le {date} ; il ne peut plus être accepté. "
                          "Répondez au mail pour nous écrire.",
        "expired_title": "Ce devis a expiré",
        "expired_text": "Ce devis était valable jusqu'au {date}. Répondez au mail pour demander un nouveau devis.",
        "too_large": "La demande est trop longue.",
        "order": "Commande",
        "order_title": "Commande n°{number}",
        "order_status_pending": "En attente de confirmation",
        "order_status_in-progress": "En cours",
        "order_status_confirmed": "Confirmée",
        "order_status_shipped": "Expédiée",
        "order_status_delivered": "Livrée : à vous de jouer",
        "order_status_completed": "Terminée",
        "order_status_cancelled": "Annulée",
        "order_status_declined": "Refusée",
        "paid": "Payé",
        "deadline_acceptance": "Confirmation attendue avant le {date}",
        "deadline_delivery": "Livraison prévue au plus tard le {date}",
        "deadline_review": "Sans réponse de votre part, la commande sera terminée le {date}",
        "deadline_payment": "Paiement attendu avant le {date}",
        "complete_title": "Tout vous convient ?",
        "complete_hint": "Terminez la commande ; vous pouvez laisser une note et un avis.",
        "rating": "Note (facultatif)",
        "no_rating": "Pas de note",
        "review": "Votre avis (facultatif)",
        "complete": "Terminer la commande",
        "revision_title": "Il faut reprendre quelque chose ?",
        "revision_reason": "Ce qu'il faut revoir",
        "revision": "Demander une révision",
        "cancel_title": "Annuler la commande ?",
        "cancel_reason": "Pourquoi souhaitez-vous annuler ?",
        "cancel": "Demander l'annulation",
        "revision_requested": "Votre demande de révision a été transmise ; nous vous répondons par e-mail.",
        "cancellation_requested": "Votre demande d'annulation a été transmise ; nous vous répondons par e-mail.",
        "your_review": "Votre avis : {rating}",
        "closed_title": "Cette action n'est plus possible",
        "closed_text": "La commande a changé depuis l'ouverture de cette page. Voici où elle en est.",
        "reason_needed_title": "Il manque la raison",
        "reason_needed_text": "Écrivez en quelques mots ce que vous souhaitez, puis envoyez à nouveau.",
        "order_forged_title": "Ce lien n'est pas valide",
        "order_forged_text": "Le lien est incomplet ou a été modifié. Ouvrez-le depuis le mail reçu.",
        "order_unknown_title": "Commande introuvable",
        "order_unknown_text": "Nous ne trouvons pas cette commande. Répondez au mail reçu pour nous écrire.",
        "back": "Voir la commande",
    },
    "en": {
        "quote": "Quote",
        "reference": "Quote #{number}, version {version}",
        "title": "Quote for order #{number}",
        "hello": "Hello {name},",
        "intro": "Here is our proposal. You can accept or decline it below.",
        "total": "Total amount",
        "version": "Version {version}, sent on {date}",
        "valid_until": "Valid until {date}",
        "item": "Item",
        "quantity": "Qty",
        "unit_price": "Unit price",
        "amount": "Amount",
        "accept": "Accept the quote",
        "accept_hint": "By accepting, you agree to this price; we then confirm the order by email.",
        "decline_title": "Not what you need?",
        "reason": "Reason (optional)",
        "reason_placeholder": "For example: too expensive, takes too long…",
        "decline": "Decline the quote",
        "accepted": "Quote accepted",
        "accepted_text": "You accepted this quote on {date}. Thank you! We will confirm the order by email.",
        "declined": "Quote declined",
        "declined_text": "You declined this quote on {date}. We will get back to you by email.",
        "your_reason": "Your reason:",
        "questions": "A question? Simply reply to the email that contained this link.",
        "forged_title": "This link is not valid",
        "forged_text": "The link is incomplete or was changed. Open it from the email you received, "
                       "or copy it whole into your browser.",
        "unknown_title": "Quote not found",
        "unknown_text": "We cannot find this quote. Open the link in the latest email you received, "
                        "or reply to that email to write to us.",
        "replaced_title": "This quote was replaced",
        "replaced_text": "Version {version} of this quote was replaced by version {new_version}: "
                         "{amount}.",
        "replaced_open": "See version {new_version}",
        "withdrawn_title": "This quote was withdrawn",
        "withdrawn_text": "We withdrew this quote on {date}; it can no longer be accepted. "
                          "Reply to the email to write to us.",
        "expired_title": "This quote has expired",
        "expired_text": "This quote was valid until {date}. Reply to the email to ask for a new quote.",
        "too_large": "The request is too long.",
        "order": "Order",
        "order_title": "Order #{number}",
        "order_status_pending": "Waiting for confirmation",
        "order_status_in-progress": "In progress",
        "order_status_confirmed": "Confirmed",
        "order_status_shipped": "Shipped",
        "order_status_delivered": "Delivered: over to you",
        "order_status_completed": "Completed",
        "order_status_cancelled": "Cancelled",
        "order_status_declined": "Declined",
        "paid": "Paid",
        "deadline_acceptance": "To be confirmed by {date}",
        "deadline_delivery": "To be delivered by {date}",
        "deadline_review": "Without an answer from you, the order completes on {date}",
        "deadline_payment": "Payment expected by {date}",
        "complete_title": "All good?",
        "complete_hint": "Complete the order; you may leave a rating and a review.",
        "rating": "Rating (optional)",
        "no_rating": "No rating",
        "review": "Your review (optional)",
        "complete": "Complete the order",
        "revision_title": "Something to change?",
        "revision_reason": "What needs changing",
        "revision": "Ask for a revision",
        "cancel_title": "Cancel the order?",
        "cancel_reason": "Why do you want to cancel?",
        "cancel": "Ask to cancel",
        "revision_requested": "Your revision request was sent; we will answer by email.",
        "cancellation_requested": "Your cancellation request was sent; we will answer by email.",
        "your_review": "Your review: {rating}",
        "closed_title": "This action is no longer open",
        "closed_text": "The order changed since this page was opened. Here is where it stands.",
        "reason_needed_title": "The reason is missing",
        "reason_needed_text": "Write in a few words what you would like, then send again.",
        "order_forged_title": "This link is not valid",
        "order_forged_text": "The link is incomplete or was changed. Open it from the email you received.",
        "order_unknown_title": "Order not found",
        "order_unknown_text": "We cannot find this order. Reply to the email you received to write to us.",
        "back": "See the order",
    },
}


def strings(locale: str) -> dict[str, str]:
    return STRINGS[locale if locale in LOCALES else "fr"]


def browser_locale(request: Request, default: str) -> str:
    """The first of ``fr``/``en`` the browser's Accept-Language names, else ``default``."""
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";", 1)[0].strip().lower()[:2]
        if tag in LOCALES:
            return tag
    return default if default in LOCALES else "fr"
