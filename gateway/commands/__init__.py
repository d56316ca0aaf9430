"""The ``#commands`` of CONTRACT §5: ``grammar`` reads and checks them, ``dispatch`` applies them.

Handlers live beside the domain they change (``helpdesk``, ``orders``) and register by name in
``registry``'s tables, which ``dispatch`` reads.
"""
