"""The ``gateway`` command (CONTRACT §1): ``main`` reads the arguments and runs one command.

Every command imports what it works with when it runs, not when this package is imported:
``gateway --help``, ``gateway parse`` and the shell's completion stay quick, without the web,
the broker and the database code loading.
"""
