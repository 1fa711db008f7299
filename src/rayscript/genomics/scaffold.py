"""Scaffolding with read pairs, rank side: the contigs of an assembly joined in order and orientation
where enough pairs link their ends, the gaps between them as runs of N of the estimated length.

Every rank at once (one SCAFFOLD order, the ranks in step, batches of numpy arrays):

1. **index**: every rank cuts the contigs it holds into k-mers (k = 31, or the contigs' k when
   smaller) and sends each, with its contig, position and strand, to the k-mer's owner; a k-mer met
   twice (a repeat) places nothing.
2. **pairs**: every rank reads the two files of pairs (or the one interleaved file) and keeps every
   size-th pair from its rank on; the first k-mer of each end is looked up at its owner.
3. **insert size**: a pair whose two ends land in one contig, facing each other, measures its
   fragment; the median (and the spread: 1.4826 times the median absolute deviation) over every
   rank is the estimate.  Fewer than 100 such pairs: no estimate, and no scaffolding.
4. **links**: a pair whose ends land in two contigs says how they follow each other (which end of
   each, so the orientations) and how far apart (the estimate less the part of the fragment inside
   each contig); pairs whose parts inside the contigs exceed the estimate by three spreads say
   nothing.  Every rank counts its links; rank 0 gathers the counts.
5. **joins** (rank 0): a contig's depth is the number of read ends placed in it (step 2) per
   k-mer of it; contigs more than 1.5 times the assembly's median depth deep are repeats, and their
   links are left out (pairs spanning a repeat join its neighbours directly).  The depth comes from
   the reads, not from the contigs' counts: after rounds of several k a contig's count also holds
   the counts of the rounds before (their contigs are input to the next), which hides repeats.
   A contig end is measured so too, over the insert size nearest it (where its links' pairs come
   from): an end that deep holds a copy of a repeat whose other copy is elsewhere (the repeat's own
   contig went into this one), its pairs come from every copy, and its links are left out too.
   A contig end takes its best-supported link when at least ``min_pairs`` pairs support it and it
   has at least twice the support of its second best (support: pairs per base of the other end's
   reachable stretch, an insert size or the whole of a shorter contig); a link both of whose ends
   take it is a join.  Never on a single pair: ``min_pairs`` is at least 2.  Nor where the pairs
   say the two contigs overlap by more than the graph's k - 1 bases (beyond three spreads).  Chains
   of joins are the scaffolds (a circle is cut at its smallest contig), named PREFIX-1, ... by
   decreasing length.
6. **sequences**: every contig goes to the owner rank of its scaffold's name, which spells the
   scaffold: the contigs in order and orientation; two that the pairs say overlap, and whose
   sequences do by MIN_OVERLAP to k - 1 bases (k - 1: the graph's own overlap, the branch between
   them resolved by the pairs), spelled once, otherwise a run of N as long as the gap (at least 10).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from ..items import GraphPath, pack_item, unpack_item
from ..store import encoding
from ..store.partition import owner, owners
from . import fastx

if TYPE_CHECKING:
    from ..runtime.collective import Exchange

INDEX_K = 31
MIN_SAME = 100  # pairs inside one contig needed to estimate the insert size
MIN_GAP = 10  # the shortest run of N written between two contigs
MIN_OVERLAP = 16  # the shortest overlap of two contigs' sequences taken as theirs (else a gap of N)
REPEAT_COVERAGE = 1.5  # a contig this many times the assembly's median depth deep is a repeat
BLOCK = 1 << 25  # bytes of decompressed records parsed at a time
Ints: TypeAlias = npt.NDArray[np.int64]
Words: TypeAlias = npt.NDArray[np.uint64]
Mask: TypeAlias = npt.NDArray[np.bool_]
_RC = str.maketrans("ACGTN", "TGCAN")


def first_kmers(source: fastx.Source, k: int) -> tuple[Words, Words, Mask]:
    """The first k bases of every record of a FASTQ file (or a FASTA file with each sequence on one
    line), as forward and reverse-complement ids, and whether the record has k valid bases there."""
    per = 4 if source.fmt == "fastq" else 2
    mark = ord("@") if source.fmt == "fastq" else ord(">")
    fwd_parts, rev_parts, ok_parts = [], [], []
    rest = b""
    with fastx._opened(source.path, source.codec) as (fh, _raw):
        while True:
            block = fh.read(BLOCK)
            buf = rest + block
            if not buf:
                break
            if not block and not buf.endswith(b"\n"):
                buf += b"\n"
            arr = np.frombuffer(buf, np.uint8)
            nl = np.flatnonzero(arr == 10)
            records = len(nl) // per
            if not records:
                if not block:
                    break
                rest = buf
                continue
            used = int(nl[records * per - 1]) + 1
            starts = np.concatenate(([0], nl[: records * per - 1] + 1))
            heads = starts[0::per]
            if (arr[heads] != mark).any():
                raise fastx.InputError(f"{source.path}: pairs are read from FASTQ, or FASTA with each sequence on "
                                       "one line; a record here does not start where one should")
            seq_start = starts[1::per]
            seq_len = nl[1::per][:records] - seq_start
            fwd, rev, ok = _kmer_at(arr, seq_start, seq_len, k)
            fwd_parts.append(fwd)
            rev_parts.append(rev)
            ok_parts.append(ok)
            rest = buf[used:]
            if not block:
                break
    if not fwd_parts:
        return np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, bool)
    return np.concatenate(fwd_parts), np.concatenate(rev_parts), np.concatenate(ok_parts)


def _kmer_at(arr: npt.NDArray[np.uint8], start: Ints, length: Ints, k: int) -> tuple[Words, Words, Mask]:
    """Forward and reverse-complement ids of the k bases at ``start`` (one per row), and which rows
    have k bases of A, C, G, T there."""
    idx = np.minimum(start[:, None] + np.arange(k)[None, :], len(arr) - 1)
    codes = encoding.codes_from_bytes(arr[idx])
    ok = (length >= k) & (codes < 4).all(axis=1)
    codes = np.where(codes < 4, codes, 0).astype(np.uint64)
    fwd = np.zeros(len(start), np.uint64)
    rev = np.zeros(len(start), np.uint64)
    for j in range(k):  # a column at a time, every read at once
        fwd |= codes[:, j] << np.uint64(2 * (k - 1 - j))
        rev |= (np.uint64(3) - codes[:, j]) << np.uint64(2 * j)
    return fwd, rev, ok


def contig_kmers(seqs: list[str], numbers: Ints, k: int) -> tuple[Words, Ints, Ints, Mask]:
    """Every k-mer of these contigs: canonical id, contig number, position, and whether the contig
    reads it forward (its forward id is the canonical one)."""
    if not seqs:
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool)
    text = "N".join(seqs).encode()
    codes = encoding.codes_from_bytes(np.frombuffer(text, np.uint8))
    n = len(codes) - k + 1
    if n <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool)
    clean = np.where(codes < 4, codes, 0).astype(np.uint8)
    fwd = encoding._windows(clean, k, reverse=False)[:n]
    rev = encoding._windows(clean, k, reverse=True)[:n]
    badc = np.concatenate(([0], np.cumsum(codes >= 4)))
    valid = badc[k:k + n] == badc[:n]
    lengths = np.array([len(s) for s in seqs], np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    which = np.repeat(np.arange(len(seqs)), lengths + 1)[:n]
    pos = np.arange(n) - starts[which]
    canon = np.minimum(fwd, rev)
    return canon[valid], numbers[which[valid]], pos[valid], (fwd == canon)[valid]


def estimate(hist: Ints) -> tuple[int, int]:
    """Median and spread (1.4826 times the median absolute deviation) of a histogram of sizes."""
    total = int(hist.sum())
    if not total:
        return 0, 0
    cum = np.cumsum(hist)
    median = int(np.searchsorted(cum, (total + 1) // 2))
    dev = np.abs(np.arange(len(hist)) - median)
    dev_hist = np.bincount(dev, weights=hist, minlength=len(hist))
    mad = int(np.searchsorted(np.cumsum(dev_hist), (total + 1) // 2))
    return median, max(round(1.4826 * mad), 1)


def median_depth(lengths: Ints, depth: npt.NDArray[Any]) -> float:
    """The median depth of an assembly's bases (contigs weighted by their length)."""
    if not len(lengths):
        return 0.0
    order = np.argsort(depth)
    cum = np.cumsum(lengths[order])
    return float(depth[order][np.searchsorted(cum, cum[-1] / 2)])


def repeats(numbers: Ints, lengths: Ints, coverage: npt.NDArray[Any], n: int) -> Mask:
    """Which contigs (by number, ``n`` places) are repeats: a depth above REPEAT_COVERAGE times the
    median depth of the assembly's bases (contigs weighted by their length).  A repeat's contig has
    a copy on both sides of it, so its links would mislead the joins: they are left out, and pairs
    that span a repeat join the unique contigs around it directly."""
    out = np.zeros(n, bool)
    if not len(numbers):
        return out
    out[numbers] = coverage > REPEAT_COVERAGE * median_depth(lengths, coverage)
    return out


def choose_joins(links: Ints, min_pairs: int, least_gap: int, reach: Ints | None = None) -> Ints:
    """From link counts (rows: end a, end b, pairs, summed gap; an end is 2 * contig + side, side 1
    the contig's right end), the joins: rows of the links that both their ends take (see the module's
    step 5), with their mean gap as the last column.  ``reach`` (by end) is the length of the stretch
    next to each end that pairs can reach (an insert size, or the whole contig when it is shorter):
    an end weighs each of its links by its pairs per base of the other end's stretch (a contig
    shorter than a fragment is reached by fewer pairs than a long one however close it lies, and
    must not lose to it for that); without it, by the pairs alone.  Two unitigs
    share no k-mer, so they overlap by k - 1 bases at most: a link whose mean gap is below
    ``least_gap`` (that overlap less three spreads) says they overlap by more, a confusion of
    repeats, and is no join."""
    if not len(links):
        return np.empty((0, 3), np.int64)
    ends = np.concatenate((links[:, 0], links[:, 1]))
    others = np.concatenate((links[:, 1], links[:, 0]))
    support = np.concatenate((links[:, 2], links[:, 2]))
    weight = support / np.maximum(reach[others], 1) if reach is not None else support.astype(np.float64)
    row = np.concatenate((np.arange(len(links)), np.arange(len(links))))
    order = np.lexsort((row, -weight, ends))
    ends, support, weight, row = ends[order], support[order], weight[order], row[order]
    first = np.concatenate(([True], ends[1:] != ends[:-1]))
    second = np.concatenate((~first[1:], [False])) & first  # an end with a second link
    runner_up = np.zeros(len(ends))
    runner_up[second] = weight[np.flatnonzero(second) + 1]
    takes = first & (support >= min_pairs) & (weight >= 2 * runner_up)
    taken = np.bincount(row[takes], minlength=len(links))
    both = (taken == 2) & (links[:, 0] != links[:, 1])
    gap = links[both, 3] // np.maximum(links[both, 2], 1)
    joins = np.stack((links[both, 0], links[both, 1], gap), axis=1)
    return joins[gap >= least_gap]


def chains(joins: Ints, contigs: list[int]) -> list[list[tuple[int, bool, int]]]:
    """The scaffolds the joins make (rows: end, end, gap; an end is 2 * contig + side, side 1 the
    contig's right end): for each, its contigs in order as (number, read forward, gap before it).
    Every contig is in one scaffold (alone when nothing joins it); a circle of joins is cut before
    its smallest contig."""
    partner: dict[int, tuple[int, int]] = {}
    for a, b, gap in joins.tolist():
        partner[a] = (b, gap)
        partner[b] = (a, gap)
    seen: set[int] = set()
    out = []
    for c in sorted(contigs):
        if c in seen:
            continue
        # back to the first contig of c's chain: through the end behind each contig
        start, forward, visited = c, True, {c}
        behind = 2 * c
        while behind in partner:
            other = partner[behind][0]
            p = other // 2
            if p in visited or p in seen:
                if p == c:  # a circle: cut before c, its smallest contig
                    start, forward = c, True
                break
            visited.add(p)
            forward = other % 2 == 1  # joined by its right end: it comes before, read forward
            start = p
            behind = 2 * p + (0 if forward else 1)
        chain = [(start, forward, 0)]
        seen.add(start)
        ahead = 2 * start + (1 if forward else 0)
        while ahead in partner:
            other, gap = partner[ahead]
            nxt = other // 2
            if nxt in seen:
                break
            fwd = other % 2 == 0  # entered by its left end: read forward
            chain.append((nxt, fwd, gap))
            seen.add(nxt)
            ahead = 2 * nxt + (1 if fwd else 0)
        out.append(chain)
    return out


def overlap(left: str, right: str, k: int) -> int:
    """The longest exact overlap of ``left``'s end and ``right``'s start of MIN_OVERLAP to k - 1 bases
    (two unitigs share no k-mer, so they overlap by k - 1 at most), else 0."""
    for n in range(min(k - 1, len(left), len(right)), min(MIN_OVERLAP, k - 1) - 1, -1):
        if left.endswith(right[:n]):
            return n
    return 0


def spell(parts: list[tuple[int, str, int]], k: int) -> str:
    """A scaffold's sequence from its contigs in order (position, oriented sequence, gap before):
    where the pairs say two contigs overlap and their sequences do, once; else a run of N."""
    out: list[str] = []
    last = ""
    for i, (_pos, seq, gap) in enumerate(sorted(parts)):
        shared = overlap(last, seq, k) if i and gap < 0 else 0
        if shared:
            seq = seq[shared:]  # the graph's own overlap (k - 1), or a shorter one the pairs saw
        elif i:
            out.append("N" * max(gap, MIN_GAP))
        out.append(seq)
        last = seq
    return "".join(out)


def scaffold(ex: Exchange, rank: int, prefix: str, held: list[GraphPath], sources: list[fastx.Source],
             interleaved: bool, min_pairs: int) -> tuple[list[GraphPath], dict[str, Any]]:
    """Every rank at once: the scaffolds of the contigs PREFIX-N (``held``: those this rank holds):
    the ones this rank spelled, named by their scaffold's number in the plan (the caller names them
    by length), and the figures to report (the same on every rank but for the paths)."""
    size = ex.size
    coll = ex.coll
    pattern = re.compile(re.escape(prefix) + r"-(\d+)")
    held = [p for p in held if pattern.fullmatch(p.name)]
    numbers = np.array([int(p.name.rsplit("-", 1)[1]) for p in held], np.int64)
    my_k = np.array([max((p.k for p in held), default=0)], np.int64)
    k_contigs = int(np.concatenate(coll.alltoallv([my_k] * size)).max())  # the contigs' k (all have one)
    k = min(INDEX_K, k_contigs) if k_contigs else INDEX_K
    # every rank learns every contig's length (a number per contig)
    mine = np.stack((numbers, np.array([len(p.sequence) for p in held], np.int64)), axis=1).ravel()
    every = np.concatenate(coll.alltoallv([mine] * size)).reshape(-1, 2)
    length = np.zeros(int(every[:, 0].max(initial=0)) + 1, np.int64)
    length[every[:, 0]] = every[:, 1]
    # 1. the index, at the owners of the k-mers
    ids, contig, pos, strand = contig_kmers([p.sequence for p in held], numbers, k)
    dest = owners(ids, size) if len(ids) else np.zeros(0, np.int32)
    got = ex.scatter(dest, ids, contig, pos, strand.astype(np.uint8))
    x_ids, x_contig, x_pos, x_strand = (np.concatenate(g) for g in got)
    order = np.argsort(x_ids, kind="stable")
    x_ids, x_contig, x_pos, x_strand = x_ids[order], x_contig[order], x_pos[order], x_strand[order]
    unique = np.ones(len(x_ids), bool)
    if len(x_ids) > 1:
        dup = x_ids[1:] == x_ids[:-1]
        unique[1:] &= ~dup
        unique[:-1] &= ~dup
    x_ids, x_contig, x_pos, x_strand = x_ids[unique], x_contig[unique], x_pos[unique], x_strand[unique]

    def look(asked: Words) -> tuple[Ints, Ints, npt.NDArray[np.uint8]]:
        at = np.minimum(np.searchsorted(x_ids, asked), max(len(x_ids) - 1, 0))
        hit = (x_ids[at] == asked) if len(x_ids) else np.zeros(len(asked), bool)
        return (np.where(hit, x_contig[at] if len(x_ids) else 0, -1), np.where(hit, x_pos[at] if len(x_ids) else 0, 0),
                np.where(hit, x_strand[at] if len(x_ids) else 0, 0).astype(np.uint8))

    # 2. this rank's pairs: every size-th from its rank on
    if interleaved:
        fwd, rev, ok = first_kmers(sources[0], k)
        f1, r1, o1, f2, r2, o2 = fwd[0::2], rev[0::2], ok[0::2], fwd[1::2], rev[1::2], ok[1::2]
        n = min(len(f1), len(f2))
        f1, r1, o1, f2, r2, o2 = f1[:n], r1[:n], o1[:n], f2[:n], r2[:n], o2[:n]
    else:
        f1, r1, o1 = first_kmers(sources[0], k)
        f2, r2, o2 = first_kmers(sources[1], k)
    pairs_total = len(f1)
    f1, r1, f2, r2 = f1[rank::size], r1[rank::size], f2[rank::size], r2[rank::size]
    o1, o2 = o1[rank::size], o2[rank::size]
    c1, c2 = np.minimum(f1, r1), np.minimum(f2, r2)
    both = np.concatenate((c1, c2))
    q_dest = owners(both, size) if len(both) else np.zeros(0, np.int32)
    a_contig, a_pos, a_strand = ex.ask(q_dest, (both,), look)
    m = len(c1)
    # every contig's depth: the read ends placed in it, over every rank, per k-mer of it
    placed_end = np.concatenate((o1, o2)) & (a_contig >= 0)
    ends_in = np.bincount(a_contig[placed_end], minlength=length.size)
    ends_in = coll.allreduce(ends_in.astype(np.int64))
    ctg1, ctg2 = a_contig[:m], a_contig[m:]
    p1, p2 = a_pos[:m], a_pos[m:]
    # does the read's first k-mer read the contig forward?  (its own forward id canonical == the contig's)
    s1 = (f1 == c1) == a_strand[:m].astype(bool)
    s2 = (f2 == c2) == a_strand[m:].astype(bool)
    placed = o1 & o2 & (ctg1 >= 0) & (ctg2 >= 0)
    # 3. inserts of the pairs inside one contig, facing each other
    same = placed & (ctg1 == ctg2)
    ins = np.where(s1 & ~s2, p2 + k - p1, np.where(~s1 & s2, p1 + k - p2, -1))
    good = same & (ins > 0) & (s1 != s2)
    cap = 1 << 14
    hist = coll.allreduce(np.bincount(np.minimum(ins[good], cap - 1), minlength=cap).astype(np.int64))
    median, spread = estimate(hist)
    placed_all = int(coll.allreduce(np.array([int(placed.sum())], np.int64))[0])
    figures: dict[str, Any] = {"pairs": pairs_total, "placed": placed_all, "inside": int(hist.sum()),
                               "insert": median, "spread": spread, "joins": 0, "links": 0, "repeats": 0,
                               "repeat_ends": 0}
    if hist.sum() < MIN_SAME:
        return held, figures
    # the depth of each contig end: the read ends placed within an insert size of it, where the
    # pairs of its links come from (an end is 2 * contig + side, side 1 the right end)
    window = np.maximum(np.minimum(length - k + 1, median), 1)
    pc, pp = a_contig[placed_end], a_pos[placed_end]
    near = np.concatenate((2 * pc[pp < window[pc]], 2 * pc[pp >= length[pc] - k + 1 - window[pc]] + 1))
    end_in = coll.allreduce(np.bincount(near, minlength=2 * length.size).astype(np.int64))
    # 4. links between two contigs
    cross = placed & (ctg1 != ctg2)
    la, lb = ctg1[cross], ctg2[cross]
    lp1, lp2, ls1, ls2 = p1[cross], p2[cross], s1[cross], s2[cross]
    # the part of the fragment inside each contig, and the end it leaves by (1: right end)
    in_a = np.where(ls1, length[la] - lp1, lp1 + k)
    side_a = np.where(ls1, 1, 0)
    in_b = np.where(ls2, length[lb] - lp2, lp2 + k)
    side_b = np.where(ls2, 1, 0)
    gap = median - in_a - in_b
    fits = (in_a < median + 3 * spread) & (in_b < median + 3 * spread)
    end_a, end_b = 2 * la + side_a, 2 * lb + side_b
    lo, hi = np.minimum(end_a, end_b)[fits], np.maximum(end_a, end_b)[fits]
    gap = gap[fits]
    key = np.stack((lo, hi), axis=1)
    counted = np.empty((0, 4), np.int64)
    if len(key):
        uniq, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        gaps = np.bincount(inverse.ravel(), weights=gap, minlength=len(uniq)).astype(np.int64)
        counted = np.concatenate((uniq, counts[:, None], gaps[:, None]), axis=1).astype(np.int64)
    got_links = np.concatenate(coll.alltoallv([counted.ravel() if d == 0 else np.empty(0, np.int64)
                                               for d in range(size)])).reshape(-1, 4)
    # 5. the joins, on rank 0, and every scaffold's plan to every rank
    plan = np.empty((0, 5), np.int64)  # contig, scaffold number, place in it, forward, gap before
    links_total = 0
    if rank == 0:
        links = np.empty((0, 4), np.int64)
        if len(got_links):
            uniq, inverse = np.unique(got_links[:, :2], axis=0, return_inverse=True)
            inverse = inverse.ravel()
            links = np.stack((uniq[:, 0], uniq[:, 1],
                              np.bincount(inverse, weights=got_links[:, 2]).astype(np.int64),
                              np.bincount(inverse, weights=got_links[:, 3]).astype(np.int64)), axis=1)
        links_total = int((links[:, 2] >= min_pairs).sum()) if len(links) else 0
        depth = ends_in[every[:, 0]] / np.maximum(every[:, 1] - k + 1, 1)
        repeat = repeats(every[:, 0], every[:, 1], depth, int(length.size))
        # an end within an insert size of a repeat that its contig holds (its other copy is elsewhere):
        # its pairs come from every copy, so its links are left out too
        deep_end = end_in / np.repeat(window, 2) > REPEAT_COVERAGE * median_depth(every[:, 1], depth)
        deep_end &= ~np.repeat(repeat, 2)
        figures["repeats"] = int(repeat.sum())
        figures["repeat_ends"] = int(deep_end.sum())
        left_out = np.repeat(repeat, 2) | deep_end
        unique = ~left_out[links[:, 0]] & ~left_out[links[:, 1]] if len(links) else np.zeros(0, bool)
        joins = choose_joins(links[unique], min_pairs, -(k_contigs - 1) - 3 * spread, np.repeat(window, 2))
        present = {int(c): int(length[c]) for c in every[:, 0]}
        scaffolds = chains(joins, list(present))
        rows = [(c, n + 1, place, int(f), g)
                for n, chain in enumerate(scaffolds) for place, (c, f, g) in enumerate(chain)]
        plan = np.array(rows, np.int64).reshape(-1, 5)
        figures["joins"] = len(joins)
    plan = np.concatenate(coll.alltoallv([plan.ravel()] * size if rank == 0 else
                                         [np.empty(0, np.int64)] * size)).reshape(-1, 5)
    figures["joins"] = int(coll.allreduce(np.array([figures["joins"]], np.int64))[0])
    figures["links"] = int(coll.allreduce(np.array([links_total], np.int64))[0])
    figures["repeats"] = int(coll.allreduce(np.array([figures["repeats"]], np.int64))[0])
    figures["repeat_ends"] = int(coll.allreduce(np.array([figures["repeat_ends"]], np.int64))[0])
    figures["scaffolds"] = int(plan[:, 1].max(initial=0))
    # 6. every contig to the owner of its scaffold's name, which spells it
    where = {int(r[0]): r for r in plan}
    blobs: list[list[bytes]] = [[] for _ in range(size)]
    for p, num in zip(held, numbers.tolist()):
        _c, scaf, place, forward, gap0 = (int(v) for v in where[num])
        seq = p.sequence if forward else p.sequence.translate(_RC)[::-1]
        carrier = GraphPath(f"{scaf}:{place}:{gap0}:{len(p.sequence)}", seq, p.k, "part", coverage=p.coverage)
        blobs[owner(("paths", f"{prefix}-{scaf}"), size)].append(pack_item(carrier))
    lens = [np.array([len(b) for b in bl], np.int64) for bl in blobs]
    data = [np.frombuffer(b"".join(bl), np.uint8) if bl else np.empty(0, np.uint8) for bl in blobs]
    got_lens = np.concatenate(coll.alltoallv(lens))
    got_data = np.concatenate(coll.alltoallv(data)).tobytes()
    parts: dict[int, list[tuple[int, str, int]]] = {}
    cover: dict[int, list[float]] = {}
    o = 0
    for nbytes in got_lens.tolist():
        item = unpack_item(got_data[o:o + nbytes])
        o += nbytes
        assert isinstance(item, GraphPath)
        scaf, place, gap0, ln = (int(v) for v in item.name.split(":"))
        parts.setdefault(scaf, []).append((place, item.sequence, gap0))
        cover.setdefault(scaf, [0.0, 0.0])
        cover[scaf][0] += item.coverage * ln
        cover[scaf][1] += ln
    out = []
    for scaf, pieces in parts.items():
        kind = "scaffold" if len(pieces) > 1 else "unitig"
        out.append(GraphPath(f"{prefix}-{scaf}", spell(pieces, k_contigs), k_contigs, kind,
                             coverage=cover[scaf][0] / max(cover[scaf][1], 1.0)))
    return out, figures
