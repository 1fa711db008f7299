"""Assemblies compared, commander side: contig lengths of FASTA files, N50, and NGA50 against a
reference, for ``count paths compare ... reference=...``.

NGA50 is QUAST's: the contigs are cut into the blocks that align to the reference, and NGA50 is the
length of the block at which the longest blocks reach half of the reference's length (none when they
never do).  The alignment here is made of exact anchors: every 25-mer occurring once in the
reference (on either strand) that a contig holds anchors that contig position to a reference
position and strand.  Consecutive anchors of a contig stay in one block while they keep to one
strand and one diagonal (reference position less contig position, or plus it on the reverse
strand) within ``MAX_SHIFT`` bases, and lie at most ``MAX_GAP`` bases apart: substitutions and
short indels stay inside a block, while a jump elsewhere in the reference (a misassembly), a
change of strand or a long stretch without anchors ends one.  A block spans from its first
anchor's start to its last anchor's end.  Everything is numpy over all contigs at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..store import encoding
from . import fastx

ANCHOR_K = 25
MAX_SHIFT = 85  # bases of indel a block bridges (QUAST: shorter indels are no misassembly)
MAX_GAP = 1_000  # contig bases without an anchor a block bridges
INVALID = 4  # the code of a base that is not A, C, G or T

Lengths = npt.NDArray[np.int64]


@dataclass
class Assembly:
    """An assembly's sequences (kept only where NGA50 needs them) and lengths."""

    name: str
    lengths: Lengths
    sequences: list[str]


def read_fasta(path: str, name: str, keep: bool) -> Assembly:
    """The records of a FASTA (or FASTQ) file, any compression ``load`` reads: lengths, and with
    ``keep`` the sequences.  A missing or unreadable file is refused (fastx.InputError)."""
    source = fastx.inspect(path)
    lengths, sequences = [], []
    for _name, seq in fastx.records(source):
        lengths.append(len(seq))
        if keep:
            sequences.append(seq)
    return Assembly(name, np.array(lengths, np.int64), sequences)


def n_value(lengths: npt.ArrayLike, total: int) -> int:
    """The length at which the longest of ``lengths`` reach half of ``total`` (N50 with the
    assembly's own total, NG50 or NGA50 with the reference's); 0 when they never do."""
    desc = np.sort(np.asarray(lengths, np.int64))[::-1]
    if not len(desc) or total <= 0:
        return 0
    reach = np.cumsum(desc)
    at = int(np.searchsorted(reach, total / 2))
    return int(desc[at]) if at < len(desc) else 0


def _codes(sequences: list[str]) -> tuple[npt.NDArray[np.uint8], Lengths]:
    """The sequences' 2-bit codes one after another, each followed by ANCHOR_K invalid codes (no
    k-mer spans two), and where each starts."""
    k = ANCHOR_K
    text = "".join(s + "N" * k for s in sequences).encode()
    codes = encoding.codes_from_bytes(np.frombuffer(text, np.uint8)) if text else np.zeros(0, np.uint8)
    starts = np.concatenate(([0], np.cumsum([len(s) + k for s in sequences])))[:-1].astype(np.int64)
    return codes, starts


def _windows(codes: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """The forward id of the k-mer starting at every position, and whether it holds only A, C, G, T."""
    k = ANCHOR_K
    n = len(codes) - k + 1
    if n <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    bad = codes >= INVALID
    clean = np.where(bad, 0, codes).astype(np.uint64)
    ids = np.zeros(n, np.uint64)
    for j in range(k):
        ids |= clean[j:j + n] << np.uint64(2 * (k - 1 - j))
    badc = np.concatenate(([0], np.cumsum(bad)))
    return ids, badc[k:k + n] == badc[:n]


def _revcomp(ids: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    k = ANCHOR_K
    out = np.zeros(len(ids), np.uint64)
    x = ids.copy()
    for _ in range(k):
        out = (out << np.uint64(2)) | (np.uint64(3) - (x & np.uint64(3)))
        x >>= np.uint64(2)
    return out


def aligned_blocks(contigs: list[str], reference: list[str]) -> Lengths:
    """The lengths of the contigs' blocks that align to the reference (see the module's text)."""
    ref_codes, _ = _codes(reference)
    ref_ids, ref_ok = _windows(ref_codes)
    ref_pos = np.flatnonzero(ref_ok)
    ref_ids = ref_ids[ref_ok]
    # 25-mers once in the reference on both strands together: a reverse-strand copy makes one ambiguous
    both = np.concatenate((ref_ids, _revcomp(ref_ids)))
    uniq, counts = np.unique(both, return_counts=True)
    once = uniq[counts == 1]
    keep = np.isin(ref_ids, once)
    order = np.argsort(ref_ids[keep])
    index_ids, index_pos = ref_ids[keep][order], ref_pos[keep][order]

    codes, starts = _codes(contigs)
    ids, ok = _windows(codes)
    if not len(ids) or not len(index_ids):
        return np.zeros(0, np.int64)
    pos = np.flatnonzero(ok)
    fwd = ids[ok]
    rev = _revcomp(fwd)
    anchors_pos, anchors_diag, anchors_strand = [], [], []
    for reverse, query in ((0, fwd), (1, rev)):
        at = np.minimum(np.searchsorted(index_ids, query), len(index_ids) - 1)
        hit = index_ids[at] == query
        where = index_pos[at[hit]].astype(np.int64)
        here = pos[hit].astype(np.int64)
        anchors_pos.append(here)
        anchors_diag.append(where + here if reverse else where - here)
        anchors_strand.append(np.full(len(here), reverse, np.int8))
    p = np.concatenate(anchors_pos)
    if not len(p):
        return np.zeros(0, np.int64)
    diag = np.concatenate(anchors_diag)
    strand = np.concatenate(anchors_strand)
    order = np.lexsort((strand, p))
    p, diag, strand = p[order], diag[order], strand[order]
    contig = np.searchsorted(starts, p, side="right") - 1
    new = np.ones(len(p), bool)
    new[1:] = ((contig[1:] != contig[:-1]) | (strand[1:] != strand[:-1]) | (np.abs(np.diff(diag)) > MAX_SHIFT)
               | (np.diff(p) > MAX_GAP))
    first = np.flatnonzero(new)
    last = np.concatenate((first[1:], [len(p)])) - 1
    return (p[last] - p[first] + ANCHOR_K).astype(np.int64)
