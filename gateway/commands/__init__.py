"""The ``#commands`` of CONTRACT §5: ``grammar`` reads and checks them, ``registry`` applies them.

Handlers live beside the domain they change (``helpdesk``, ``orders``) and register by name.
"""
