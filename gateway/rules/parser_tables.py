"""rule-engine's parser tables read from a file, not built at import (a speed trick).

``rule-engine`` builds the LALR tables of its grammar with its vendored ply every time it is
imported: 0.4-0.7 s of CPU in every process that loads rules (each command, the processor,
``gateway import``'s start). Before building, ply looks for a module
``rule_engine.parser.parsetab`` and takes its tables when their grammar signature equals the
one it was given. Importing this module puts ``rule_engine_tables`` (written by ply itself, by
:func:`write`) under that name; it must run before ``rule_engine`` is first imported.

Invariant: tables of another grammar (another rule-engine release) are ignored by ply, which then
builds its own as before, so a stale file costs start-up time, never a wrong parse.
``tests/test_rules.py`` fails when the file is stale; :func:`write` makes it again.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.rules import rule_engine_tables

sys.modules.setdefault("rule_engine.parser.parsetab", rule_engine_tables)


def write(folder: Path) -> Path:
    """Build the tables of the installed rule-engine's grammar and write them as
    ``folder/rule_engine_tables.py``, as ply writes them (copy it here when rule-engine changes)."""
    # Imported here, not above: importing rule_engine before the tables are in place builds them.
    from rule_engine._vendor.ply import yacc
    from rule_engine.parser import Parser

    # ply looks for rule_engine.parser.rule_engine_tables first, finds none and builds.
    yacc.yacc(module=Parser(), debug=False, tabmodule="rule_engine_tables", write_tables=True, outputdir=str(folder))
    return folder / "rule_engine_tables.py"
