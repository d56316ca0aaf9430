"""Mail coming in: the SMTP listener and its spool, IMAP polling, and admission (a stored message's
number, in the order received). Nothing here reads a message: the pipeline does."""
