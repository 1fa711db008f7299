"""``explain S`` lists exactly the orders that executing S sends: every statement kind, checked
against a recording messenger on two cluster sizes."""

import pytest

from conftest import write_fastq
from rayscript import Cluster
from rayscript.errors import RayScriptError, ScriptError
from rayscript.language import syntax
from rayscript.statements import Explain, parse

READS = ["ACGTACGGTCATTAGCTTAGGCATCGATCGGA", "TTAGGCATCGATCGGACCATGGTACAGTTCAA", "GGTCATTAGCTTAGGC"]

# (setup, statement): the setup runs first (not compared), then 'explain S' and S on the same state
CASES = [
    ("", "put kmers/7 count=3 on 1"),
    ("put kmers/7 on 1", "get kmers/7 from 1"),
    ("put kmers/7 on 1", "copy kmers/7 from 1 to 0"),
    ("put kmers/7 on 1", "copy kmers/7 to 0 replace"),
    ("put kmers/7 on 1", "move kmers/7 to 0"),
    ("put kmers/7 on 1", "delete kmers/7 from 1"),
    ("put paths/p on 0", "locate paths/p"),
    ("", "ranks"),
    ("put kmers/9 on 0", "on 1: copy kmers/9 from 0 to 1"),
    ("put kmers/9 on 0", "on 1 { locate kmers/9; on 0: ranks }"),
    ("put kmers/4 on 0\nput kmers/5 on 1", "parallel { on 1: copy kmers/5 from 1 to 0; copy kmers/4 from 0 to 1 }"),
    ("", "let x = 3"),
    ("let n = 2", "for i in 0..$n { put kmers/$i on 1 }"),
    ("", "for i in 3..1 { put kmers/$i on 1 }"),
    ("", "set timeout = 20s"),
    ("", 'print "hello" 3'),
    ("", "help copy"),
    ("put kmers/7 on 1", "explain copy kmers/7 to 0"),
    ("", 'load "{reads}" into kmers k=11'),
    ("LOAD", "count kmers"),
    ("LOAD", "histogram kmers"),
    ("LOAD", 'histogram kmers to "{tmp}/histo.txt"'),
    ("LOAD", 'dump kmers to "{tmp}/all.tsv" min=1'),
    ("LOAD", 'dump kmers/AC* to "{tmp}/ac.tsv"'),
    ("LOAD", 'query "{reads}" in kmers'),
    ("LOAD", "walk kmers/ACGTACGGTCA both into paths/w"),
    ("LOAD", "search kmers/TTAGGCATCGA depth=4 into results/s"),
    ("LOAD", "copy kmers/* from 0 to 1 merge"),
    ("LOAD", "copy kmers where count >= 2 from 1 to 0 replace"),
    ("LOAD", "move kmers/G* from 1 to 0 merge"),
    ("LOAD", "delete kmers where count < 2 from 0"),
    ("LOAD\nput kmers/ACGTACGGTCA on 1", "replicate kmers/ACGTACGGTCA to 2 ranks"),
    ("LOAD\ncopy kmers/* from 0 to 1 merge", "rebalance kmers"),
    ("LOAD", 'save to "{tmp}/ck"'),
    ("LOAD", "assemble kmers into paths/c min_count=1 min_length=11"),
    ("LOAD\nassemble kmers into paths/c min_count=1 min_length=11", "count paths"),
    ("LOAD\nassemble kmers into paths/c min_count=1 min_length=11", 'dump paths/c* to "{tmp}/c.fa"'),
    ('LOAD\nsave to "{tmp}/ck"\nput paths/extra on 0', 'restore from "{tmp}/ck"'),
    ("LOAD", "sets"),
    ('LOAD\nload "{reads}" into kmers.b k=11', "combine kmers - kmers.b into kmers.c min=2"),
    ('LOAD\nload "{reads}" into kmers.b k=11', "compare kmers, kmers.b"),
    ('LOAD\nload "{reads}" into kmers.b k=11', 'matrix kmers, kmers.b to "{tmp}/m.tsv" min_sets=2'),
    ('load "{reads}" into kmers.b k=11', "rename kmers.b to kmers.c"),
    ('load "{reads}" into kmers.b k=11', "drop kmers.b"),
    ('load "{reads}" into kmers.b k=11\nload "{reads}" into kmers.b2 k=11', 'query "{reads}" in kmers.b, kmers.b2'),
    ("LOAD", "field d = -1 on kmers"),
    ("LOAD\nfield d = -1 on kmers", "drop field d on kmers"),
    ("", "cascade hop(kmer, d) { if kmer.d >= 0 { stop }; set kmer.d = d; send hop(kmer.next, d + 1) }"),
    ("LOAD\nfield d = -1 on kmers\ncascade hop(kmer, d) { if kmer.d >= 0 { stop }; set kmer.d = d; "
     "send hop(kmer.next, d + 1) }", "start hop(kmers where count >= 2, 0) max_messages=100000"),
    ("LOAD\nfield d = -1 on kmers\ncascade hop(kmer, d) { if kmer.d >= 0 { stop }; set kmer.d = d; "
     "send hop(kmer.next, d + 1) }", "start hop(kmers/ACGTACGGTCA, 0)"),
]


def _fill(text, reads, tmp):
    return text.replace("{reads}", str(reads)).replace("{tmp}", str(tmp))


def _normal(msg):
    fields = msg.fields()
    return msg.kind, repr(sorted(fields.items()))


def _recording(cluster):
    """Every order sent on any rank from now on: the first message of each (commander, request)."""
    seen, orders = set(), []
    for node in cluster.local_nodes:
        send = node.messenger.send

        def record(msg, send=send):
            ident = (msg.commander, msg.request)
            if msg.request and not msg.is_reply and ident not in seen:
                seen.add(ident)
                orders.append(_normal(msg))
            send(msg)

        node.messenger.send = record
    return orders


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("setup, statement", CASES)
def test_explain_lists_exactly_the_orders_execution_sends(tmp_path, ranks, setup, statement):
    reads = tmp_path / "r.fq"
    write_fastq(reads, READS)
    setup = _fill(setup.replace("LOAD", 'load "{reads}" into kmers k=11'), reads, tmp_path)
    text = _fill(statement, reads, tmp_path)
    with Cluster.local(ranks) as c:
        if setup:
            c.run(setup)
        (st,) = parse(text)
        ((explained,),) = c.execute([Explain(st, meta=st.meta)], text)
        plan = [_normal(m) for m in explained.data["orders"]]
        orders = _recording(c)
        list(c.execute([st], text))
    assert sorted(plan) == sorted(orders)
    kinds = {type(s).keyword for s in syntax.walk([st])}
    if kinds - {"let", "set", "print", "help", "for", "cascade"}:
        assert orders or "for" in kinds, "a statement that gives orders was explained as none"


def test_every_statement_kind_is_covered():
    covered = {type(s).keyword for _setup, text in CASES for s in syntax.walk(parse(_fill(text, "r", "t")))}
    assert covered == set(syntax.Statement.registry)


def test_explain_of_a_bad_statement_is_a_located_error_not_a_traceback():
    with Cluster.local(2) as c:
        c.run('let a = "x"')
        with pytest.raises(ScriptError) as info:
            c.run("explain for i in $a..2 { ranks }", "s.ray")
        assert str(info.value).startswith("s.ray:1:9: a loop bound is a whole number, not 'x'")
        with pytest.raises(RayScriptError, match=r"s\.ray:1:9: rank 5 is outside the cluster"):
            c.run("explain put kmers/1 on 5", "s.ray")


def test_explain_load_shows_the_statements_own_order(tmp_path):
    reads = tmp_path / "r.fq"
    write_fastq(reads, READS)
    with Cluster.local(2) as c:
        (res,) = c.run(f'explain load "{reads}" into kmers k=21')
        assert "k=21" in res.text and "parts=[(" in res.text
        assert c.run("count kmers")[0].data["distinct"] == 0  # nothing was loaded
