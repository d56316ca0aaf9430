"""The rules engine: ordered rules (built-in, then the home's ``rules/*.toml``) that change a
request inside the transaction when something happens to it.

``loader`` reads and checks rule files, ``conditions`` compiles the safe expressions,
``actions`` are the verbs, ``engine`` runs the table for one event and records what matched.
"""
