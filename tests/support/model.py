"""A model-based test of the store: random orders, inside and outside `parallel` blocks with
several commanders, checked after every step against a plain dictionary of what each rank holds.

Used by tests/test_model.py on the local backend and, under mpiexec, by running this module as a
program (`python -m support.model N EXAMPLES`), where rank 0 drives hypothesis.
"""

import sys

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from rayscript.errors import RayScriptError
from rayscript.store import encoding

K = 4
BASES = sorted({min(w, w[::-1].translate(str.maketrans("ACGT", "TGCA")))
                for w in ("".join(p) for p in __import__("itertools").product("ACGT", repeat=K))})[:24]
kmers = st.sampled_from(BASES)
modes = st.sampled_from([None, "replace", "merge"])
PREFIXES = ["", "A", "AC", "C", "G", "AT"]


class StoreModel(RuleBasedStateMachine):
    """Subclasses set ``make_cluster``."""

    cluster = None

    def make_cluster(self, size):
        raise NotImplementedError

    @initialize(size=st.integers(2, 5))
    def start(self, size):
        self.cluster = self.make_cluster(size)
        self.size = self.cluster.size
        self.model = {r: {} for r in range(self.size)}  # rank -> {bases: count}
        self.ranks = st.integers(0, self.size - 1)

    def teardown(self):
        if self.cluster is not None and getattr(self, "owns_cluster", True):
            self.cluster.close()

    def run(self, text, ok):
        try:
            self.cluster.run(text)
        except RayScriptError as exc:
            assert not ok, f"{text!r} failed: {exc}"
            return False
        assert ok, f"{text!r} succeeded but the model expected a refusal"
        return True

    # --- single-item orders -----------------------------------------------------------
    @rule(kmer=kmers, count=st.integers(0, 5), data=st.data())
    def put(self, kmer, count, data):
        rank = data.draw(st.integers(0, self.size - 1))
        self.run(f"put kmers/{kmer} count={count} on {rank}", True)
        self.model[rank][kmer] = count

    def _transfer_ok(self, kmer, a, b, mode):
        return a != b and kmer in self.model[a] and (kmer not in self.model[b] or mode is not None)

    def _apply_transfer(self, kmer, a, b, mode, move):
        count = self.model[a][kmer]
        if mode == "merge" and kmer in self.model[b]:
            count += self.model[b][kmer]
        self.model[b][kmer] = count
        if move:
            del self.model[a][kmer]

    @rule(kmer=kmers, mode=modes, move=st.booleans(), data=st.data())
    def transfer(self, kmer, mode, move, data):
        a = data.draw(st.integers(0, self.size - 1))
        b = data.draw(st.integers(0, self.size - 1))
        if a == b:
            return
        ok = self._transfer_ok(kmer, a, b, mode)
        verb = "move" if move else "copy"
        if self.run(f"{verb} kmers/{kmer} from {a} to {b}{' ' + mode if mode else ''}", ok):
            self._apply_transfer(kmer, a, b, mode, move)

    @rule(kmer=kmers, data=st.data())
    def delete(self, kmer, data):
        r = data.draw(st.integers(0, self.size - 1))
        if self.run(f"delete kmers/{kmer} from {r}", kmer in self.model[r]):
            del self.model[r][kmer]

    @rule(kmer=kmers)
    def locate(self, kmer):
        (res,) = self.cluster.run(f"locate kmers/{kmer}")
        assert sorted(res.data["ranks"]) == sorted(r for r in range(self.size) if kmer in self.model[r])

    # --- bulk orders ----------------------------------------------------------------------
    def _selected(self, rank, selector):
        kind, arg = selector
        items = self.model[rank]
        if kind == "prefix":
            return {k: c for k, c in items.items() if k.startswith(arg)}
        return {k: c for k, c in items.items() if c >= arg}

    @rule(selector=st.one_of(st.tuples(st.just("prefix"), st.sampled_from(PREFIXES)),
                             st.tuples(st.just("count"), st.integers(0, 6))),
          mode=modes, move=st.booleans(), data=st.data())
    def bulk(self, selector, mode, move, data):
        a = data.draw(st.integers(0, self.size - 1))
        b = data.draw(st.integers(0, self.size - 1))
        if a == b or not any(self.model[r] for r in range(self.size)):
            return
        chosen = self._selected(a, selector)
        text_sel = f"kmers/{selector[1]}*" if selector[0] == "prefix" else f"kmers where count >= {selector[1]}"
        conflict = mode is None and any(k in self.model[b] for k in chosen)
        verb = "move" if move else "copy"
        if self.run(f"{verb} {text_sel} from {a} to {b}{' ' + mode if mode else ''}", not conflict):
            for kmer in chosen:
                self._apply_transfer(kmer, a, b, mode or "replace", move)

    @rule(threshold=st.integers(0, 6), data=st.data())
    def bulk_delete(self, threshold, data):
        r = data.draw(st.integers(0, self.size - 1))
        self.run(f"delete kmers where count >= {threshold} from {r}", True)
        self.model[r] = {k: c for k, c in self.model[r].items() if c < threshold}

    # --- several commanders at once -----------------------------------------------------------
    @rule(data=st.data())
    def parallel(self, data):
        """Each branch works on its own k-mers (so the outcome does not depend on the order the
        branches interleave in), each with its own commander."""
        pool = list(BASES)
        branches, ops = [], []
        for _ in range(data.draw(st.integers(2, 4))):
            commander = data.draw(st.integers(0, self.size - 1))
            kmer = pool.pop(data.draw(st.integers(0, len(pool) - 1)))
            holders = [r for r in range(self.size) if kmer in self.model[r]]
            if not holders:
                rank = data.draw(st.integers(0, self.size - 1))
                branches.append(f"on {commander} {{ put kmers/{kmer} count=2 on {rank} }}")
                ops.append(("put", kmer, rank))
                continue
            a = holders[0]
            b = data.draw(st.integers(0, self.size - 1))
            if a == b:
                continue
            move = data.draw(st.booleans())
            branches.append(f"on {commander} {{ {'move' if move else 'copy'} kmers/{kmer} from {a} to {b} merge }}")
            ops.append(("move" if move else "copy", kmer, a, b))
        if not branches:
            return
        self.run("parallel {\n" + "\n".join(branches) + "\n}", True)
        for op in ops:
            if op[0] == "put":
                self.model[op[2]][op[1]] = 2
            else:
                self._apply_transfer(op[1], op[2], op[3], "merge", op[0] == "move")

    @rule(data=st.data())
    def contended(self, data):
        """Several commanders order the same key away from the same rank at once (moves to
        different ranks, or a delete): exactly one of them takes it, the others are refused."""
        held = [(k, r) for r in range(self.size) for k in self.model[r]]
        if not held or self.size < 3:
            return
        kmer, a = data.draw(st.sampled_from(sorted(held)))
        branches, targets = [], []
        # targets that do not hold it, so that the winner is the one rank that gained it
        free = [r for r in range(self.size) if r != a and kmer not in self.model[r]]
        if not free:
            return
        for b in data.draw(st.lists(st.sampled_from(free), min_size=1, max_size=3, unique=True)):
            commander = data.draw(st.integers(0, self.size - 1))
            branches.append(f"on {commander} {{ move kmers/{kmer} from {a} to {b} replace }}")
            targets.append(b)
        if data.draw(st.booleans()):
            branches.append(f"on {data.draw(st.integers(0, self.size - 1))} {{ delete kmers/{kmer} from {a} }}")
        try:
            self.cluster.run("parallel {\n" + "\n".join(branches) + "\n}")
            assert len(branches) == 1, "several orders took the same item"
        except RayScriptError as exc:
            assert len(branches) > 1, f"a lone order failed: {exc}"
            assert "being moved" in str(exc) or "is not on rank" in str(exc), str(exc)
        (res,) = self.cluster.run(f"locate kmers/{kmer}")
        now = set(res.data["ranks"])
        before = {r for r in range(self.size) if kmer in self.model[r]}
        count = self.model[a].pop(kmer)
        winners = now - before
        assert a not in now, "the item was not taken"
        assert len(winners) <= 1 and winners <= set(targets), (before, now, targets)
        assert now - winners == before - {a} - winners, "an unrelated copy changed"
        assert not winners or self.cluster.get(f"kmers/{kmer}", rank=min(winners)).count == count
        for w in winners:  # which order won is up to timing: clear it, so the model stays deterministic
            self.cluster.run(f"delete kmers/{kmer} from {w}")

    @invariant()
    def store_matches_the_model(self):
        if self.cluster is None:
            return
        for kmer in BASES:
            (res,) = self.cluster.run(f"locate kmers/{kmer}")
            holders = sorted(res.data["ranks"])
            assert holders == sorted(r for r in range(self.size) if kmer in self.model[r]), kmer
            for r in holders:
                assert self.cluster.get(f"kmers/{kmer}", rank=r).count == self.model[r][kmer], (kmer, r)


def encode_check():
    assert all(encoding.canonical(encoding.encode(b), K) == encoding.encode(b) for b in BASES)


def main():  # under mpiexec: rank 0 drives hypothesis against the real MPI cluster
    from mpi4py import MPI

    from rayscript import Cluster

    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with Cluster(comm=MPI.COMM_WORLD) as cluster:
        if cluster is None:
            return
        size = cluster.size

        class MPIModel(StoreModel):
            owns_cluster = False

            def make_cluster(self, n):  # the cluster is the job's, whatever size was drawn
                for r in range(size):
                    cluster.run(f"delete kmers where count >= 0 from {r}")
                return cluster

        MPIModel.TestCase.settings = settings(max_examples=examples, stateful_step_count=steps, deadline=None)
        try:
            MPIModel.TestCase("runTest").runTest()
        except Exception as exc:  # reported by rank 0, then the job ends cleanly
            print(f"MODEL FAILED: {type(exc).__name__}: {exc}", flush=True)
            cluster.close()
            raise SystemExit(1) from None
        print(f"MODEL OK on {size} ranks", flush=True)


if __name__ == "__main__":
    main()
