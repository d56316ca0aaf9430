#!/usr/bin/env python3
"""Ingest benchmark: how fast ``gateway serve`` takes mail in over SMTP and processes it.

Run by hand, not by pytest::

    .venv/bin/python bench/ingest.py --mails 2000            # table
    .venv/bin/python bench/ingest.py --mails 2000 --json     # JSON on stdout
    .venv/bin/python bench/ingest.py --only lf               # the bare-LF run alone

What it does, each run in a throwaway home under a temp dir (SQLite, in-process
worker, outgoing mail to the outbox Maildir, two coordinators: one fr, one en):

1. ``max`` run: N realistic mails (30 % new requests to support@shop.example from
   distinct customers, 70 % replies by token) sent as fast as 4 SMTP connections
   go. Replies need real tokens, so the run has two timed phases: the new requests,
   then (tokens read from the Reply-To of the mails in ``<data>/outbox/new/``, not
   timed) the replies of customers and coordinators. Rates are mails over the sum
   of the two phases' durations.
2. ``lf`` run (``max_lf`` in the results): the ``max`` run again on a fresh home
   (the same new requests; replies built from its own outbox, so they differ as in
   any two runs), every mail sent with bare LF line ends, as ``smtplib``'s
   ``sendmail`` sends the bytes of ``EmailMessage.as_bytes()`` (it dot-stuffs and
   ends the data with CRLF.CRLF but converts no line end). The listener makes the
   lines CRLF before the file is written; this run shows what that costs. The same
   targets apply.
3. ``rate`` run: the same kind of corpus on a fresh home, offered at ``--rate``
   mails/s (paced over the same 4 connections); its p99 latency is the target.
4. Ceilings on the same corpus, with CRLF line ends: an aiosmtpd server whose
   handler does nothing (separate process, same sender; stock aiosmtpd reads DATA
   up to each CRLF and refuses bare-LF mail as too long lines, so the ``lf`` run is
   held to the same ceiling), and the parse rate of the standard library
   (``policy.default`` and ``compat32``) and of ``gateway.mail.parse.parse``.

Latency is server-side, from the database: ``inbound.received_at`` (stamped by the
SMTP listener just before it writes and fsyncs the message, so just before the 250) to
``inbound.processed_at`` (set in the transaction that commits the comment and its
outbox rows: the notifications exist from then on). A second figure goes on to
``outbox.sent_at`` of the notifications of that message (written into
``outbox/new/``). Peak RSS is ``VmHWM`` of the serve process plus its children (SMTP listener, processor).

Exit status: 0 when every mail was accepted and processed, 1 when the gateway
refused, failed or never finished some mail, or serve did not exit 0 on SIGTERM.
The targets are printed with pass/fail but do not change the exit status.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import functools
import itertools
import json
import operator
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any

DOMAIN = "shop.example"
SUPPORT = f"support@{DOMAIN}"
COORDINATORS = (("camille.roux@shop.example", "Camille Roux", "fr"),
                ("alex.turner@shop.example", "Alex Turner", "en"))
TARGETS = {"accepted_vs_null": 0.5, "processed": 250.0, "p99_ms_at_rate": 500.0, "rss_mb": 250.0}


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- corpus

FR_FIRST = ["Jean", "Marie", "Sophie", "Élodie", "François", "Hélène", "Luc", "Chloé", "Nicolas", "Inès",
            "Gérard", "Céline", "Thomas", "Léa", "Mathieu", "Zoé"]
FR_LAST = ["Dupont", "Martin", "Lefèvre", "Bernard", "Moreau", "Giraud", "Rousseau", "Fournier", "Lemaître",
           "Chevalier", "Gauthier", "Mercier"]
EN_FIRST = ["John", "Emily", "Oliver", "Grace", "Harry", "Amelia", "Jack", "Sophia", "George", "Isla",
            "Michael", "Olivia", "Daniel", "Lucy"]
EN_LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
           "Wright", "Thompson", "Evans"]
PROVIDERS = ["gmail.com", "orange.fr", "free.fr", "outlook.com", "yahoo.fr", "hotmail.com", "laposte.net",
             "icloud.com", "sfr.fr", "protonmail.com", "btinternet.com", "yahoo.co.uk"]

FR_SUBJECTS = ["Commande {order} non reçue", "Problème avec ma commande {order}", "Demande de remboursement",
               "Colis endommagé", "Question sur la garantie", "Facture introuvable pour la commande {order}",
               "Changement d'adresse de livraison", "Article manquant dans mon colis",
               "Retour d'un produit défectueux", "Délai de livraison ?", "Erreur de taille, échange possible ?",
               "Code promo refusé"]
EN_SUBJECTS = ["Order {order} not received", "Problem with my order {order}", "Refund request",
               "Damaged parcel", "Warranty question", "Missing invoice for order {order}",
               "Change of delivery address", "Item missing from my parcel", "Returning a faulty product",
               "When will my order arrive?", "Wrong size, can I exchange it?", "Discount code rejected"]
FR_SENTENCES = [
    "J'ai passé commande le {date} (commande n° {order}) et je n'ai toujours rien reçu à ce jour.",
    "Le suivi du transporteur indique que le colis est en attente depuis plusieurs jours, sans plus de détails.",
    "Pourriez-vous me dire où en est ma commande et quand je peux espérer la recevoir ?",
    "À l'ouverture du carton, j'ai constaté que l'article était abîmé : la boîte était enfoncée sur un côté.",
    "Je vous joins une photo pour que vous puissiez constater les dégâts par vous-même.",
    "Je souhaiterais être remboursé(e) ou recevoir un article de remplacement, selon ce qui est le plus rapide.",
    "Par ailleurs, je n'arrive pas à télécharger ma facture depuis mon espace client, le lien renvoie une erreur.",
    "J'ai déjà essayé de vous joindre par téléphone mais je tombe systématiquement sur la messagerie.",
    "Merci de me tenir informé(e) dès que possible, c'était un cadeau d'anniversaire pour ma fille.",
    "Est-il possible de modifier l'adresse de livraison ? Je serai absent(e) la semaine prochaine.",
    "La taille ne convient pas, je voudrais l'échanger contre une taille au-dessus si elle est disponible.",
    "Le code promo indiqué dans votre lettre d'information n'est pas accepté au moment du paiement.",
    "Je reste à votre disposition pour tout renseignement complémentaire.",
    "Le produit fonctionnait très bien les premières semaines, mais depuis hier il ne s'allume plus du tout.",
    "J'ai bien vérifié les piles et le câble d'alimentation, cela ne vient pas de là.",
    "Merci pour votre réponse rapide, c'est très appréciable.",
    "Je confirme que l'adresse est correcte : 12 rue des Lilas, 69003 Lyon.",
    "Je n'ai pas reçu l'e-mail de confirmation, peut-être est-il arrivé dans les indésirables ?",
]
EN_SENTENCES = [
    "I placed an order on {date} (order no. {order}) and I still haven't received anything.",
    "The carrier's tracking page says the parcel has been on hold for several days, with no further detail.",
    "Could you tell me where my order is and when I can expect it to arrive?",
    "When I opened the box I found the item was damaged: the packaging was crushed on one side.",
    "I've attached a photo so that you can see the damage for yourselves.",
    "I would like a refund or a replacement, whichever is quicker.",
    "Also, I can't download my invoice from my account page, the link returns an error.",
    "I have already tried to call you but I always end up on the answering machine.",
    "Please keep me posted as soon as possible, it was meant to be a birthday present for my daughter.",
    "Is it possible to change the delivery address? I'll be away next week.",
    "The size doesn't fit, I'd like to exchange it for the next size up if it's available.",
    "The discount code from your newsletter is rejected at checkout.",
    "Let me know if you need any further information.",
    "The product worked fine for the first few weeks, but since yesterday it won't switch on at all.",
    "I've checked the batteries and the power cable, that's not the problem.",
    "Thanks for the quick answer, much appreciated.",
    "I can confirm the address is correct: 14 Baker Lane, Bristol BS1 4DJ.",
    "I didn't get the confirmation email, maybe it went to my spam folder?",
]
FR_COORD = ["Bonjour,", "Nous avons relancé le transporteur et revenons vers vous dès que possible.",
            "Un remboursement a été initié, il apparaîtra sur votre compte sous 5 à 7 jours ouvrés.",
            "Pouvez-vous nous envoyer une photo de l'étiquette du colis ?",
            "Un nouvel article vous a été expédié ce matin, voici le numéro de suivi : 6A{order}.",
            "Cordialement,"]
EN_COORD = ["Hello,", "We have chased the carrier and will get back to you as soon as we can.",
            "A refund has been issued, it will show on your account within 5 to 7 working days.",
            "Could you send us a photo of the parcel's label?",
            "A replacement was shipped this morning, here is the tracking number: 6A{order}.",
            "Kind regards,"]
FR_SIGNOFF = ["Cordialement,", "Bien cordialement,", "Merci d'avance,", "Bonne journée,"]
EN_SIGNOFF = ["Kind regards,", "Best regards,", "Thanks in advance,", "Cheers,"]
FR_DAYS = ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."]
FR_MONTHS = ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."]

OUTLOOK_STYLE = """<style><!--
/* Font Definitions */
@font-face {font-family:"Cambria Math"; panose-1:2 4 5 3 5 4 6 3 2 4;}
@font-face {font-family:Calibri; panose-1:2 15 5 2 2 2 4 3 2 4;}
/* Style Definitions */
p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif;}
a:link, span.MsoHyperlink {mso-style-priority:99; color:#0563C1; text-decoration:underline;}
span.EmailStyle17 {mso-style-type:personal-compose; font-family:"Calibri",sans-serif; color:windowtext;}
.MsoChpDefault {mso-style-type:export-only; font-family:"Calibri",sans-serif; mso-fareast-language:EN-US;}
@page WordSection1 {size:612.0pt 792.0pt; margin:70.85pt 70.85pt 70.85pt 70.85pt;}
div.WordSection1 {page:WordSection1;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--><!--[if gte mso 9]><xml>
<o:shapelayout v:ext="edit">
<o:idmap v:ext="edit" data="1" />
</o:shapelayout></xml><![endif]-->"""


@dataclass
class Customer:
    email: str
    name: str
    locale: str


@dataclass
class Mail:
    kind: str  # new | customer-reply | coordinator-reply
    mail_from: str
    rcpt: str
    raw: bytes
    message_id: str


@dataclass
class Seen:
    """A gateway mail found in the outbox: what its recipient would reply to."""

    request: int
    recipient: str
    reply_to: str
    message_id: str
    subject: str
    text: str
    date: datetime


class Corpus:
    """Deterministic generator of realistic helpdesk mail (seeded)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.serial = itertools.count(1)
        self.first_texts: dict[str, str] = {}

    # ---- pieces
    def customer(self, i: int) -> Customer:
        r = self.rng
        locale = "fr" if r.random() < 0.6 else "en"
        first, last = (r.choice(FR_FIRST), r.choice(FR_LAST)) if locale == "fr" else (r.choice(EN_FIRST),
                                                                                       r.choice(EN_LAST))
        local = f"{first}.{last}".lower().translate(str.maketrans("éèêëàâçôîïù", "eeeeaacoiiu"))
        return Customer(f"{local}{i}@{r.choice(PROVIDERS)}", f"{first} {last}", locale)

    def paragraphs(self, locale: str, low: int, high: int, order: str) -> list[str]:
        pool = FR_SENTENCES if locale == "fr" else EN_SENTENCES
        date = f"{self.rng.randint(1, 28)}/0{self.rng.randint(1, 9)}/2025"
        out = []
        for _ in range(self.rng.randint(low, high)):
            chosen = self.rng.sample(pool, self.rng.randint(2, 5))
            out.append(" ".join(s.format(order=order, date=date) for s in chosen))
        return out

    def signature(self, name: str, locale: str) -> str:
        r = self.rng.random()
        if r < 0.3:
            digits = " ".join(str(self.rng.randint(10, 99)) for _ in range(3))
            return f"-- \n{name}\n06 {digits} 42"
        if r < 0.45:
            return "Envoyé de mon iPhone" if locale == "fr" else "Sent from my iPhone"
        return name

    @staticmethod
    def quote_intro(locale: str, when: datetime, who: str) -> str:
        if locale == "fr":
            return (f"Le {FR_DAYS[when.weekday()]} {when.day} {FR_MONTHS[when.month - 1]} {when.year} à "
                    f"{when:%H:%M}, {who} a écrit :")
        return f"On {when:%a}, {when.day} {when:%b} {when.year} at {when:%H:%M}, {who} wrote:"

    def trace_headers(self, sender_domain: str) -> list[tuple[str, str]]:
        r = self.rng
        now = format_datetime(datetime.now(UTC))
        ip = f"{r.randint(2, 220)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
        bh = base64.b64encode(r.randbytes(32)).decode()
        sig = base64.b64encode(r.randbytes(256)).decode()
        sig = "\r\n\t ".join(sig[i:i + 70] for i in range(0, len(sig), 70))
        return [
            ("Received", f"from mx.{DOMAIN} (mx.{DOMAIN} [192.0.2.25])\r\n\tby mail.{DOMAIN} (Postfix) with ESMTPS "
                         f"id 4Z{r.randrange(16**10):010X}\r\n\tfor <{SUPPORT}>; {now}"),
            ("Received", f"from mail-out.{sender_domain} (mail-out.{sender_domain} [{ip}])\r\n\tby mx.{DOMAIN} "
                         f"(Postfix) with ESMTPS id {r.randrange(16**12):012X}\r\n\tfor <{SUPPORT}>; {now}"),
            ("Authentication-Results", f"mx.{DOMAIN};\r\n\tdkim=pass (2048-bit key) header.d={sender_domain} "
                                       f"header.i=@{sender_domain} header.b=\"{sig[:8]}\";\r\n\tspf=pass "
                                       f"smtp.mailfrom={sender_domain}; dmarc=pass header.from={sender_domain}"),
            ("DKIM-Signature", f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={sender_domain}; s=20230601; "
                               f"t={int(time.time())};\r\n\t h=to:subject:message-id:date:from:mime-version:"
                               f"from:to:cc:subject:date:message-id:reply-to;\r\n\t bh={bh};\r\n\t b={sig}"),
        ]

    def attachment(self, locale: str) -> tuple[bytes, str, str, str]:
        size = self.rng.randint(1024, 20 * 1024)
        kind = self.rng.choice(["pdf", "jpg", "png"])
        if kind == "pdf":
            head, maintype, subtype = b"%PDF-1.4\n", "application", "pdf"
            name = "facture.pdf" if locale == "fr" else "invoice.pdf"
        elif kind == "jpg":
            head, maintype, subtype = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image", "jpeg"
            name = f"IMG_{self.rng.randint(1000, 9999)}.JPG"
        else:
            head, maintype, subtype = b"\x89PNG\r\n\x1a\n", "image", "png"
            name = "capture d'écran colis.png" if locale == "fr" else "parcel screenshot.png"
        return head + self.rng.randbytes(size - len(head)), maintype, subtype, name

    # ---- whole mails
    def build(self, *, sender: str, sender_name: str, to: str, subject: str, locale: str, body: list[str],
              quote: tuple[str, str] | None, in_reply_to: list[str]) -> tuple[bytes, str]:
        """One mail; ``quote`` = (intro line, quoted text) adds Gmail/Outlook-style history."""
        r = self.rng
        sender_domain = sender.split("@", 1)[1]
        message_id = make_msgid(idstring=f"{next(self.serial)}", domain=sender_domain)
        style = r.choices(["plain", "alternative", "html"], weights=[35, 50, 15])[0]
        mail = EmailMessage(policy=email.policy.SMTP)
        mail["From"] = formataddr((sender_name, sender))
        mail["To"] = to
        mail["Subject"] = subject
        mail["Date"] = format_datetime(datetime.now(UTC) - timedelta(seconds=r.randint(1, 600)))
        mail["Message-ID"] = message_id
        if in_reply_to:
            mail["In-Reply-To"] = in_reply_to[-1]
            mail["References"] = " ".join(in_reply_to)
        mail["X-Mailer" if style == "html" else "User-Agent"] = r.choice(
            ["Microsoft Outlook 16.0", "Apple Mail (2.3731.700.6)", "Mozilla Thunderbird 128.4.0",
             "Roundcube Webmail/1.6.6"])
        mail["Content-Language"] = "fr-FR" if locale == "fr" else "en-GB"
        text = "\n\n".join(body)
        if quote:
            intro, quoted = quote
            text += "\n\n" + intro + "\n" + "\n".join(("> " + line) if line else ">" for line in quoted.splitlines())
        html_body = "".join(f"<div>{p.replace(chr(10), '<br>')}</div><div><br></div>" for p in body)
        if quote:
            intro, quoted = quote
            html_body += ('<div class="gmail_quote"><div dir="ltr" class="gmail_attr">' + intro +
                          '<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
                          'border-left:1px solid rgb(204,204,204);padding-left:1ex">' +
                          quoted.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>\n") +
                          "</blockquote></div>")
        if r.random() < 0.4:  # Outlook-sized HTML
            html = ('<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office">'
                    '<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
                    f'<meta name="Generator" content="Microsoft Word 15 (filtered medium)">{OUTLOOK_STYLE}</head>'
                    f'<body lang="{locale.upper()}" link="#0563C1" vlink="#954F72"><div class="WordSection1">'
                    f'<p class="MsoNormal">{html_body}</p></div></body></html>')
        else:
            html = f'<div dir="ltr">{html_body}</div>'
        cte = r.choice(["quoted-printable", "8bit", "base64"]) if r.random() < 0.5 else None
        if style == "plain":
            mail.set_content(text, cte=cte) if cte else mail.set_content(text)
        elif style == "html":
            mail.set_content(html, subtype="html")
        else:
            mail.set_content(text, cte=cte) if cte else mail.set_content(text)
            mail.add_alternative(html, subtype="html")
        if r.random() < 0.10:
            data, maintype, subtype, name = self.attachment(locale)
            mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        # Trace headers are prepended as a relay would, folded by hand (the policy refuses folded values).
        trace = "".join(f"{name}: {value}\r\n" for name, value in self.trace_headers(sender_domain))
        return trace.encode() + mail.as_bytes(), message_id

    def new_request(self, customer: Customer) -> Mail:
        order = f"{self.rng.randint(100000, 999999)}"
        subjects = FR_SUBJECTS if customer.locale == "fr" else EN_SUBJECTS
        greeting = "Bonjour," if customer.locale == "fr" else self.rng.choice(["Hello,", "Hi,", "Dear Sir or Madam,"])
        paragraphs = self.paragraphs(customer.locale, 1, 6, order)
        self.first_texts[customer.email] = "\n\n".join(paragraphs)
        signoff = self.rng.choice(FR_SIGNOFF if customer.locale == "fr" else EN_SIGNOFF)
        body = [greeting, *paragraphs, signoff + "\n" + self.signature(customer.name, customer.locale)]
        raw, mid = self.build(sender=customer.email, sender_name=customer.name, to=SUPPORT,
                              subject=self.rng.choice(subjects).format(order=order), locale=customer.locale,
                              body=body, quote=None, in_reply_to=[])
        return Mail("new", customer.email, SUPPORT, raw, mid)

    def reply(self, seen: Seen, author: str, name: str, locale: str, coordinator: bool) -> Mail:
        order = f"{self.rng.randint(100000, 999999)}"
        if coordinator:
            lines = [s.format(order=order) for s in (FR_COORD if locale == "fr" else EN_COORD)]
            body = [lines[0], *self.rng.sample(lines[1:5], self.rng.randint(1, 3)), lines[5] + "\n" + name]
            if self.rng.random() < 0.1:
                body.insert(0, "#private")
        else:
            body = [*self.paragraphs(locale, 1, 3, order), self.signature(name, locale)]
        quoted = seen.text
        if self.rng.random() < 0.5 and author in self.first_texts:  # deeper history, as mail clients keep it
            quoted += "\n\n" + self.quote_intro(locale, seen.date - timedelta(days=1), author) + "\n" + "\n".join(
                "> " + line for line in self.first_texts[author].splitlines())
        who = f"Boutique Exemple <{seen.reply_to}>"
        raw, mid = self.build(sender=author, sender_name=name, to=seen.reply_to,
                              subject="Re: " + seen.subject if locale == "en" or self.rng.random() < 0.7
                              else "RE: " + seen.subject,
                              locale=locale, body=body, quote=(self.quote_intro(locale, seen.date, who), quoted),
                              in_reply_to=[seen.message_id])
        return Mail("coordinator-reply" if coordinator else "customer-reply", author, seen.reply_to, raw, mid)


def read_outbox(outbox: Path, done: set[str]) -> list[Seen]:
    """The gateway's mails not read yet: who got them and the Reply-To they carry."""
    found = []
    folder = outbox / "new"
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name in done:
            continue
        done.add(path.name)
        message = email.message_from_bytes(path.read_bytes())
        text = ""
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                text = payload.decode(part.get_content_charset() or "utf-8", "replace") if payload else ""
                break
        subject = " ".join(str(email.header.make_header(email.header.decode_header(
            message.get("Subject", "")))).split())
        found.append(Seen(request=int(message.get("X-Gateway-Request", "0")),
                          recipient=email.utils.parseaddr(message.get("To", ""))[1].lower(),
                          reply_to=email.utils.parseaddr(message.get("Reply-To", ""))[1].lower(),
                          message_id=message.get("Message-ID", "").strip(), subject=subject,
                          text=text.replace("\r\n", "\n"),
                          date=email.utils.parsedate_to_datetime(message["Date"]) if message["Date"]
                          else datetime.now(UTC)))
    return found


def plan_replies(corpus: Corpus, customers: dict[str, Customer], seen: list[Seen], count: int,
                 rng: random.Random) -> list[Mail]:
    """``count`` replies spread over the requests: 75 % from customers, 25 % from coordinators."""
    by_request: dict[int, dict[str, Seen]] = {}
    for item in seen:
        by_request.setdefault(item.request, {})[item.recipient] = item
    requests = [n for n, who in by_request.items() if any(r in customers for r in who)]
    if not requests:
        raise SystemExit("no customer acknowledgment found in the outbox: cannot build replies")
    rng.shuffle(requests)
    coords = {email_: (name, locale) for email_, name, locale in COORDINATORS}
    mails = []
    for i in range(count):
        number = requests[i % len(requests)]
        who = by_request[number]
        customer_seen = next(s for r, s in who.items() if r in customers)
        coord_seen = [s for r, s in who.items() if r in coords]
        if coord_seen and rng.random() < 0.25:
            target = rng.choice(coord_seen)
            name, locale = coords[target.recipient]
            mails.append(corpus.reply(target, target.recipient, name, locale, coordinator=True))
        else:
            customer = customers[customer_seen.recipient]
            mails.append(corpus.reply(customer_seen, customer.email, customer.name, customer.locale,
                                      coordinator=False))
    rng.shuffle(mails)
    return mails


# --------------------------------------------------------------------------- sending

@dataclass
class SendResult:
    started: float
    finished: float  # the last 250
    times: list[tuple[float, float]]  # per mail: start, end of sendmail
    offered: list[float]  # per mail: when it was offered (its slot when paced, else the start of sendmail)
    refused: list[tuple[int, str]] = field(default_factory=list)
    lag: float = 0.0  # paced runs: worst delay behind schedule, seconds

    @property
    def duration(self) -> float:
        return self.finished - self.started


def bare_lf(mails: list[Mail]) -> list[Mail]:
    """The same mails with every CRLF made a bare LF: what ``smtplib``'s ``sendmail`` puts on the wire
    for the bytes of ``EmailMessage.as_bytes()`` under the default policy. Given bytes, it converts no
    line end; it still dot-stuffs and ends the data with CRLF.CRLF. The corpus has no other CR (its
    binary parts are base64), so nothing else changes."""
    return [replace(mail, raw=mail.raw.replace(b"\r\n", b"\n")) for mail in mails]


def send_all(port: int, mails: list[Mail], connections: int, rate: float | None = None) -> SendResult:
    """Send over ``connections`` reused SMTP connections; paced at ``rate`` mails/s when given."""
    counter = itertools.count()
    times: list[tuple[float, float]] = [(0.0, 0.0)] * len(mails)
    offered: list[float] = [0.0] * len(mails)
    refused: list[tuple[int, str]] = []
    lag = [0.0]
    barrier = threading.Barrier(connections + 1)
    start = [0.0]
    lock = threading.Lock()

    def worker() -> None:
        client = smtplib.SMTP("127.0.0.1", port, timeout=120)
        client.ehlo("bench.example")
        barrier.wait()
        while (i := next(counter)) < len(mails):
            if rate:
                due = start[0] + i / rate
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                else:
                    with lock:
                        lag[0] = max(lag[0], -delay)
            mail = mails[i]
            t = time.time()
            offered[i] = start[0] + i / rate if rate else t
            try:
                client.sendmail(mail.mail_from, [mail.rcpt], mail.raw)
            except smtplib.SMTPRecipientsRefused as error:
                with lock:
                    refused.append((i, str(error.recipients)))
            except smtplib.SMTPResponseException as error:
                with lock:
                    refused.append((i, f"{error.smtp_code} {error.smtp_error!r}"))
                client.rset()
            except (smtplib.SMTPServerDisconnected, OSError) as error:
                with lock:
                    refused.append((i, f"connection lost: {error}"))
                client = smtplib.SMTP("127.0.0.1", port, timeout=120)
                client.ehlo("bench.example")
            times[i] = (t, time.time())
        try:
            client.quit()
        except smtplib.SMTPException:
            pass

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    start[0] = time.time()
    barrier.wait()
    for thread in threads:
        thread.join()
    return SendResult(start[0], max(end for _, end in times), times, offered, refused, lag[0])


# --------------------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_line(path: Path, needle: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening; see {path.parent}")
        time.sleep(0.05)
    raise RuntimeError(f"no {needle!r} within {timeout} s; see {path.parent}")


def family(pid: int) -> list[int]:
    """A process and its descendants (``gateway serve`` runs its SMTP listener and its processor in
    children, started by any of its threads)."""
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return [pid, *(member for child in children for member in family(child))]


def cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU time of a live ``gateway serve`` and its children, by process: ``serve``, the
    ``processor`` (the child at nice 19) and the SMTP ``listeners`` (the other children)."""
    total = {"serve": 0, "listeners": 0, "processor": 0}
    for member in family(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        role = "serve" if member == pid else "processor" if int(fields[16]) == 19 else "listeners"
        total[role] += int(fields[11]) + int(fields[12])
    return {role: ticks / os.sysconf("SC_CLK_TCK") for role, ticks in total.items()}


def peak_rss_mb(pid: int) -> float:
    """The sum of the peak RSS of a process and its children (an upper bound of their joint peak)."""
    total = 0
    for member in family(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def stolen_seconds() -> float:
    """CPU time the hypervisor gave to other guests, all cores together (``steal`` in /proc/stat)."""
    return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8]) / os.sysconf("SC_CLK_TCK")


def file_creation_us(folder: Path, count: int = 200) -> float:
    """CPU of creating one empty file in ``folder``. On ext4 without a journal, as on this VM, a file
    created within minutes of many deletions nearby (a bench run's cleanup, a test suite) costs up to
    900 µs instead of about 25: the inode allocator steps over every recently deleted inode. The
    gateway creates three or four files a mail, so that swings a run by a third."""
    folder.mkdir(parents=True)
    started = time.process_time()
    for number in range(count):
        os.close(os.open(folder / str(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return (time.process_time() - started) / count * 1e6


SETTLED_US = 60  # creating a file on this VM's disk at rest: about 25 µs of CPU
SETTLE_LIMIT_SECONDS = 180


def settled_file_creation_us(root: Path) -> tuple[float, float]:
    """Wait until creating a file costs what it does at rest, then that cost and the seconds waited: the
    runs measure the gateway, not the file system's recovery from a mass deletion just before them (an
    earlier bench's cleanup, a test suite), which only the gateway's runs would pay, the do-nothing
    server writing no file. Each probe writes a folder of its own: removing one would start it over."""
    started = time.monotonic()
    for probe in itertools.count():
        cost = file_creation_us(root / f"probe{probe}")
        waited = time.monotonic() - started
        if cost < SETTLED_US or waited > SETTLE_LIMIT_SECONDS:
            return cost, waited
        if probe == 0:
            log(f"[disk] creating a file costs {cost:,.0f} µs (a mass deletion came shortly before): waiting "
                f"until it is under {SETTLED_US} µs, {SETTLE_LIMIT_SECONDS} s at most")
        time.sleep(2)
    raise AssertionError("unreachable")


def stop(process: subprocess.Popen[bytes], timeout: float = 90) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -9


class Gateway:
    """A throwaway home and its ``gateway serve`` subprocess."""

    def __init__(self, root: Path, *, py_spy: str | None = None, rules: int = 0) -> None:
        self.home = root
        root.mkdir(parents=True, exist_ok=True)
        if rules:
            from rules import site_rules  # bench/rules.py, beside this script

            (root / "rules").mkdir(exist_ok=True)
            (root / "rules" / "site.toml").write_text(site_rules(rules))
        self.data = root / "data"
        self.smtp_port, self.http_port = free_port(), free_port()
        self.config = root / "gateway.toml"
        self.config.write_text(f"""[gateway]
domain = "{DOMAIN}"
base_url = "http://127.0.0.1:{self.http_port}"
secret_key = "bench-{os.urandom(16).hex()}"
data_dir = "{self.data}"
locale = "fr"
site_name = "Boutique Exemple"
currency = "EUR"

[smtp]
host = "127.0.0.1"
port = {self.smtp_port}

[http]
host = "127.0.0.1"
port = {self.http_port}

[[mailboxes]]
address = "{SUPPORT}"
kind = "helpdesk"
include_supplier = false
""")
        self.base = [sys.executable, "-m", "gateway"]
        for address, name, locale in COORDINATORS:
            done = subprocess.run([*self.base, "people", "--config", str(self.config), "--data", str(self.data),
                                   "add", address, "--role", "coordinator", "--name", name, "--locale", locale],
                                  capture_output=True, text=True, cwd=root)
            if done.returncode != 0:
                raise RuntimeError(f"gateway people add {address}: exit {done.returncode}: {done.stderr.strip()}")
        self.stdout, self.stderr = root / "serve.out", root / "serve.err"
        self.process = subprocess.Popen(
            [*self.base, "serve", "--config", str(self.config), "--data", str(self.data),
             "--smtp-port", str(self.smtp_port), "--http-port", str(self.http_port)],
            stdout=self.stdout.open("wb"), stderr=self.stderr.open("wb"), cwd=root)
        wait_for_line(self.stdout, "SMTP on", self.process, 120)
        self.spy: subprocess.Popen[bytes] | None = None
        if py_spy:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            mode = {"idle": ["--idle"], "gil": ["--gil"], "active": []}[py_spy]
            self.spy = subprocess.Popen([spy, "record", "--pid", str(self.process.pid), "--rate", "100",
                                         "--nonblocking", "--format", "raw", "--threads", "--subprocesses", *mode,
                                         "--output", str(root / f"py-spy-{py_spy}.txt")],
                                        stdout=(root / "py-spy.log").open("wb"), stderr=subprocess.STDOUT)
        self.db_path = self.data / "gateway.db"
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        return self._db

    def count(self, sql: str) -> int:
        return int(self.db.execute(sql).fetchone()[0])

    def wait_processed(self, expected: int, stall: float = 120) -> None:
        """Until ``expected`` inbound rows are out of pending and no outbox row is pending."""
        last, since = -1, time.time()
        while True:
            done = self.count("SELECT count(*) FROM inbound WHERE status != 'pending'")
            pending_out = self.count("SELECT count(*) FROM outbox WHERE status = 'pending'")
            if done >= expected and pending_out == 0:
                return
            if done != last:
                last, since = done, time.time()
            elif time.time() - since > stall:
                raise RuntimeError(f"stalled: {done}/{expected} processed, {pending_out} outbox pending "
                                   f"for {stall} s; see {self.stderr}")
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}; see {self.stderr}")
            time.sleep(0.1)

    def close(self) -> tuple[int, float]:
        rss = peak_rss_mb(self.process.pid)
        if self.spy is not None:
            self.spy.send_signal(signal.SIGINT)
            try:
                self.spy.wait(30)
            except subprocess.TimeoutExpired:
                self.spy.kill()
        if self._db is not None:
            self._db.close()
        return stop(self.process), rss


def null_server(port: int, root: Path) -> subprocess.Popen[bytes]:
    """aiosmtpd with a handler that does nothing, set up like the gateway's Controller."""
    code = """
import signal, sys, threading
from aiosmtpd.controller import Controller
class Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]), data_size_limit=26214400,
                        enable_SMTPUTF8=True, decode_data=False)
controller.start()
print("listening", flush=True)
stopped = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopped.set())
stopped.wait()
controller.stop()
"""
    out = root / "null.out"
    process = subprocess.Popen([sys.executable, "-c", code, str(port)], stdout=out.open("wb"),
                               stderr=subprocess.STDOUT)
    wait_for_line(out, "listening", process, 30)
    return process


# --------------------------------------------------------------------------- measuring

def when(value: str | None) -> float:
    """A naive-UTC timestamp from SQLite as epoch seconds."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp() if value else float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


def latencies(gateway: Gateway, first_id: int) -> dict[str, Any]:
    """250 -> processed, and 250 -> the last notification of that message in outbox/new."""
    rows = gateway.db.execute("SELECT id, request_id, received_at, processed_at, status FROM inbound "
                              "WHERE id >= ? ORDER BY id", (first_id,)).fetchall()
    outbox = gateway.db.execute("SELECT request_id, created_at, sent_at FROM outbox ORDER BY id").fetchall()
    processed = [(when(r[2]), when(r[3]), r[1]) for r in rows if r[3] is not None]
    to_processed = [(p - r) * 1000 for r, p, _ in processed]
    # An outbox row belongs to the message of its request processed first at or after its creation.
    by_request: dict[int, list[tuple[float, float]]] = {}
    for _id, request, received, done, _status in gateway.db.execute(
            "SELECT id, request_id, received_at, processed_at, status FROM inbound WHERE processed_at IS NOT NULL"):
        if request is not None:
            by_request.setdefault(request, []).append((when(done), when(received)))
    for values in by_request.values():
        values.sort()
    last_sent: dict[tuple[int, float], float] = {}
    for request, created, sent in outbox:
        if request is None or sent is None:
            continue
        created_t = when(created)
        for done, received in by_request.get(request, []):
            if done >= created_t:
                key = (request, received)
                last_sent[key] = max(last_sent.get(key, 0.0), when(sent))
                break
    wanted = {(req, r) for r, _p, req in processed}
    to_sent = [(sent - received) * 1000 for (request, received), sent in last_sent.items()
               if (request, received) in wanted]
    return {"processed_ms": {"p50": percentile(to_processed, 50), "p99": percentile(to_processed, 99),
                             "max": max(to_processed, default=float("nan"))},
            "sent_ms": {"p50": percentile(to_sent, 50), "p99": percentile(to_sent, 99),
                        "max": max(to_sent, default=float("nan"))}}


def gateway_run(root: Path, args: argparse.Namespace, *, rate: float | None, seed: int, label: str,
                keep_corpus: bool, lf: bool = False) -> tuple[dict[str, Any], list[Mail]]:
    """One home, two timed phases (new requests, then replies by token), measured from the database.

    ``lf`` sends every mail with bare LF line ends (``bare_lf``), converted before the clock starts.
    The corpus returned keeps its CRLF: the do-nothing ceiling and the parse rates read it, and stock
    aiosmtpd refuses bare-LF lines longer than 1,001 bytes ("500 Line too long")."""
    gateway = Gateway(root, py_spy=args.py_spy if rate is None else None, rules=args.rules)
    failures: list[str] = []
    try:
        corpus = Corpus(seed)
        rng = random.Random(seed + 1)
        n_new = max(1, round(args.mails * 0.3))
        n_reply = args.mails - n_new
        customers = {c.email: c for c in (corpus.customer(i) for i in range(n_new))}
        new_mails = [corpus.new_request(c) for c in customers.values()]
        log(f"[{label}] serve pid {gateway.process.pid} on :{gateway.smtp_port}; phase 1: {len(new_mails)} new "
            f"requests" + (f" at {rate}/s" if rate else ""))
        phases = []
        cpu_start = cpu_seconds(gateway.process.pid)
        stolen = -stolen_seconds()
        first = send_all(gateway.smtp_port, bare_lf(new_mails) if lf else new_mails, args.connections, rate)
        gateway.wait_processed(len(new_mails))
        stolen += stolen_seconds()
        done1 = when(gateway.db.execute("SELECT max(processed_at) FROM inbound").fetchone()[0])
        phases.append((len(new_mails), first, done1))
        seen = read_outbox(gateway.data / "outbox", set())
        replies = plan_replies(corpus, customers, seen, n_reply, rng)
        log(f"[{label}] {len(seen)} mails in the outbox; phase 2: {len(replies)} replies "
            f"({sum(m.kind == 'coordinator-reply' for m in replies)} from coordinators)")
        first_reply_id = gateway.count("SELECT coalesce(max(id), 0) FROM inbound") + 1
        stolen -= stolen_seconds()
        second = send_all(gateway.smtp_port, bare_lf(replies) if lf else replies, args.connections, rate)
        gateway.wait_processed(len(new_mails) + len(replies))
        stolen += stolen_seconds()
        done2 = when(gateway.db.execute("SELECT max(processed_at) FROM inbound").fetchone()[0])
        phases.append((len(replies), second, done2))
        cpu_by = {role: seconds - cpu_start[role] for role, seconds in cpu_seconds(gateway.process.pid).items()}
        cpu_used = sum(cpu_by.values())

        failed = gateway.db.execute("SELECT id, decision FROM inbound WHERE status = 'failed'").fetchall()
        for inbound_id, decision in failed:
            failures.append(f"inbound {inbound_id} failed: {decision}")
        for result in (first, second):
            for index, why in result.refused:
                failures.append(f"mail {index} refused: {why}")
        statuses = dict(gateway.db.execute("SELECT status, count(*) FROM inbound GROUP BY status").fetchall())
        outbox = dict(gateway.db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        decisions: dict[str, int] = {}
        for (decision,) in gateway.db.execute("SELECT decision FROM inbound"):
            kind = re.split(r" (?:on |from |by |\(|#)|:", decision or "", maxsplit=1)[0]
            kind += " (unverified sender)" if "unverified sender" in (decision or "") else ""
            decisions[kind] = decisions.get(kind, 0) + 1
        lat_all = latencies(gateway, 1)
        done_at = {mid: when(at) for mid, at in gateway.db.execute(
            "SELECT message_id, processed_at FROM inbound WHERE processed_at IS NOT NULL")}
        client_ms = [(done_at[m.message_id] - t) * 1000 for batch, result_ in ((new_mails, first), (replies, second))
                     for m, t in zip(batch, result_.offered, strict=True) if m.message_id in done_at]
        lat_all["offered_to_processed_ms"] = {"p50": percentile(client_ms, 50), "p99": percentile(client_ms, 99),
                                              "max": max(client_ms, default=float("nan"))}
        lat_replies = latencies(gateway, first_reply_id)
        sent_seconds = sum(r.duration for _n, r, _d in phases)
        processed_seconds = sum(d - r.started for _n, r, d in phases)
        total = len(new_mails) + len(replies)
        mails = new_mails + replies
        result: dict[str, Any] = {
            "mails": total, "new": len(new_mails), "replies": len(replies),
            "offered_rate": rate, "worst_lag_s": round(max(first.lag, second.lag), 3),
            "accepted_per_s": total / sent_seconds,
            "processed_per_s": total / processed_seconds,
            "serve_cpu_ms_per_mail": 1000 * cpu_used / total,
            "serve_cpu_cores": cpu_used / processed_seconds,
            "stolen_share": stolen / (processed_seconds * (os.cpu_count() or 1)),
            "cpu_ms_per_mail_by_process": {role: 1000 * seconds / total for role, seconds in cpu_by.items()},
            "phases": [{"mails": n, "accepted_per_s": n / r.duration, "processed_per_s": n / (d - r.started),
                        "send_seconds": r.duration, "processed_seconds": d - r.started} for n, r, d in phases],
            "latency": lat_all, "latency_replies": lat_replies,
            "inbound_status": statuses, "outbox_status": outbox, "decisions": decisions,
            "outbox_files": len(list((gateway.data / "outbox" / "new").iterdir())),
        }
    except Exception:
        gateway.close()
        log(f"[{label}] serve log: {gateway.stderr}")
        raise
    code, rss = gateway.close()
    result["peak_rss_mb"] = rss
    result["serve_exit"] = code
    if code != 0:
        failures.append(f"serve exited {code} on SIGTERM (want 0); see {gateway.stderr}")
    result["failures"] = [f"[{label}] {line}" for line in failures]
    return result, (mails if keep_corpus else [])


def parse_rates(raws: list[bytes], repeat: int) -> dict[str, float]:
    from email.policy import compat32, default

    from gateway.mail.parse import parse

    def rate(function: Any) -> float:
        best = 0.0
        for _ in range(repeat):
            t = time.perf_counter()
            for raw in raws:
                function(raw)
            best = max(best, len(raws) / (time.perf_counter() - t))
        return best

    def default_full(raw: bytes) -> None:
        message = email.message_from_bytes(raw, policy=default)
        for name in ("From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References"):
            message.get(name)
        body = message.get_body(("plain", "html"))
        if body is not None:
            body.get_content()
        for part in message.iter_attachments():
            part.get_content()

    return {
        "stdlib_default": rate(lambda raw: email.message_from_bytes(raw, policy=default)),
        "stdlib_default_fields": rate(default_full),
        "stdlib_compat32": rate(lambda raw: email.message_from_bytes(raw, policy=compat32)),
        "gateway_parse": rate(parse),
    }


# --------------------------------------------------------------------------- report

def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "FAIL")


def report(results: dict[str, Any]) -> str:
    lines = []
    c = results["corpus"]
    lines.append(f"gateway: {results['gateway']}, {results['when']}")
    lines.append(f"ingest: {c['mails']} mails ({c['new']} new requests, {c['replies']} replies), "
                 f"{c['megabytes']:.1f} MB, median {c['median_kb']:.1f} KB, "
                 f"{c['with_attachment']} with attachments, {results['connections']} SMTP connections")
    null = results.get("null_smtp_per_s")
    mx, lf, rt = results.get("max"), results.get("max_lf"), results.get("rate")
    columns = [("max run", mx), ("max LF run", lf), (f"{results['offered_rate']:g}/s run", rt)]
    unpaced = [run for run in (mx, lf) if run]  # the runs the throughput targets apply to

    def f(value: float | None, unit: str = "") -> str:
        return "-" if value is None or value != value else f"{value:,.0f}{unit}"

    def cells(*path: str, show: Callable[[Any], str] = f) -> tuple[str, ...]:
        """One cell per run: its figure at ``path`` (keys into its results), or "-" for a run not made."""
        return tuple(show(functools.reduce(operator.getitem, path, run)) if run else "-" for _name, run in columns)

    def passes(ok: Callable[[dict[str, Any]], bool], runs: list[dict[str, Any]]) -> str:
        """Pass when every run given meets the target; n/a when none was made."""
        return verdict(all(ok(run) for run in runs) if runs else None)

    rows = [("", *(name for name, _run in columns), "target", "")]
    acc_target = null * TARGETS["accepted_vs_null"] if null else None
    rows.append(("SMTP accepted, mails/s", *cells("accepted_per_s"),
                 f">= {f(acc_target)} (50% of do-nothing)",
                 passes(lambda r: r["accepted_per_s"] >= acc_target, unpaced if acc_target else [])))
    rows.append(("fully processed, mails/s", *cells("processed_per_s"),
                 f">= {TARGETS['processed']:.0f}", passes(lambda r: r["processed_per_s"] >= TARGETS["processed"],
                                                          unpaced)))
    for key, name in (("processed_ms", "250 -> processed"), ("offered_to_processed_ms", "offered -> processed"),
                      ("sent_ms", "250 -> in outbox/new")):
        for p in ("p50", "p99"):
            target, ok = "", ""
            if key == "processed_ms" and p == "p99":
                target = f"< {TARGETS['p99_ms_at_rate']:.0f} ms at {results['offered_rate']:g}/s"
                ok = verdict(rt["latency"][key][p] < TARGETS["p99_ms_at_rate"] if rt else None)
            rows.append((f"{name} {p}, ms", *cells("latency", key, p), target, ok))
    rows.append(("serve CPU per mail, ms", *cells("serve_cpu_ms_per_mail", show="{:.1f}".format), "", ""))
    for role in ("serve", "listeners", "processor"):
        rows.append((f"  of which {role}", *cells("cpu_ms_per_mail_by_process", role, show="{:.1f}".format),
                     "", ""))
    rows.append(("serve CPU, cores busy", *cells("serve_cpu_cores", show="{:.2f}".format), "", ""))
    made = [run for _name, run in columns if run]
    rows.append(("serve peak RSS, MB", *cells("peak_rss_mb"), f"< {TARGETS['rss_mb']:.0f}",
                 passes(lambda r: r["peak_rss_mb"] < TARGETS["rss_mb"], made)))
    rows.append(("serve exit on SIGTERM", *cells("serve_exit", show=str), "0",
                 passes(lambda r: r["serve_exit"] == 0, made)))
    if rt:
        rows.append(("worst pacing lag, s", *(f"{rt['worst_lag_s']:.2f}" if run is rt else "" for _n, run in columns),
                     "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 or i > len(columns) else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
    for name, run in columns[:2]:
        if run:
            lines.append(f"{name} phases: " + "; ".join(
                f"{'new requests' if i == 0 else 'replies'}: {p['mails']} mails, accepted "
                f"{p['accepted_per_s']:,.0f}/s, processed {p['processed_per_s']:,.0f}/s"
                for i, p in enumerate(run["phases"])))
    ceilings = [("do-nothing aiosmtpd, 4 clients", null)]
    for key, name in (("stdlib_default", "stdlib parse, policy=default"),
                      ("stdlib_default_fields", "stdlib policy=default + headers + body"),
                      ("stdlib_compat32", "stdlib parse, compat32"),
                      ("gateway_parse", "gateway.mail.parse.parse")):
        ceilings.append((name, results.get("parse", {}).get(key)))
    lines.append("ceilings, mails/s: " + "; ".join(f"{n} {f(v)}" for n, v in ceilings))
    lines.append("this machine: CPU taken by other guests " + ", ".join(
        f"{share * 100:.0f} % during the {name}" for name, share in (
            *((name, run["stolen_share"]) for name, run in columns if run),
            ("do-nothing runs", results.get("null_stolen_share"))) if share is not None)
        + f"; creating a file in the bench's home {results['file_creation_us']:,.0f} µs of CPU before the runs (about"
          f" 25 at rest), after waiting {results['disk_settle_seconds']:.0f} s for it to settle")
    for name, run in columns:
        if run:
            lines.append(f"{name}: inbound {run['inbound_status']}, outbox {run['outbox_status']}, "
                         f"decisions {run['decisions']}")
    return "\n".join(lines)


def gateway_version() -> str:
    """Which gateway code ran: its folder, and the git commit when it is a checkout (+dirty if edited)."""
    import gateway

    folder = Path(gateway.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "."], capture_output=True,
                               text=True, check=True).stdout.strip()
        return f"{folder} at {commit}{'+dirty' if dirty else ''}"
    except (subprocess.CalledProcessError, FileNotFoundError):
        return str(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000, help="mails per run (default 2000)")
    parser.add_argument("--rate", type=float, default=50.0, help="offered mails/s of the latency run (default 50)")
    parser.add_argument("--rate-mails", type=int, help="mails of the latency run (default: --mails)")
    parser.add_argument("--only", choices=["max", "lf", "rate"],
                        help="one run only: max, lf (max with bare-LF line ends) or rate (ceilings are always "
                             "measured)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent SMTP connections (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed")
    parser.add_argument("--rules", type=int, default=0, help="site rules loaded in the gateway (bench/rules.py)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the temp homes (logs, database, outbox)")
    parser.add_argument("--py-spy", choices=["gil", "idle", "active"],
                        help="record serve and its children with py-spy during the max and lf runs "
                             "(py-spy-MODE.txt in their kept homes; gil: CPU holding the GIL, idle: wall time "
                             "incl. waits)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    results: dict[str, Any] = {"connections": args.connections, "offered_rate": args.rate,
                               "targets": TARGETS, "when": datetime.now(UTC).isoformat(timespec="seconds"),
                               "gateway": gateway_version()}
    failures: list[str] = []
    corpus_mails: list[Mail] = []
    try:
        results["file_creation_us"], results["disk_settle_seconds"] = settled_file_creation_us(root)
        if args.only in (None, "max"):
            results["max"], corpus_mails = gateway_run(root / "max", args, rate=None, seed=args.seed, label="max",
                                                       keep_corpus=True)
            failures += results["max"]["failures"]
        if args.only in (None, "lf"):
            results["max_lf"], mails = gateway_run(root / "lf", args, rate=None, seed=args.seed, label="lf",
                                                   keep_corpus=not corpus_mails, lf=True)
            corpus_mails = corpus_mails or mails
            failures += results["max_lf"]["failures"]
        if args.only in (None, "rate"):
            rate_args = argparse.Namespace(**{**vars(args), "mails": args.rate_mails or args.mails})
            results["rate"], mails = gateway_run(root / "rate", rate_args, rate=args.rate, seed=args.seed,
                                                 label="rate", keep_corpus=not corpus_mails)
            corpus_mails = corpus_mails or mails
            failures += results["rate"]["failures"]

        sizes = sorted(len(m.raw) for m in corpus_mails)
        results["corpus"] = {
            "mails": len(corpus_mails), "new": sum(m.kind == "new" for m in corpus_mails),
            "replies": sum(m.kind != "new" for m in corpus_mails), "megabytes": sum(sizes) / 1e6,
            "median_kb": sizes[len(sizes) // 2] / 1024, "p10_kb": sizes[len(sizes) // 10] / 1024,
            "p90_kb": sizes[len(sizes) * 9 // 10] / 1024,
            "with_attachment": sum(b"Content-Disposition: attachment" in m.raw for m in corpus_mails)}

        port = free_port()
        (root / "null").mkdir()
        null = null_server(port, root / "null")
        try:
            log(f"[ceiling] do-nothing aiosmtpd: {len(corpus_mails)} mails")
            stolen, started = stolen_seconds(), time.monotonic()
            results["null_smtp_per_s"] = max(len(corpus_mails) / send_all(port, corpus_mails, args.connections).duration
                                             for _ in range(2))
            results["null_stolen_share"] = ((stolen_seconds() - stolen)
                                            / ((time.monotonic() - started) * (os.cpu_count() or 1)))
        finally:
            stop(null, 10)
        log("[ceiling] parse rates")
        results["parse"] = parse_rates([m.raw for m in corpus_mails], repeat=2)
    finally:
        if args.keep or args.py_spy:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    results["failures"] = failures
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print(report(results))
    if failures:
        print(f"\n{len(failures)} problem(s):", file=sys.stderr)
        for line in failures[:50]:
            print("  " + line, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
