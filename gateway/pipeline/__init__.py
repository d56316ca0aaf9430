"""What happens to a stored message, in this order:

1. claimed with its conversation, which no one else applies meanwhile (``claim``);
2. read and parsed (``gateway.mail.parse``), its dedupe key claimed once (``process``);
3. applied, one step after the other until one decides (``apply.STEPS``): our own mail come back,
   no sender, the thread (``thread``: the request its reply token, References or subject tag names),
   a delivery report, a robot, the sender's account, ``#help``, ``#list`` and ``#show NUMBER`` at the bare address
   (``questions``), a coordinator's forward of a customer's mail (opened for that customer), a new
   request, or a comment with its rules and ``#commands``; commands that cannot apply are refused
   (``refusal``);
4. the mails it causes are written to the outbox in the same transaction (``gateway.notify``), then
   committed; the processor hands the new outbox ids to the sender;
5. a message a step breaks on is kept degraded, with an owner (``degrade``).
"""
