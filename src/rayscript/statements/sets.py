"""Statements on k-mer sets: sets, combine, compare, matrix, rename, drop (the ranks' side is
rayscript.genomics.sets).

A set is ``kmers`` (the default) or ``kmers.NAME``; each has its own k and canonical flag.  Sets of
one k share one partition, so ``combine``, ``compare`` and ``matrix`` are collective orders that
every rank answers from its own shard, bucket by bucket.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import numpy as np
from lark import Token, Tree

from .. import pictures
from ..errors import ScriptError
from ..genomics.sets import principal_components
from ..interpreter import Command, Steps
from ..items import KMERS, is_kmers, set_label
from ..language.syntax import TRUTH, Build, CheckContext, Options, Statement, Takes, Value, whole
from ..protocol.sets import CombineOrder, CompareOrder, DropOrder, MatrixOrder, RenameOrder, SetsOrder
from ..results import Result, table
from ..store import setops
from ..store.encoding import COUNT_MAX
from .kmers import count_header, known_stats, output_path, set_names, unknown_set, write_text


def _set(b: Build, namespace: object, word: str) -> str:
    if not is_kmers(str(namespace)):
        b.fail(f"'{word}' takes k-mer sets (kmers, kmers.NAME), not {namespace}", namespace)
    return str(namespace)


def _sets(b: Build, namespaces: Any, word: str, at_least: int = 1) -> tuple[str, ...]:
    out = tuple(_set(b, ns, word) for ns in namespaces)
    if len(set(out)) < len(out):
        b.fail(f"'{word}' names a set twice")
    if len(out) < at_least:
        b.fail(f"'{word}' takes at least {at_least} sets")
    return out


def set_info(cmd: Command, kset: str) -> Generator[Any, Any, tuple[int, bool, int]]:
    """(k, canonical, distinct) of a set that exists (refused, naming the sets, when none holds it)."""
    infos = yield from known_stats(cmd, kset)
    ks = {i.k for i in infos if i.k}
    if cmd.explaining and not ks:
        return 31, True, 0
    if not ks:
        where = "the store holds" if kset == KMERS else f"{kset} holds"
        raise ScriptError(f"{where} no k-mers (load some first)")
    return ks.pop(), all(i.canonical for i in infos if i.k), sum(i.distinct for i in infos)


def same_k(cmd: Command, sets: tuple[str, ...], word: str) -> Generator[Any, Any, tuple[int, bool]]:
    """The k and canonical flag the sets share; sets of different k or flag are refused, naming both."""
    first = None
    for kset in sets:
        k, canonical, _ = yield from set_info(cmd, kset)
        if first is None:
            first = (kset, k, canonical)
            continue
        if k != first[1]:
            raise ScriptError(f"'{word}' needs sets of one k: {first[0]} has k={first[1]}, {kset} has k={k}")
        if canonical != first[2]:
            flags = {True: "canonical", False: "forward strands (canonical=false)"}
            raise ScriptError(f"'{word}' needs sets counted alike: {first[0]} is {flags[first[2]]}, "
                              f"{kset} is {flags[canonical]}")
    assert first is not None
    return first[1], first[2]


def _every_set(cmd: Command) -> Generator[Any, Any, dict[str, list[tuple]]]:
    """Every rank's sets: name -> [(k, canonical, distinct, total, bytes, busy) per rank holding it]."""
    replies = yield cmd.every(lambda r: SetsOrder(recipient=r))
    out: dict[str, list[tuple]] = {}
    for rep in replies:
        for name, info in rep.sets.items():
            out.setdefault(name, []).append(info)
    return out


def _exists(held: dict[str, list[tuple]], kset: str) -> bool:
    """A named set exists where any rank holds it; the default set once it holds k-mers."""
    if kset == KMERS:
        return any(info[2] for info in held.get(KMERS, []))
    return kset in held


class Sets(Statement, keyword="sets"):
    syntax = "sets"
    summary = ("The k-mer sets of the store: name, k, canonical, distinct and total k-mers (each k-mer once, "
               "however many ranks hold it) and the bytes they take on all ranks.")
    example = "sets"

    def run(self, cmd: Command) -> Steps:
        held = yield from _every_set(cmd)
        rows, data = [], []
        for name in sorted(held, key=lambda n: (n != KMERS, n)):
            infos = yield from known_stats(cmd, name, once=True)
            k = max(info[0] for info in held[name]) or None
            canonical = all(info[1] for info in held[name] if info[0])
            distinct = sum(i.distinct for i in infos)
            total = sum(i.total for i in infos)
            nbytes = sum(info[4] for info in held[name])
            rows.append([name, k or "-", "yes" if canonical else "no", distinct, total, nbytes])
            data.append({"name": name, "k": k, "canonical": canonical, "distinct": distinct, "total": total,
                         "bytes": nbytes})
        text = table(["set", "k", "canonical", "distinct", "total", "bytes"], rows)
        return [Result("sets", text, data)]


def _expr(b: Build, tree: Any) -> setops.Expr:
    """A set expression of the grammar as a :mod:`rayscript.store.setops` expression."""
    if isinstance(tree, Token):
        return setops.Operand(_set(b, tree, "combine"))
    if isinstance(tree, Tree) and tree.data == "set_term":
        left, _star, right = tree.children
        return setops.Operation("*", _expr(b, left), _expr(b, right))
    if isinstance(tree, Tree) and tree.data == "set_expr":
        left, op, right = tree.children
        return setops.Operation(str(op), _expr(b, left), _expr(b, right))
    b.fail(f"expected a set expression, not {tree}")


def _has_rule(expr: setops.Expr) -> bool:
    """Whether an expression has a + or a * (the operators whose counts counts= sets)."""
    if isinstance(expr, setops.Operand):
        return False
    return expr.op in "+*" or _has_rule(expr.left) or _has_rule(expr.right)


class Combine(Statement, keyword="combine"):
    syntax = ("combine EXPR into kmers.NAME [counts=min|max|sum|diff|left|right] [min=N] [max=N] [replace]")
    summary = ("A new set from set algebra over sets of one k, every rank at once over its own shard: "
               "A + B union (counts summed), A * B intersection (the smaller count), A - B the k-mers of A not in B "
               "(A's counts), A ~ B counters subtract (A's count minus B's, kept where above 0). * binds tighter "
               "than + - ~, which go left to right; parentheses group. counts= sets the rule for + and * "
               "(kmc_tools' -oc); min=/max= keep the result's k-mers whose count is in range. An existing target "
               "is refused unless 'replace'.")
    example = "combine (kmers.a + kmers.b) * kmers.c - kmers.d into kmers.x min=2"
    options_allowed = {"counts": Takes(words=setops.MODES), "min": whole(1, COUNT_MAX),
                       "max": whole(1, COUNT_MAX)}
    collective = True

    expr: Any = None
    target: str = ""
    options: Options = ()
    replace: bool = False

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Combine:
        expr, target, mode = b.positional(children)
        if mode is not None and mode != "replace":
            b.fail(f"'combine' takes 'replace', not '{mode}'")
        tree, options = _expr(b, expr), b.options(cls, children)
        if any(name == "counts" for name, _ in options) and not _has_rule(tree):
            b.fail("counts= sets how + and * combine the counts of a k-mer in both sets, and this expression has "
                   "neither (- keeps the left's counts, ~ subtracts)")
        return cls(tree, _set(b, target, "combine"), options, mode is not None, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        opts = cmd.options(self)
        low, high = opts.get("min", 1), opts.get("max")
        if high is not None and high < low:
            raise ScriptError(f"max={high} is below min={low}: nothing could be kept")
        operands = setops.operands(self.expr)
        k, canonical = yield from same_k(cmd, tuple(operands), "combine")
        held = yield from _every_set(cmd)
        if _exists(held, self.target) and not self.replace:
            raise ScriptError(f"{self.target} exists already: add 'replace' to overwrite it, or combine into "
                              "another set")
        busy = [name for name in [*operands, self.target] if any(info[5] for info in held.get(name, []))]
        if busy:
            raise ScriptError(f"{busy[0]} is in use by a statement running now; try again when it is done")
        shown = setops.show(self.expr, prefix="")
        replies = yield cmd.every(lambda r: CombineOrder(recipient=r, expr=self.expr, target=self.target,
                                                         mode=opts.get("counts"), low=low, high=high, k=k,
                                                         canonical=canonical))
        cmd.set_canonical(self.target, canonical)
        cmd.set_k(self.target, k)
        distinct = sum(r.distinct for r in replies)
        total = sum(r.total for r in replies)
        nbytes = sum(r.nbytes for r in replies)
        text = (f"combined {shown} into {self.target}: {distinct:,} distinct k-mers, {total:,} in total (k={k}; "
                f"{nbytes:,} bytes on {cmd.size} rank{'s' if cmd.size > 1 else ''})")
        return [Result("combine", text, {"set": self.target, "expression": shown, "distinct": distinct,
                                         "total": total, "bytes": nbytes, "k": k,
                                         "per_rank": [r.distinct for r in replies],
                                         "peak_rss": [r.peak_rss for r in replies],
                                         "sent": sum(r.sent for r in replies)})]


class Compare(Statement, keyword="compare"):
    syntax = "compare SET, SET [, SET ...] [to \"FILE\"] [min=N]"
    summary = ("For every pair of sets: the distinct k-mers they share, their Jaccard index and each side's "
               "containment (shared / the side's distinct k-mers); min=N counts only k-mers seen at least N times. "
               "The FILE is tab-separated: set1 set2 shared jaccard contained1 contained2; a FILE ending in .png, "
               ".svg or .pdf is a heatmap of the Jaccard indexes instead, the sets ordered by an average-linkage "
               "clustering of 1 - Jaccard (needs the extra rayscript[plot]).")
    example = 'compare kmers.a, kmers.b, kmers.c to "distances.png"'
    options_allowed = {"min": whole(1, COUNT_MAX)}
    collective = True

    sets: tuple[str, ...] = ()
    path: Value | None = None
    options: Options = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Compare:
        namespaces, path = b.positional(children)
        return cls(_sets(b, namespaces, "compare", 2), path, b.options(cls, children), meta=b.location)

    def run(self, cmd: Command) -> Steps:
        out = output_path(os.path.abspath(cmd.path(self.path))) if self.path is not None else None
        low = cmd.options(self).get("min", 1)
        yield from same_k(cmd, self.sets, "compare")
        replies = yield cmd.every(lambda r: CompareOrder(recipient=r, sets=list(self.sets), low=low))
        rep = replies[0]
        names = [set_label(s) for s in self.sets]
        rows, data, p = [], [], 0
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                shared = int(rep.shared[p]) if rep.shared else 0
                p += 1
                di, dj = int(rep.distinct[i]) if rep.distinct else 0, int(rep.distinct[j]) if rep.distinct else 0
                union = di + dj - shared
                jaccard = shared / union if union else 0.0
                c1, c2 = (shared / di if di else 0.0), (shared / dj if dj else 0.0)
                rows.append([names[i], names[j], shared, f"{jaccard:.6f}", f"{c1:.6f}", f"{c2:.6f}"])
                data.append({"set1": names[i], "set2": names[j], "shared": shared, "jaccard": jaccard,
                             "contained1": c1, "contained2": c2, "distinct1": di, "distinct2": dj})
        header = ["set1", "set2", "shared", "jaccard", "contained1", "contained2"]
        text = table(header, rows)
        if out and pictures.picture_format(out):
            return [Result("compare", _jaccard_heatmap(cmd, out, names, data) + "\n" + text, data)]
        if out:
            if not cmd.explaining:
                write_text(out, "\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
            text = f"wrote {len(rows)} pair{'s' if len(rows) != 1 else ''} to {out}\n{text}"
        return [Result("compare", text, data)]


def _jaccard_heatmap(cmd: Command, out: str, names: list[str], pairs: list[dict[str, Any]]) -> str:
    """Draw the sets' Jaccard indexes (ordered by clustering) to ``out``; what was done, in words."""
    n = len(names)
    jaccard = np.eye(n)
    iu = np.triu_indices(n, 1)
    jaccard[iu] = [p["jaccard"] for p in pairs]  # pairs come i < j, row by row: triu's order
    jaccard[iu[1], iu[0]] = jaccard[iu]
    if cmd.explaining:
        return f"would draw the Jaccard indexes of {n} sets to {out}"
    try:
        order = pictures.cluster_order(1.0 - jaccard)
        pictures.heatmap(out, [names[i] for i in order], jaccard[np.ix_(order, order)],
                         f"Jaccard index of {n} k-mer sets, ordered by clustering")
    except pictures.NoPlotting as exc:
        return f"could not draw {out}: {exc.message}"
    return (f"drew the Jaccard indexes of {n} sets to {out} (in the order of clustering: "
            f"{', '.join(names[i] for i in order)})")


class Matrix(Statement, keyword="matrix"):
    syntax = "matrix SET, SET [, SET ...] to \"FILE\" [min_sets=N] [min=C] [presence]"
    summary = ("A k-mer x set count matrix: a header 'kmer' and the set names, then one line per k-mer present "
               "(count >= min, default 1) in at least min_sets sets (default 1): its bases and its count in each set "
               "(0 where absent; 1/0 with presence). Every rank writes its own rows, as dump does. A FILE ending in "
               ".png, .svg or .pdf is a picture of the sets on the first two principal components of the k-mers' "
               "presence (of the rows the TSV would hold) instead (needs the extra rayscript[plot]).")
    example = 'matrix kmers.a, kmers.b, kmers.c to "matrix.tsv" min_sets=2'
    options_allowed = {"min_sets": whole(1), "min": whole(1, COUNT_MAX), "presence": TRUTH}
    collective = True

    sets: tuple[str, ...] = ()
    path: Value = ""
    options: Options = ()

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Matrix:
        namespaces, path, *flags = b.positional(children)
        options = list(b.options(cls, children))
        for flag in flags:
            if flag is None:
                continue
            if str(flag) != "presence":
                b.fail(f"'matrix' takes the word 'presence', not '{flag}'", flag)
            if any(name == "presence" for name, _ in options):
                b.fail("'matrix' takes 'presence' once", flag)
            options.append(("presence", True))
        return cls(_sets(b, namespaces, "matrix"), path, tuple(sorted(options, key=lambda o: o[0])),
                   meta=b.location)

    def check(self, ctx: CheckContext) -> None:
        min_sets = dict(self.options).get("min_sets")
        if isinstance(min_sets, int) and min_sets > len(self.sets):
            ctx.error(f"min_sets={min_sets} is more than the {len(self.sets)} sets named: no k-mer could be written")

    def run(self, cmd: Command) -> Steps:
        path = output_path(os.path.abspath(cmd.path(self.path)))
        opts = cmd.options(self)
        min_sets, low, presence = opts.get("min_sets", 1), opts.get("min", 1), bool(opts.get("presence", False))
        if min_sets > len(self.sets):
            raise ScriptError(f"min_sets={min_sets} is more than the {len(self.sets)} sets named: no k-mer could "
                              "be written")
        k, _ = yield from same_k(cmd, self.sets, "matrix")
        if pictures.picture_format(path):
            return (yield from self._components(cmd, path, min_sets, low, k))
        header = count_header(self.sets)
        tmp = f"{path}.part{os.getpid()}"
        if not cmd.explaining:
            try:
                open(tmp, "wb").close()
            except OSError as exc:
                raise ScriptError(f"cannot write {path}: {exc.strerror}") from None
        try:
            replies = yield cmd.every(lambda r: MatrixOrder(recipient=r, sets=list(self.sets), path=tmp,
                                                            header=header, min_sets=min_sets, low=low,
                                                            presence=presence, k=k))
            if not cmd.explaining:
                os.replace(tmp, path)
        except BaseException:
            if not cmd.explaining and os.path.exists(tmp):
                os.unlink(tmp)
            raise
        rep = replies[0]
        text = (f"wrote a matrix of {rep.rows:,} k-mers x {len(self.sets)} sets to {path} ({rep.nbytes:,} bytes; "
                "each rank wrote its own rows)")
        return [Result("matrix", text, {"path": path, "rows": rep.rows, "bytes": rep.nbytes,
                                        "sets": [set_label(s) for s in self.sets]})]

    def _components(self, cmd: Command, path: str, min_sets: int, low: int, k: int) -> Steps:
        """The sets on the first two principal components of the presence of the matrix's rows,
        drawn to ``path``: the ranks count the rows present in each pair of sets, which is all the
        components need (the sets' Gram matrix), and write nothing."""
        replies = yield cmd.every(lambda r: MatrixOrder(recipient=r, sets=list(self.sets), path="", min_sets=min_sets,
                                                        low=low, k=k, copresence=True))
        rep = replies[0]
        names = [set_label(s) for s in self.sets]
        n = len(names)
        gram = np.array(rep.copresence or [0] * (n * n), np.float64).reshape(n, n)
        coords, explained = principal_components(gram)
        data = {"path": path, "rows": rep.rows, "sets": names, "components": coords.tolist(),
                "explained": explained.tolist(), "picture": None}
        rows = [[name, f"{x:.2f}", f"{y:.2f}"] for name, (x, y) in zip(names, coords)]
        numbers = (f"the first two principal components of the presence of {rep.rows:,} k-mers in {n} sets "
                   f"({explained[0]:.1%} and {explained[1]:.1%} of the variance)\n"
                   + table(["set", "PC1", "PC2"], rows))
        if cmd.explaining:
            return [Result("matrix", numbers, data)]
        try:
            pictures.scatter(path, names, coords, explained.tolist(),
                             f"{n} k-mer sets: principal components of {rep.rows:,} k-mers' presence")
        except pictures.NoPlotting as exc:
            return [Result("matrix", f"could not draw {path}: {exc.message}\n{numbers}", data)]
        data["picture"] = path
        return [Result("matrix", f"drew {path}: {numbers}", data)]


class Rename(Statement, keyword="rename"):
    syntax = "rename kmers.A to kmers.B"
    summary = "Give a set another name, on every rank (a set of that name must not exist)."
    example = "rename kmers.x to kmers.core"
    collective = True  # every rank at once: never beside another statement in 'parallel'

    old: str = ""
    new: str = ""

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Rename:
        old, new = children
        old, new = _set(b, old, "rename"), _set(b, new, "rename")
        if old == new:
            b.fail(f"'rename' gives a set another name, not its own ({old})")
        return cls(old, new, meta=b.location)

    def run(self, cmd: Command) -> Steps:
        held = yield from _every_set(cmd)
        if not _exists(held, self.old) and not cmd.explaining:
            raise ScriptError(unknown_set(self.old, list(held)))
        if _exists(held, self.new):
            raise ScriptError(f"{self.new} exists already: drop it first, or rename to another name")
        if any(info[5] for info in held.get(self.old, [])):
            raise ScriptError(f"{self.old} is in use by a statement running now; nothing was renamed")
        yield cmd.every(lambda r: RenameOrder(recipient=r, old=self.old, new=self.new))
        cmd.set_canonical(self.new, cmd.canonical(self.old))
        cmd.set_k(self.new, cmd.interpreter.kmer_k.get(self.old))
        cmd.set_k(self.old, None)
        return [Result("rename", f"renamed {self.old} to {self.new}", {"old": self.old, "new": self.new})]


class Drop(Statement, keyword="drop"):
    syntax = "drop kmers.NAME | drop field NAME on kmers.NAME"
    summary = ("Remove a set and free its memory on every rank (drop kmers empties the default set); or remove "
               "a field of every k-mer of a set.")
    example = "drop kmers.somatic"
    collective = True

    name: str = ""
    field: str | None = None

    @classmethod
    def build(cls, b: Build, children: list[Any]) -> Drop:
        if len(children) == 2:
            field, name = children
            return cls(_set(b, name, "drop field"), str(field), meta=b.location)
        (name,) = children
        return cls(_set(b, name, "drop"), meta=b.location)

    def run(self, cmd: Command) -> Steps:
        if self.field is not None:
            from .cascades import drop_field

            return (yield from drop_field(cmd, self.name, self.field))
        held = yield from _every_set(cmd)
        if self.name not in held and not cmd.explaining:
            raise ScriptError(unknown_set(self.name, list(held)))
        if any(info[5] for info in held.get(self.name, [])):
            raise ScriptError(f"{self.name} is in use by a statement running now; it was not dropped")
        freed = sum(info[4] for info in held.get(self.name, []))
        yield cmd.every(lambda r: DropOrder(recipient=r, name=self.name))
        cmd.set_k(self.name, None)
        return [Result("drop", f"dropped {self.name} ({freed:,} bytes freed on {cmd.size} rank"
                               f"{'s' if cmd.size > 1 else ''})", {"set": self.name, "bytes": freed})]


__all__ = ["Combine", "Compare", "Drop", "Matrix", "Rename", "Sets", "set_info", "set_names"]
