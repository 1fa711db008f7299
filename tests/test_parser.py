import pytest

from rayscript import statements as ast
from rayscript.errors import ScriptSyntaxError
from rayscript.language.syntax import Duration, Key, Var
from rayscript.statements import Copy, For, Let, parse, parse_all

K = Key("kmers", 19123890)


@pytest.mark.parametrize("text, expected", [
    ("copy kmers/19123890 from 2 to 5", [Copy(K, 2, 5)]),
    ("copy kmers/19123890 to 5 merge", [Copy(K, None, 5, "merge")]),
    ("move kmers/19123890 from 2 to 5 replace", [ast.Move(K, 2, 5, "replace")]),
    ("put kmers/19123890 count=3 on 2", [ast.Put(K, 2, (("count", 3),))]),
    ("get kmers/19123890", [ast.Get(K)]),
    ("get kmers/acgt from $r", [ast.Get(Key("kmers", "ACGT"), Var("r"))]),
    ("delete paths/p1 from 0", [ast.Delete(Key("paths", "p1"), 0)]),
    ("locate results/r7", [ast.Locate(Key("results", "r7"))]),
    ("on 3: copy kmers/19123890 from 2 to 5", [ast.On(3, (Copy(K, 2, 5),))]),
    ("on 3 {\n copy kmers/19123890 from 2 to 5\n locate kmers/19123890 }",
     [ast.On(3, (Copy(K, 2, 5), ast.Locate(K)))]),
    ("parallel { on 1: ranks; on 2: ranks }", [ast.Parallel((ast.On(1, (ast.Ranks(),)), ast.On(2, (ast.Ranks(),))))]),
    ("let x = 19123890\nfor r in 1..4 { copy kmers/$x from 0 to $r }",
     [Let("x", 19123890), For("r", 1, 4, (Copy(Key("kmers", "$x"), 0, Var("r")),))]),
    ("ranks; ranks # two", [ast.Ranks(), ast.Ranks()]),
    ("explain copy kmers/19123890 from 2 to 5", [ast.Explain(Copy(K, 2, 5))]),
    ('print "x is" $x kmers/1', [ast.Print(("x is", Var("x"), Key("kmers", 1)))]),
    ("help", [ast.Help()]),
    ("help copy", [ast.Help("copy")]),
    ("set timeout = 500ms", [ast.Set("timeout", Duration(0.5))]),
    ("set timeout 30s", [ast.Set("timeout", Duration(30.0))]),
    ("\n\n# only comments\n", []),
])
def test_statements_parse_to_nodes(text, expected):
    assert parse(text) == expected


def test_positions_are_kept_out_of_equality_but_recorded():
    (st,) = parse("\n  copy kmers/1 from 2 to 5", "x.ray")
    assert (st.meta.line, st.meta.column, st.meta.source) == (2, 3, "x.ray")


@pytest.mark.parametrize("text, message, column", [
    ("copy kmers/1 from x to 5", "expected a rank number after 'from', got 'x'", 19),
    ("copy kmers/1 from 2 to", "expected a rank number after 'to'", 23),
    ("cpy kmers/1 from 2 to 5", "unknown statement 'cpy'; did you mean 'copy'?", 1),
    ("lokate kmers/1", "unknown statement 'lokate'; did you mean 'locate'?", 1),
    ("copy kmer/1 from 2 to 3", "unknown namespace 'kmer/'", 6),
    ("copy kmers/1 frm 2 to 3", "expected 'from' or 'to' after 'kmers/1', got 'frm'", 14),
    ("copy kmers/AXG to 3", "a k-mer id is a number", 6),
    ("put kmers/1 cnt=3 on 2", "'put' has no option 'cnt='", 13),
    ("get", "expected a key such as kmers/19123890 after 'get'", 4),
    ("help cpy", "no help on 'cpy'; did you mean 'help copy'?", 6),
    ("copy kmers/1 from 2 to 5 replac", "expected 'merge', 'replace' or the end of the statement", 26),
    ("on 3 { copy kmers/1 from 2 to 5", "not closed with '}'", None),
    ("copy kmers/ from 1 to 2", "expected an id after 'kmers/'", 6),
    ("set speed = 3", "unknown setting 'speed'", 5),
    ("get kmers/" + "A" * 128, "a k-mer has at most 127 bases", 5),
    ("load 'r.fq' into kmers", "got ''r.fq'' (text is written in double quotes", 6),
    ("rebalance paths", "rebalance applies to k-mer sets, not paths (paths and results stay on the ranks", 11),
    ('dump kmers to "out.tsv', "got '\"out.tsv' (a string that does not end: is its closing quote missing", 15),
    ("walk kmers/1", "expected 'into', an option (length=N, min_count=C) or 'both' after 'kmers/1'", 13),
    ("on 1 { walk kmers/1 }", "an option (length=N, min_count=C) or 'both' after 'kmers/1', got '}'", 21),
    ('load "r.fq\\" into kmers', "expected a value after 'load', got '\"r.fq\\\"' (a string that does not end", 6),
])
def test_syntax_errors_say_where_and_what_was_expected(text, message, column):
    with pytest.raises(ScriptSyntaxError) as info:
        parse(text, "bad.ray")
    err = info.value
    assert message in err.message
    assert err.location.line == 1
    if column is not None:
        assert err.location.column == column
        rendered = str(err).splitlines()
        assert rendered[0].startswith(f"bad.ray:1:{column}: ")
        assert rendered[2].index("^") - 4 == column - 1


def test_parse_all_reports_every_error():
    text = "put kmers/1 on 0\ncpy kmers/1 from 0 to 1\nlocate kmers/1\ncopy kmers/1 frm 0 to 1\n"
    statements, errors = parse_all(text, "two.ray")
    assert statements == []
    assert [(e.location.line, e.location.column) for e in errors] == [(2, 1), (4, 14)]


def test_grammar_has_no_terminal_collisions_or_conflicts():
    from rayscript.statements import default_parser

    assert default_parser().lark(strict=True).parse("copy kmers/1 from 2 to 5\n")


def test_grammar_is_shipped_inside_the_package():
    from importlib import resources

    assert "copy" in resources.files("rayscript").joinpath("grammar/ray.lark").read_text()


def test_docs_language_md_is_generated_from_the_help_table():
    from conftest import ROOT
    from rayscript.language.help import entries, language_markdown

    assert (ROOT / "docs/language.md").read_text() == language_markdown()
    for word, (syntax, description, example) in entries().items():  # every statement is documented
        assert syntax.startswith(word) and description and example, word
        parse(example)  # and every example parses


def test_the_built_parser_is_kept_in_the_user_cache_and_a_damaged_copy_is_rebuilt(tmp_path, monkeypatch):
    from rayscript.language.parser import Parser

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    script = ('load "r.fq" into kmers k=21\nfor i in 1..3 { copy kmers/ACGT from 0 to $i merge }\n'
              'dump paths/c* to "o.fa"')
    built = Parser().parse(script)  # builds, and keeps it
    (kept,) = (tmp_path / "rayscript").glob("parser-*.lark")
    assert oct(kept.parent.stat().st_mode & 0o777) == "0o700"
    assert Parser().parse(script) == built  # loaded from the cache
    kept.write_bytes(kept.read_bytes()[:100])  # cut short (a write interrupted)
    assert Parser().parse(script) == built
    assert kept.stat().st_size > 100  # built again, and kept again
    with pytest.raises(ScriptSyntaxError, match="expected 'from' or 'to'"):
        Parser().parse("copy kmers/1 frm 2 to 3")


def test_wording_of_assemble_s_errors():
    """The options named after 'assemble' were 'k=auto|K|K' (cut at the digit), without min_pairs, and
    beside 'merge' (which assemble refuses); a ',' before 'into' said "expected ',' or 'into' after
    'into'"; k=$lo..$hi said nothing of ranges; min_pairs= with pairs=false was taken silently."""
    def error(text):
        with pytest.raises(ScriptSyntaxError) as info:
            parse(text, "x.ray")
        return info.value.message

    msg = error('assemble "a.fq" into paths/x k=21..31..3')
    assert "k=auto|K|K1..K2" in msg and "min_pairs=N" in msg and "'merge'" not in msg
    assert "'merge'" in error("copy kmers/1 from 0 to 1 mrg")
    assert error('load "a.fq", into kmers') == "expected a value after ',', got 'into': remove the ',' before 'into'"
    assert "not with $variables ('$lo..')" in error('assemble "a.fq" into paths/x k=$lo..$hi')
    assert "pairs=false reads no pairs" in error('assemble "a.fq", "b.fq" into paths/x pairs=false min_pairs=3')
