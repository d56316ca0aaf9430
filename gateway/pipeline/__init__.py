"""What happens to a stored message, in this order (``process``):

1. claim it (its dedupe key, once), read and parse it (``gateway.mail.parse``);
2. thread it: the request its reply token, References or subject tag names (``thread``);
3. apply it: a new request or a comment, the rules, the ``#commands`` (``apply``), or the
   refusal of commands that cannot apply (``refusal``), or ``#list`` (``listing``);
4. notify: the mails it causes are written to the outbox in the same transaction (``gateway.notify``);
5. a message a step breaks on is kept degraded, with an owner (``degrade``).
"""
