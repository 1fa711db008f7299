"""Every message's wire code, assigned in this one table.

Each service has a block of BLOCK codes of its own; a kind's code is its block's first code plus
its place in the block's list.  A new message appends its kind to its service's list (or a new
service takes the next block), so no code is ever picked by hand and no two kinds share one.
Codes are only valid between ranks of the same version (they are not stored in checkpoints).
Kinds are the names a message goes by (``explain``, errors, logs): each names one message.
"""

from __future__ import annotations

BLOCK = 20

# service: its kinds, in the order their codes are given (orders first, then their replies)
SERVICES: dict[str, tuple[str, ...]] = {
    "core": ("ack", "error", "stop", "fatal", "cancel", "bundle", "ping", "run-block", "block-done"),
    "store": ("put-order", "get-order", "copy-order", "move-order", "delete-order", "has-order", "stats-order",
              "item", "stored", "item-reply", "has-reply", "stats-reply"),
    "bulk": ("bulk-send", "bulk-chunk", "bulk-stored", "bulk-delete", "bulk-reply"),
    "kmers": ("load-order", "kmer-stats", "dump-size", "dump-write", "query-order", "held-order",
              "load-reply", "kmer-stats-reply", "size-reply", "query-reply", "held-reply"),
    "graph": ("walk", "path-store", "neighbours", "path-stored", "neighbours-reply"),
    "paths": ("path-lengths", "path-write", "path-lengths-reply"),
    "assembly": ("assemble", "assembled", "scaffold", "scaffolded"),
    "checkpoint": ("save-order", "restore-verify", "restore-commit", "saved", "verified", "committed",
                   "restore-copies", "copies-placed"),
    "sets": ("sets", "sets-reply", "combine", "combined", "compare", "compared", "matrix", "matrix-written",
             "rename-set", "drop-set"),
    "cascades": ("field-order", "fields-order", "start-cascade", "fields-reply", "cascade-done"),
}

# codes from FIRST_FREE up are free for messages defined outside the package (tests, extensions),
# which give theirs explicitly
FIRST_FREE = BLOCK * (len(SERVICES) + 1)


def _assign() -> dict[str, int]:
    codes: dict[str, int] = {}
    for n, (service, kinds) in enumerate(SERVICES.items(), start=1):
        if len(kinds) > BLOCK:
            raise ValueError(f"service {service!r} has more than {BLOCK} message kinds")
        for place, kind in enumerate(kinds):
            if kind in codes:
                raise ValueError(f"message kind {kind!r} is listed twice")
            codes[kind] = n * BLOCK + place
    return codes


CODES: dict[str, int] = _assign()
