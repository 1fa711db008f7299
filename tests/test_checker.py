from rayscript.statements import check, parse


def messages(text, size=None):
    return [(e.location.line, e.message) for e in check(parse(text), size)]


def test_undefined_variables_are_named():
    assert messages("copy kmers/$x from 0 to $r") == [
        (1, "undefined variable $x in key kmers/$x"), (1, "undefined variable $r")]


def test_loop_and_let_define_variables_in_scope():
    assert messages("let x = 4\nfor r in 0..2 { put kmers/$x on $r }") == []
    assert messages("for r in 0..2 { ranks }\nget kmers/1 from $r") == [(2, "undefined variable $r")]


def test_variables_inside_on_blocks_stay_there():
    assert messages("on 1 { let y = 3 }\nprint $y") == [(2, "undefined variable $y")]


def test_ranks_outside_the_cluster_are_refused_with_its_size():
    assert messages("copy kmers/1 from 2 to 5", size=4) == [
        (1, "rank 5 is outside the cluster: ranks are 0..3 (4 ranks)")]
    assert messages("copy kmers/1 from 2 to 5") == []


def test_ranks_a_loop_or_let_gives_are_checked_before_anything_is_sent():
    script = "\n".join([
        "for i in 1..3 { put kmers/$i on $i }",  # rank 3 is outside a cluster of 3
        "let r = 7",
        "on $r { ranks }",
        "for j in 0..2 { let j = 1\ncopy kmers/1 from $j to 0 }",  # j is 1 there
        "for k in 0..$r { get kmers/1 from $k }",  # bounds not both numbers: not known
        "for m in 5..1 { get kmers/1 from $m }",  # never runs
    ])
    assert messages(script, size=3) == [
        (1, "rank $i takes the values 1..3 of its loop, and ranks are 0..2 (3 ranks)"),
        (3, "rank $r is 7, and ranks are 0..2 (3 ranks)")]
    assert messages(script, size=8) == []
    assert messages(script) == []


def test_same_source_and_target():
    assert messages("move kmers/1 from 2 to 2") == [(1, "source and target are the same rank (2)")]


def located(text, size=None):
    return [(e.location.line, e.location.column, e.message) for e in check(parse(text), size)]


def test_literal_option_values_are_checked_where_they_are_written():
    """These passed 'rayscript check', and 'run' refused them only when it reached them."""
    script = "\n".join([
        'load "r.fq" into kmers k=199',
        "assemble kmers into paths/c min_count=0 clean=maybe",
        "assemble kmers into paths/c min_count=auto clean=FALSE min_length=0",  # fine
        "walk kmers/5 length=0 into paths/w",
        'load "r.fq" into kmers canonical="no"',
        "search kmers/5 depth=30s into results/r",
        "on 1 { put kmers/5 edges=256 on 1 }",
        "for i in 0..3 { walk kmers/5 length=$i into paths/w }",
        "let d = 0",
        "explain walk kmers/5 min_count=$d into paths/w",
        "for i in 1..3 { walk kmers/5 length=$i into paths/w }",  # fine
    ])
    assert located(script) == [
        (1, 26, "k= takes a whole number from 1 to 127 (at most four 64-bit words per k-mer), not 199"),
        (2, 39, "min_count= takes a whole number >= 1, or auto, not 0"),
        (2, 47, "clean= takes true or false, not maybe"),
        (4, 21, "length= takes a whole number >= 1, not 0"),
        (5, 34, 'canonical= takes true or false, not "no"'),
        (6, 22, "depth= takes a whole number from 0 to 65535, not 30s"),
        (7, 26, "edges= takes a whole number from 0 to 255 (an 8-bit mask), not 256"),
        (8, 37, "length= takes a whole number >= 1, not 0 ($i takes the values 0..3 of its loop)"),
        (10, 32, "min_count= takes a whole number >= 1, not 0 ($d is 0)"),
    ]


# one statement per keyword that takes options; OPTION is replaced by NAME=VALUE
WITH_OPTION = {
    "put": "put kmers/5 OPTION on 1",
    "load": 'load "r.fq" into kmers OPTION',
    "dump": 'dump kmers to "x.tsv" OPTION',
    "walk": "walk kmers/5 OPTION into paths/w",
    "search": "search kmers/5 OPTION into results/r",
    "assemble": "assemble kmers into paths/c OPTION",
    "combine": "combine kmers.a + kmers.b into kmers.c OPTION",
    "compare": "compare kmers.a, kmers.b OPTION",
    "matrix": 'matrix kmers.a, kmers.b to "m.tsv" OPTION',
    "count": 'count paths to "nx.png" OPTION',
    "start": "cascade f(kmer) { stop }; start f(kmers) OPTION",
}
# an option that only one form of its statement takes: written in that form
FORM_OF = {
    ("dump", "headers"): 'dump paths to "x.fa" OPTION',
    ("assemble", "k"): 'assemble "r.fq" into paths/c OPTION',
    ("assemble", "pairs"): 'assemble "r.fq" into paths/c OPTION',
    ("assemble", "min_pairs"): 'assemble "r.fq" into paths/c OPTION',
}


def test_every_option_of_every_statement_declares_what_it_takes_and_is_checked_by_it():
    from rayscript.language.syntax import Statement, Takes

    with_options = {word for word, cls in Statement.registry.items() if cls.options_allowed}
    assert with_options == set(WITH_OPTION)  # a statement given options is added here
    for word in WITH_OPTION:
        for name, takes in Statement.registry[word].options_allowed.items():
            assert isinstance(takes, Takes), (word, name)
            template = FORM_OF.get((word, name), WITH_OPTION[word])
            good = [str(takes.lo)] if takes.lo is not None else []
            good += [str(takes.hi)] if takes.hi is not None else []
            good += list(takes.words) + (['"genome.fa"'] if takes.path else [])
            bad = ["maybe", "1.5s"] + ([] if takes.path else ['"1"']) + ([str(takes.lo - 1)] if takes.lo is not None
                                                                          else [])
            if takes.duration:
                good, bad = ["1.5s", "200ms", "0"], ["maybe", '"1"', "-1"]
            if takes.names:
                good, bad = ["comp", "a,b"], ["1", "1.5s"]
            bad += [str(takes.hi + 1)] if takes.hi is not None else []
            for value in good:
                assert located(template.replace("OPTION", f"{name}={value}")) == [], (word, name, value)
            for value in bad:
                text = template.replace("OPTION", f"{name}={value}")
                column = text.index(f"{name}=") + len(name) + 2
                assert located(text) == [(1, column, f"{name}= takes {takes}, not {value}")], (word, name, value)


def test_option_values_are_checked_beside_syntax_errors_on_other_lines():
    """A syntax error anywhere hid every static problem: 'check' said nothing of k=128 and min_count=0
    (each reported when alone), and 'run' reported a later line's error and not the first line's."""
    from rayscript import Cluster
    from rayscript.errors import ScriptErrors
    from rayscript.statements import check_all

    text = ('assemble "a.fq" into paths/x k=128\n'
            'assemble "a.fq" "b.fq" into paths/x\n'
            'let n = 3 4\n'
            'assemble "a.fq" into paths/x min_count=0\n'
            'get kmers/1 from $n\n'
            'get kmers/1 from $m\n')
    statements, errors = check_all(text, "x.ray", 4)
    assert statements == []
    assert [(e.location.line, e.location.column) for e in errors] == [(1, 32), (2, 17), (3, 11), (4, 40), (6, 1)]
    assert "not 128" in errors[0].message and "not 0" in errors[3].message
    assert errors[4].message == "undefined variable $m"  # $n: its line was set aside, not undefined
    assert str(errors[0]).startswith("x.ray:1:32: k= takes") and str(errors[0]).endswith(" " * 35 + "^")
    with Cluster.local(1) as c:
        try:
            c.run(text, "x.ray")
        except ScriptErrors as err:
            assert [(e.location.line, e.location.column) for e in err.errors] == [(1, 32), (2, 17), (3, 11),
                                                                                   (4, 40), (6, 1)]
        else:
            raise AssertionError("the script ran")
