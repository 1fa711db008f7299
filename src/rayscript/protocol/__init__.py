"""The wire vocabulary: every control message the ranks speak, one module per service.

:mod:`.base` is the message base class and its codec, :mod:`.codes` the one table of wire codes;
:mod:`.core` (replies, life cycle, blocks), :mod:`.store` (single items), :mod:`.bulk` (copy, move
and delete by selector), :mod:`.kmers` (load, counts, dump, query), :mod:`.graph` (walk, search),
:mod:`.paths` (path statistics and FASTA), :mod:`.assembly`, :mod:`.checkpoint` (save, restore)
and :mod:`.sets` (k-mer sets: list, combine, compare, matrix, rename, drop) and :mod:`.cascades`
(fields, cascades written in the language) define the messages of
each service.  Importing the package registers them all, so any envelope can be decoded.
"""

from . import assembly, bulk, cascades, checkpoint, core, graph, kmers, paths, sets, store
from .base import REGISTRY, Message, key_text

__all__ = ["REGISTRY", "Message", "assembly", "bulk", "cascades", "checkpoint", "core", "graph", "key_text", "kmers",
           "paths", "sets", "store"]
