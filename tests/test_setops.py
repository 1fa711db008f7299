"""Set algebra of one bucket: every operator and counter mode against a dictionary reference, with
narrow (uint64) and wide (complex128) keys."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rayscript.store import encoding, setops
from rayscript.store.encoding import COUNT_MAX
from rayscript.store.setops import Operand, Operation

KEYS = st.integers(0, 40)
COUNTS = st.integers(1, 6) | st.just(COUNT_MAX) | st.just(COUNT_MAX - 1)
SETS = st.dictionaries(KEYS, st.tuples(COUNTS, st.integers(0, 255)), max_size=25)


def triple(d, wide):
    keys = sorted(d)
    if wide:  # keys as two words, as a wide table's bucket holds them: order of (hi, lo)
        k = encoding.join(np.array([x % 7 for x in keys], np.uint64), np.array(keys, np.uint64) << np.uint64(40))
        order = np.argsort(k)
        keys = [keys[i] for i in order]
        k = k[order]
    else:
        k = np.array(keys, np.uint64)
    return (k, np.array([d[x][0] for x in keys], np.uint32), np.array([d[x][1] for x in keys], np.uint8)), keys


def as_dict(t, wide):
    keys, counts, edges = t
    if wide:
        hi, lo = encoding.words(keys)
        ids = (lo >> np.uint64(40)).tolist()
        assert (hi == (lo >> np.uint64(40)) % np.uint64(7)).all()
    else:
        ids = keys.tolist()
    assert list(keys) == sorted(keys, key=lambda v: (v.real, v.imag) if wide else v), "keys not sorted"
    assert len(set(ids)) == len(ids)
    return {i: (int(c), int(e)) for i, c, e in zip(ids, counts, edges)}


def mode_count(a, b, mode):
    return {"min": min(a, b), "max": max(a, b), "sum": min(a + b, COUNT_MAX), "diff": max(a - b, 0),
            "left": a, "right": b}[mode]


def reference(op, a, b, mode):
    out = {}
    if op == "+":
        for k in a.keys() | b.keys():
            if k in a and k in b:
                out[k] = (mode_count(a[k][0], b[k][0], mode), a[k][1] | b[k][1])
            else:
                out[k] = a.get(k) or b[k]
    elif op == "*":
        for k in a.keys() & b.keys():
            out[k] = (mode_count(a[k][0], b[k][0], mode), a[k][1] | b[k][1])
    elif op == "-":
        out = {k: v for k, v in a.items() if k not in b}
    else:
        out = {k: (v[0] - (b[k][0] if k in b else 0), v[1]) for k, v in a.items()}
    return {k: v for k, v in out.items() if v[0] > 0}


@settings(max_examples=300, deadline=None)
@given(a=SETS, b=SETS, op=st.sampled_from(["+", "*", "-", "~"]), mode=st.sampled_from(setops.MODES),
       wide=st.booleans())
def test_every_operator_and_counter_mode_matches_a_dictionary(a, b, op, mode, wide):
    ta, _ = triple(a, wide)
    tb, _ = triple(b, wide)
    got = setops.apply(op, ta, tb, mode)
    assert as_dict(got, wide) == reference(op, a, b, mode)


@settings(max_examples=200, deadline=None)
@given(sets=st.lists(SETS, min_size=4, max_size=4),
       ops=st.lists(st.sampled_from(["+", "*", "-", "~"]), min_size=3, max_size=3),
       mode=st.sampled_from([None, *setops.MODES]), low=st.integers(1, 4), high=st.none() | st.integers(2, 9))
def test_an_expression_is_evaluated_as_its_tree_says_and_limited(sets, ops, mode, low, high):
    # (a OP1 b) OP2 (c OP3 d)
    expr = Operation(ops[1], Operation(ops[0], Operand("a"), Operand("b")),
                     Operation(ops[2], Operand("c"), Operand("d")))
    leaves = {n: triple(d, False)[0] for n, d in zip("abcd", sets)}
    got = setops.limit(setops.evaluate(expr, leaves, mode), low, high)

    def ref(op, x, y):
        return reference(op, x, y, mode or setops.DEFAULT_MODE.get(op, "sum"))

    a, b, c, d = sets
    want = ref(ops[1], ref(ops[0], a, b), ref(ops[2], c, d))
    want = {k: v for k, v in want.items() if v[0] >= low and (high is None or v[0] <= high)}
    assert as_dict(got, False) == want
    assert setops.operands(expr) == ["a", "b", "c", "d"]
    assert setops.show(expr) == f"(kmers.a {ops[0]} kmers.b) {ops[1]} (kmers.c {ops[2]} kmers.d)"
