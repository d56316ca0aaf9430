"""The rule table: reading files, overriding built-in rules, refusing broken ones."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import rule_engine

from gateway.change import RequestChange
from gateway.context import open_context
from gateway.helpdesk import Author, add_comment, open_request
from gateway.models import Person
from gateway.rules import parser_tables
from gateway.rules.conditions import Condition, compile_condition, matches
from gateway.rules.engine import facts
from gateway.rules.loader import RuleFileError, load_rules, read_rule_file
from gateway.settings import Mailbox, Settings
from gateway.transaction import mailing

REPOSITORY = Path(__file__).resolve().parents[1]


def home_with(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "rules").mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / "rules" / f"{name}.toml").write_text(text)
    load_rules.cache_clear()
    return tmp_path


def test_every_example_of_the_rules_readme_is_a_valid_rule(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", (REPOSITORY / "rules" / "README.md").read_text(), re.S)
    assert len(blocks) >= 5
    for number, block in enumerate(blocks):
        path = tmp_path / f"example{number}.toml"
        path.write_text(block.replace("# enabled = false", ""))
        assert read_rule_file(path)


def test_a_home_rule_of_the_same_name_replaces_the_built_in_one_in_place(tmp_path: Path) -> None:
    built_in = [rule.name for rule in load_rules(home_with(tmp_path / "empty"))]
    home = home_with(tmp_path / "site", override='''
[[rules]]
name = "customer-reply-reopens"
event = "comment"
condition = 'role == "requester" and status == "resolved" and not (text =~~ "(?i)^merci")'
actions = [{ status = "in-progress" }]

[[rules]]
name = "sticky-private"
event = "comment"
enabled = false

[[rules]]
name = "site-rule"
event = "message"
actions = [{ label = "vu" }]
''')
    rules = load_rules(home)
    names = [rule.name for rule in rules]
    assert names == [n for n in built_in if n != "sticky-private"] + ["site-rule"]
    reopen = next(rule for rule in rules if rule.name == "customer-reply-reopens")
    assert "merci" in reopen.source
    assert not matches(reopen.condition, {"role": "requester", "status": "resolved", "text": "Merci !"})


@pytest.mark.parametrize(("text", "expected"), [
    ('[[rules]]\nname = "x"\nevent = "mail"\n', "event must be one of"),
    ('[[rules]]\nname = "x"\nevent = "message"\nactions = [{ status = "done" }]\n', "status takes one of"),
    ('[[rules]]\nname = "x"\nevent = "message"\nactions = [{ assign = "bob" }]\n', "takes an email address"),
    ('[[rules]]\nname = "x"\nevent = "message"\ncondition = "subject =~ \\"(\\""\n', "condition"),
    ('[[rules]]\nname = "x"\nevent = "message"\ncolor = "red"\n', "unknown keys"),
    ('[[rules]]\nname = "x"\nevent = "message"\nactions = [{ notify = { template = "t" } }]\n', "notify takes"),
    ('[[rules]\n', "line 2"),
])
def test_a_broken_rule_is_refused_with_its_file_line_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("# comment\n" + text)
    with pytest.raises(RuleFileError) as refused:
        read_rule_file(path)
    assert str(refused.value).startswith(str(path))
    assert expected in str(refused.value)


def test_conditions_are_never_python(tmp_path: Path) -> None:
    witness = tmp_path / "ran"
    condition = compile_condition(f'__import__("os").system("touch {witness}")')
    assert matches(condition, {"subject": "x"}) is False
    assert not witness.exists()


def test_the_example_homes_rules_load() -> None:
    load_rules.cache_clear()
    assert "urgent-subject" in [rule.name for rule in load_rules(REPOSITORY)]
    assert tomllib.loads((REPOSITORY / "rules" / "urgent.toml").read_text())


def test_the_fast_evaluator_agrees_with_rule_engine_on_every_shape() -> None:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("rules_bench", REPOSITORY / "bench" / "rules.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    sources = [block.split("condition = '", 1)[1].split("'\n", 1)[0]
               for block in bench.site_rules(12).split("[[rules]]") if "condition" in block]
    sources += ['"urgent" in labels', 'not ("x" in labels)', "assignee == null", "assignee != null",
                'status in ["new", "pending"]', 'text =~ "(?i)bonjour"', 'text !~~ "merci"', "unverified",
                'product == "A" or has_supplier and not sticky_private', '"lamp" in mentioned_products']
    facts = bench.message_facts(200) + [{"labels": ["urgent"], "assignee": "a@b", "text": "Bonjour merci",
                                         "status": "pending", "mentioned_products": ["lamp"]}, {}]
    for source in sources:
        condition = compile_condition(source)
        assert condition.test is not None, f"{source} fell back to the slow evaluator"
        for current in facts:
            assert matches(condition, current) == reference(condition, current), (source, current)


def reference(condition: Condition, facts: dict[str, object]) -> bool:
    """rule-engine's own answer; a condition it cannot evaluate does not match."""
    try:
        return bool(condition.parsed.matches(facts))
    except (TypeError, rule_engine.errors.EngineError):
        return False


def test_the_parser_tables_kept_in_the_package_are_those_the_installed_rule_engine_builds(tmp_path: Path) -> None:
    """Stale tables would cost start-up time only (ply ignores them and builds its own): this says when to
    write them again."""
    kept = Path(parser_tables.__file__).with_name("rule_engine_tables.py")
    assert parser_tables.write(tmp_path).read_text() == kept.read_text(), \
        "rule-engine's grammar changed: copy the file written by gateway.rules.parser_tables.write over it"


def test_loading_rules_takes_rule_engines_parser_from_the_kept_tables() -> None:
    """In a fresh interpreter, as every command and processor starts: ply read the tables, it did not build them."""
    probe = ("import gateway.rules.conditions, rule_engine, gateway.rules.rule_engine_tables as kept;"
             "print(rule_engine.Rule.parser._parser.action is kept._lr_action)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True", result.stderr


def test_the_facts_a_condition_can_name_are_those_the_readme_lists(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", mailboxes=(Mailbox("support@shop.example"),))
    context = open_context(settings)
    with mailing(context) as (session, mailer):
        customer = Person(email="jean@client.example", role="customer")
        request, requester = open_request(session, settings.mailboxes[0], "Colis abîmé", customer, None)
        author = Author(customer.email, "requester", requester)
        comment = add_comment(session, request, author, "Bonjour", visibility="public")
        named = set(facts(RequestChange(session, settings, mailer, request, author, comment), "message"))
        session.rollback()
    table = (REPOSITORY / "rules" / "README.md").read_text().split("### Conditions")[1].split("### Actions")[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))
    assert named == documented
