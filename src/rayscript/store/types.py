"""The array types of the k-mer store, named so that every signature says which ids it takes.

An id of a k-mer of k <= 31 bases is one 64-bit word: a batch of them is a ``uint64`` array,
:data:`NarrowIds`.  An id of 32 <= k <= 63 bases takes two words, ``hi`` (the first k - 31 bases)
and ``lo`` (the last 31), held side by side as one 16-byte element of a ``complex128`` array,
:data:`WideIds` (see :mod:`rayscript.store.encoding`): a 1-D array, so masks, concatenation,
``==``, buffers and the wire need nothing new, but its elements are never used as numbers (their
``uint64`` view has two words per id).  A function that takes :data:`Ids` handles both and tells
them apart by dtype (or by k: the two always agree); one that takes :data:`NarrowIds` must never be
given two-word ids, and one that takes :data:`WideIds` never one-word ids.  An id of 64 <= k <= 127
bases takes four words, most significant first, each big-endian, as one 32-byte element of an
unstructured ``void`` array, :data:`LongIds`: numpy compares such elements byte by byte, which is
the ids' numeric order, so sorting and binary search need nothing more; arithmetic on them goes
through a :data:`WordMatrix` of their words.  Scalar ids are Python ints for any k.

This module imports numpy: modules that must not (the language) import it for type checking only.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

NarrowIds: TypeAlias = npt.NDArray[np.uint64]  # one word per id: k <= 31
WideIds: TypeAlias = npt.NDArray[np.complex128]  # two words per id: 32 <= k <= 63
LongIds: TypeAlias = npt.NDArray[np.void]  # four big-endian words per id: 64 <= k <= 127
Ids: TypeAlias = NarrowIds | WideIds | LongIds  # any, told apart by dtype (or by k)

Words: TypeAlias = npt.NDArray[np.uint64]  # one 64-bit word per element (a half of wide ids, packed words)
WordMatrix: TypeAlias = npt.NDArray[np.uint64]  # (n, 4): the words of long ids, most significant first
Codes: TypeAlias = npt.NDArray[np.uint8]  # 2-bit base codes, A=0 C=1 G=2 T=3, INVALID for anything else
Edges: TypeAlias = npt.NDArray[np.uint8]  # de Bruijn edge masks: bits 0-3 bases after, 4-7 bases before
Counts: TypeAlias = npt.NDArray[np.unsignedinteger]  # counts: uint32 at rest (uint16 while loading, uint64 summed)

__all__ = ["Codes", "Counts", "Edges", "Ids", "LongIds", "NarrowIds", "WideIds", "WordMatrix", "Words"]
