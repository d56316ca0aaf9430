"""The ``gateway`` command line: its parser, the helpdesk commands, and ``main``. Exit 0 on success, 1 on a
clear error, 2 on bad usage.

Each command imports what it needs inside its own function, to keep start-up light: ``gateway --help``
and the commands that open no database load neither SQLAlchemy, nor Jinja, nor the pipeline.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from gateway.addresses import email_argument
from gateway.cli.base import UsageError, UserError, print_json, settings_of, signing_settings
from gateway.cli.config import register_config_commands
from gateway.cli.orders import register_order_commands
from gateway.logs import configure_logging
from gateway.runtime import count_in, interrupt_as_request, leave
from gateway.settings import (
    ConfigError,
)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = signing_settings(args)
    count_in(settings.data_dir / "metrics")  # before the serving code (and prometheus-client) is imported
    from gateway.service.serve import serve

    return serve(settings, args.role)


def cmd_worker(args: argparse.Namespace) -> int:
    from gateway.service.serve import run_worker

    return run_worker(signing_settings(args), threads=args.threads)


def cmd_parse(args: argparse.Namespace) -> int:
    from gateway.cli.parsed import parsed_json
    from gateway.mail.parse import parse

    raw = sys.stdin.buffer.read() if args.file == "-" else _read_file(args.file)
    parsed = parsed_json(parse(raw))
    if args.json:
        print_json(parsed)
        return 0
    sender = parsed["from"]
    print(f"From:      {sender['name']} <{sender['address']}>" if sender else "From:      (none)")
    print(f"Subject:   {parsed['subject']}")
    print(f"Message-ID: {parsed['message_id']}")
    print(f"Automatic: {parsed['auto'] or 'no'}" + (f" ({parsed['auto_reason']})" if parsed["auto"] else ""))
    if delivery := parsed["delivery"]:
        print(f"Delivery:  {delivery['kind']}" + (f", reported by {delivery['reporting_mta']}"
                                                    if delivery["reporting_mta"] else ""))
        for recipient in delivery["recipients"]:
            print(f"  {recipient['address'] or '(unnamed)'} {recipient['action']} {recipient['status'] or '-'}"
                  + (" permanent" if recipient["permanent"] else "") + f" {recipient['diagnostic'][:100]}")
    print(f"Attachments: {', '.join(a['filename'] for a in parsed['attachments']) or 'none'}")
    print(f"Defects:   {', '.join(parsed['defects']) or 'none'}")
    print("\n" + parsed["reply_text"])
    return 0


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from error


# The processor of a large import, named: started before the command imports the pipeline, it imports it
# on the other core meanwhile (a second of CPU each). Not yielding: the import takes no mail in.
PROCESSOR_MAIN = "gateway.service.processor:processor_main"


def cmd_import(args: argparse.Namespace) -> int:
    from gateway.children import Child
    from gateway.intake.archives import OWN_PROCESS_FROM, open_archive

    settings = settings_of(args)
    archive = open_archive(Path(args.path))
    with closing(archive), interrupt_as_request() as interrupted:
        child = None
        try:
            if len(archive) >= OWN_PROCESS_FROM:
                child = Child(PROCESSOR_MAIN, settings, False)
            from gateway.service.importer import import_archive

            return import_archive(settings, archive, args.mailbox, interrupted, processor_child=child,
                                  as_json=args.json, send_mail=not args.no_mail)
        except BaseException:  # a mailbox not configured, an interruption: its processor stops with it
            if child is not None:
                child.kill()
            raise


def cmd_requests(args: argparse.Namespace) -> int:
    from gateway.cli.presenters import load_requests, request_detail, request_summary
    from gateway.context import open_context

    context = open_context(settings_of(args))
    with context.sessions() as session:
        if args.action == "show":
            from gateway.models import Request

            request = session.get(Request, args.number)
            if request is None:
                raise UserError(f"no request #{args.number}: see `gateway requests list`")
            detail = request_detail(session, request)
            if args.json:
                print_json(detail)
            else:
                _print_request(detail)
            return 0
        requests = [request_summary(r) for r in load_requests(session, args.kind, args.status, customer=args.customer,
                                                              label=args.label, search=args.search,
                                                              unread=args.unread)]
    if args.sort == "expected":
        order = {"coordinator": 0, "supplier": 1, "customer": 2}
        requests.sort(key=lambda r: order.get(r["expected_response"] or "", 3))
    if args.json:
        print_json(requests)
    else:
        for r in requests:
            expected = r["expected_response"] or "-"
            print(f"#{r['number']:<6} {r['kind']:<8} {r['status']:<12} {expected:<12} "
                  f"{(r['requester'] or '-')[:32]:<32} {r['subject'][:60]}")
    return 0


def _print_request(detail: dict[str, Any]) -> None:
    print(f"#{detail['number']} [{detail['kind']}, {detail['status']}] {detail['subject']}")
    print(f"mailbox {detail['mailbox']}, assignee {detail['assignee'] or 'everyone'}, "
          f"expected response {detail['expected_response'] or 'none'}")
    print("participants: " + ", ".join(f"{p['email']} ({p['role']})" for p in detail["participants"]))
    print("labels: " + (", ".join(detail["labels"]) or "none"))
    for comment in detail["comments"]:
        flag = " unverified sender" if comment["unverified_sender"] else ""
        print(f"\n--- {comment['created_at']} {comment['author']} ({comment['role']}, {comment['visibility']}{flag})")
        print(comment["text"])
    for note in detail["notes"]:
        print(f"\n--- {note['created_at']} {note['author']} (internal note)")
        print(note["text"])
    for event in detail["events"]:
        print(f"\n* {event['created_at']} {event['kind']}: {event['detail']}")


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.cli.check import as_json, check_home

    findings = check_home(signing_settings(args), relay=args.relay)
    if args.json:
        print_json(as_json(findings))
    else:
        for finding in findings:
            print(finding.line())
    return 0 if all(finding.ok for finding in findings) else 1


def cmd_comments(args: argparse.Namespace) -> int:
    from gateway.context import open_context
    from gateway.helpdesk import change_visibility

    context = open_context(settings_of(args))
    with context.sessions.begin() as session:
        try:
            print(change_visibility(session, args.comment_id, args.visibility))
        except LookupError as error:
            raise UserError(str(error)) from error
    return 0


def cmd_people(args: argparse.Namespace) -> int:
    from gateway.context import open_context
    from gateway.helpdesk import upsert_person

    context = open_context(settings_of(args))
    with context.sessions.begin() as session:
        person = upsert_person(session, args.email, role=args.role, name=args.name, locale=args.locale)
        print(f"{person.email}: {person.role}" + (f" ({person.name})" if person.name else ""))
    return 0


def cmd_products(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from gateway.context import open_context
    from gateway.helpdesk import upsert_person
    from gateway.models import Product

    context = open_context(settings_of(args))
    with context.sessions.begin() as session:
        product = session.scalars(select(Product).where(Product.sku == args.sku)).first()
        if product is None:
            product = Product(sku=args.sku, name=args.name)
            session.add(product)
        product.name = args.name
        if args.on_quote is not None:
            product.on_quote = args.on_quote == "yes"
        if args.supplier:
            product.supplier = upsert_person(session, args.supplier, role="supplier")
        print(f"{product.sku}: {product.name}" + (f", supplier {args.supplier}" if args.supplier else "")
              + (", priced on quote" if product.on_quote else ""))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from gateway.service.replay import replay

    if args.number is None and not args.failed:
        raise UsageError("give a stored message NUMBER or --failed")
    return replay(settings_of(args), args.number, failed=args.failed, as_json=args.json)


def cmd_sweep(args: argparse.Namespace) -> int:
    """One sweep now, as ``gateway serve`` runs every ``sweep_seconds``: for cron, or to catch up by hand."""
    from gateway.context import open_context
    from gateway.outbound.outbox import deliver_all
    from gateway.service.sweep import publish_revoked, sweep

    context = open_context(signing_settings(args))
    publish_revoked(context)
    swept = sweep(context)
    deliver_all(context, swept.outbox_ids)  # a command has no worker: the mails go now
    if args.json:
        print_json({"quotes_expired": swept.expired_quotes, "deadlines": swept.deadlines,
                     "failed": swept.failed, "mails": len(swept.outbox_ids)})
    else:
        for line in swept.deadlines:
            print(line)
        if swept.expired_quotes:
            print(f"quotes expired: {', '.join(map(str, swept.expired_quotes))}")
        if swept.failed:
            print(f"deadlines that failed (kept, tried again at the next sweep): {', '.join(map(str, swept.failed))}")
        if not (swept.deadlines or swept.expired_quotes or swept.failed):
            print("nothing was due")
        else:
            print(f"{len(swept.outbox_ids)} mails sent")
    return 1 if swept.failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="An email-first helpdesk and order gateway.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="the config file (else $GATEWAY_CONFIG, else ./gateway.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=text, description=text)
        command.set_defaults(handler=handler)
        return command

    serve = add("serve", cmd_serve, "run SMTP ingress, the web app, the worker and the deadline sweep")
    serve.add_argument("--data", help="data folder (raw mail, attachments, outbox, SQLite database)")
    serve.add_argument("--smtp-host", help="address SMTP listens on (default [smtp] host, 127.0.0.1); "
                                            "0.0.0.0 in a container")
    serve.add_argument("--smtp-port", type=int, help="SMTP port (default 2525)")
    serve.add_argument("--http-host", help="address the web listens on (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, help="web port (default 8000)")
    serve.add_argument("--role", choices=["all", "smtp", "web", "process"], default="all",
                       help="all (the default): everything in one process; smtp: take mail in; process: apply "
                            "it, send mail, sweep; web: the pages. One role per host needs PostgreSQL and Redis "
                            "shared by all of them")
    worker = add("worker", cmd_worker, "send mail beside gateway serve, on the Redis broker (serve applies the "
                 "messages, in order)")
    worker.add_argument("--threads", type=int, default=4, help="threads sending mail (default 4)")
    worker.add_argument("--data", help="data folder")
    parse = add("parse", cmd_parse, "parse one message and print what the pipeline sees (no database)")
    parse.add_argument("file", metavar="FILE|-")
    parse.add_argument("--json", action="store_true", help="print the fields as JSON")
    imp = add("import", cmd_import, "feed an mbox file or a Maildir through the pipeline")
    imp.add_argument("path", metavar="PATH")
    imp.add_argument("--mailbox", help="the mailbox address they were sent to (default: the first one)")
    imp.add_argument("--data", help="data folder")
    imp.add_argument("--json", action="store_true", help="print the counts as JSON")
    imp.add_argument("--no-mail", action="store_true",
                     help="import history quietly: notifications are recorded, never sent")
    check = add("check", cmd_check, "validate a home without starting: config, mailboxes, rules, templates, the "
                "data folder, the database, the broker; one finding a line, exit 1 when one fails")
    check.add_argument("--data", help="data folder")
    check.add_argument("--relay", action="store_true", help="also say EHLO to the [relay] (is STARTTLS offered?)")
    check.add_argument("--json", action="store_true", help="the findings as JSON: [{check, ok, detail}]")
    comments = add("comments", cmd_comments, "change comments afterwards")
    comments.add_argument("--data", help="data folder")
    comment_actions = comments.add_subparsers(dest="action", required=True, metavar="ACTION")
    visibility = comment_actions.add_parser("visibility", help="make a comment public or private")
    visibility.add_argument("comment_id", type=int, metavar="COMMENT_ID")
    visibility.add_argument("visibility", choices=["public", "private"])
    requests = add("requests", cmd_requests, "list or show requests")
    requests.add_argument("--data", help="data folder")
    actions = requests.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the inbox, newest first")
    listing.add_argument("--kind", choices=["helpdesk", "order"])
    listing.add_argument("--status")
    listing.add_argument("--customer", metavar="EMAIL", help="only the requests this customer opened")
    listing.add_argument("--label", metavar="NAME", help="only the requests with this label")
    listing.add_argument("--search", metavar="TEXT", help="words in the subject or a comment, or a number (#123)")
    listing.add_argument("--unread", action="store_true", help="only the requests nobody has acted on since")
    listing.add_argument("--sort", choices=["newest", "expected"], default="newest",
                         help="newest first (default), or those waiting on the coordinators first")
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one request whole")
    show.add_argument("number", type=int, metavar="NUMBER")
    show.add_argument("--json", action="store_true")
    people = add("people", cmd_people, "manage accounts")
    people.add_argument("--data", help="data folder")
    people_actions = people.add_subparsers(dest="action", required=True, metavar="ACTION")
    person = people_actions.add_parser("add", help="create or update an account")
    person.add_argument("email", metavar="EMAIL", type=email_argument)
    person.add_argument("--role", required=True, choices=["coordinator", "supplier", "observer", "customer"])
    person.add_argument("--name")
    person.add_argument("--locale", choices=["fr", "en"])
    products = add("products", cmd_products, "manage products")
    products.add_argument("--data", help="data folder")
    product_actions = products.add_subparsers(dest="action", required=True, metavar="ACTION")
    product = product_actions.add_parser("add", help="a product with its main supplier")
    product.add_argument("sku", metavar="SKU")
    product.add_argument("--name", required=True)
    product.add_argument("--supplier", metavar="EMAIL", type=email_argument)
    product.add_argument("--on-quote", choices=["yes", "no"],
                         help="yes: no set price, an order naming it without a unit price waits for a quote "
                              "(unchanged when left out)")
    replay = add("replay", cmd_replay, "re-run stored raw messages through the pipeline (idempotent)")
    replay.add_argument("number", type=int, nargs="?", metavar="NUMBER", help="a stored message's number")
    replay.add_argument("--failed", action="store_true", help="every message whose processing failed")
    replay.add_argument("--data", help="data folder")
    replay.add_argument("--json", action="store_true")
    sweep = add("sweep", cmd_sweep, "do now what is due (deadlines, quote expiry), as gateway serve does every "
                "sweep_seconds; for cron, or to catch up by hand")
    sweep.add_argument("--data", help="data folder")
    sweep.add_argument("--json", action="store_true", help="print what was done as JSON")
    register_order_commands(add, people_actions)
    register_config_commands(add)
    for command in sub.choices.values():
        _options_after_actions(command)
    return parser


def _options_after_actions(command: argparse.ArgumentParser) -> None:
    """``gateway requests list --config X`` as well as ``gateway requests --config X list``: each ACTION
    of a command also takes the command's ``--config`` and ``--data``. Their default is left unset
    (SUPPRESS), so an action never erases what was given before it."""
    options = {option for action in command._actions for option in action.option_strings}
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            for action_parser in action.choices.values():
                taken = {option for known in action_parser._actions for option in known.option_strings}
                for option in ("--config", "--data"):
                    if option in options and option not in taken:
                        action_parser.add_argument(option, default=argparse.SUPPRESS,
                                                   help=f"as {option} before the action")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # What the gateway writes (the database, raw messages, attachments, the outbox) is the site's alone:
    # files 0600, folders 0700, in this process and in those it starts, whatever umask it was given.
    # The caller's umask is given back at the end (main may be called from Python, as the tests do).
    caller_umask = os.umask(0o077)
    try:
        args = parser.parse_args(argv)
        configure_logging()
        status = int(args.handler(args))
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return status
    except BrokenPipeError:
        return _reader_went_away()
    except UsageError as error:
        parser.print_usage(sys.stderr)
        print(f"gateway: error: {error}", file=sys.stderr)
        return 2
    except (UserError, ConfigError) as error:  # a rule file error is a ConfigError
        print(f"gateway: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        os.umask(caller_umask)


def run() -> int:
    """``gateway`` as a command (the installed script, ``python -m gateway``): ``main``, then the process's
    end made cheap (``runtime.leave``). Python callers and the tests call ``main``, and go on living."""
    status = main()
    leave()
    return status


def _reader_went_away() -> int:
    """``gateway requests show 1 --json | head``: the reader has what it wanted; exit quietly, with the
    status of a command stopped by SIGPIPE, as ``cat`` or ``git`` would. (Python ignores SIGPIPE so
    that a server's write to a closed socket is an error, not death: it cannot simply be restored.)"""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere, quietly, at exit
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
