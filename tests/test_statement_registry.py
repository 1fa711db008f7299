"""A statement is one class plus one grammar rule (the worked example of docs/architecture.md),
and the checker sees every field of every statement."""

import pytest

from rayscript import Cluster
from rayscript.items import unpack_item
from rayscript.language.checker import check
from rayscript.language.help import help_text
from rayscript.language.parser import Parser, grammar_text
from rayscript.language.syntax import Key, Rank, Statement, rank_field
from rayscript.protocol.store import GetOrder
from rayscript.results import Result
from rayscript.statements import Explain, parse


def test_a_new_statement_is_one_class_and_one_grammar_rule():
    registry = dict(Statement.registry)  # the language's statements, and the new one beside them

    class Shout(Statement, keyword="shout", registry=registry):
        syntax = "shout KEY on RANK"
        summary = "Show the item held on RANK in capitals."
        example = "shout paths/p on 1"

        key: Key
        rank: Rank = rank_field()

        def run(self, cmd):
            wk = cmd.key(self.key)
            rank = cmd.rank(self.rank)
            (reply,) = yield cmd.order(GetOrder(recipient=rank, key=wk.key))
            return [Result("shout", str(unpack_item(reply.item)).upper())]

    grammar = grammar_text() + '\nshout: "shout" key "on" rank\n'  # 'statement' takes every registered one
    parser = Parser(grammar, registry)
    (st,) = parser.parse("shout paths/p on 1")
    assert st == Shout(Key("paths", "p"), 1)
    assert "Statement" not in Statement.registry and "shout" not in Statement.registry
    # the generic checks see its rank field; help comes from the class
    (err,) = check(parser.parse("shout paths/p on 7"), size=2)
    assert err.message == "rank 7 is outside the cluster: ranks are 0..1 (2 ranks)"
    assert help_text("shout", registry).startswith("shout KEY on RANK\n  Show the item")
    with Cluster.local(2) as c:
        c.run("put paths/p on 1")
        ((res,),) = c.execute([st])
        assert res.text == "PATHS/P LENGTH=0 SEQUENCE=-"
        ((plan,),) = c.execute([Explain(st)])
        assert plan.data["lines"][1] == "  GET-ORDER      0 -> 1  key=paths/p"


@pytest.mark.parametrize("text, message", [
    ("walk kmers/$s into paths/p", "undefined variable $s in key kmers/$s"),
    ("walk kmers/1 into paths/$p", "undefined variable $p in key paths/$p"),
    ("search kmers/1 depth=$d into results/r", "undefined variable $d"),
    ("replicate kmers/1 to $n ranks", "undefined variable $n"),
    ("replicate kmers/1 to 9 ranks", "replicate places 1 to 4 copies (the cluster size), not 9"),
    ('load $f, "b.fq" into kmers', "undefined variable $f"),
    ("load \"a.fq\" into kmers k=$k", "undefined variable $k"),
    ("put kmers/1 count=$c on 0", "undefined variable $c"),
    ("dump kmers where count >= $m to \"o.tsv\"", "undefined variable $m"),
    ("explain on 9: ranks", "rank 9 is outside the cluster: ranks are 0..3 (4 ranks)"),
    ("parallel { on 1 { load \"a.fq\" into kmers } }",
     "'load' involves every rank at once and cannot run inside 'parallel'"),
])
def test_the_checker_sees_every_field(text, message):
    errors = check(parse(text), size=4)
    assert [e.message for e in errors] == [message]
    assert all(e.location is not None for e in errors)


def test_deep_nesting_is_a_located_error():
    text = "on 1 {\n" * 300 + "ranks\n" + "}\n" * 300
    with pytest.raises(Exception) as info:
        parse(text, "deep.ray")
    assert "deep.ray:65:1: statements are nested too deeply" in str(info.value)
