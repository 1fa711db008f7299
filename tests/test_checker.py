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
