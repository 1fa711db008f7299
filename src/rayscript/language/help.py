"""``help`` and docs/language.md, both made from the statements' own help entries
(``syntax``, ``summary``, ``example`` on each statement class)."""

from __future__ import annotations

from . import syntax


def entries(registry: dict[str, type[syntax.Statement]] | None = None) -> dict[str, tuple[str, str, str]]:
    """keyword -> (syntax, summary, example), in the order the statements were declared."""
    reg = syntax.Statement.registry if registry is None else registry
    return {word: (cls.syntax, cls.summary, cls.example) for word, cls in reg.items()}


def help_text(topic: str | None = None, registry: dict[str, type[syntax.Statement]] | None = None) -> str:
    table = entries(registry)
    if topic is None:
        width = max(len(k) for k in table)
        lines = ["statements (help STATEMENT for details):"]
        lines += [f"  {word:<{width}}  {table[word][0]}" for word in table]
        keys = ", ".join(f"{ns}/NAME" for ns in syntax.namespaces() if ns != "kmers")
        lines.append(f"keys: kmers/19123890, kmers/ACGT, {keys}; ranks: 0..N-1 or $var")
        return "\n".join(lines)
    form, description, example = table[topic]
    return f"{form}\n  {description}\n  example: {example}"


_INTRO = """# The .ray language

`grammar/ray.lark` is the single source of truth for the syntax; this page is generated from the
help entries as the `help` statement (each statement class's `syntax`, `summary` and `example`:
`python -m rayscript.statements > docs/language.md`).

## Basics

- Statements end at a newline or `;`. `#` starts a comment. A trailing `\\` continues a line.
- K-mer sets: `kmers` is the default set; `kmers.NAME` names another (NAME: a lowercase letter or
  `_`, then lowercase letters, digits, `_`), made by `load ... into kmers.NAME` or `combine`. Each set
  has its own k and canonical flag. Every statement that takes k-mers takes any set, in keys and
  selectors too: `kmers.tumour/ACGT`, `kmers.tumour/*`, `kmers.tumour where count >= 3`. Sets of one
  k share one partition (a k-mer's owner rank does not depend on its set), so `combine`, `compare`
  and `matrix` work on every rank at once without moving k-mers. An unknown set is refused, naming
  the sets there are. See docs/samples.md.
- Selectors pick many k-mers for copy, move, delete, count and dump: `kmers/*`, a base prefix of the
  canonical form `kmers/ACG*`, or a condition `kmers where count >= 10` (also <=, >, <, ==, !=).
- Keys are `NAMESPACE/ID`: `kmers/19123890` (a 2-bit k-mer id, A=0 C=1 G=2 T=3, first base most
  significant), `kmers/ACGT` (bases; canonicalized: the smaller of the k-mer and its reverse
  complement; as many bases as the set's k: `get kmers/ACGT` on a set of 31-mers is refused, not read
  as a 31-mer led by A's), `paths/NAME`, `results/NAME`. `$var` and `${var}` may appear inside a key: `kmers/$x`.
- Ranks are whole numbers `0..N-1` or `$variables`. A rank outside the cluster is refused before
  any message is sent, naming the cluster size.
- The owner rank of a key is `splitmix64(id) % N` (for a name, of its 64-bit BLAKE2b digest);
  the same on every rank and every run. `get` without `from` asks the owner; `locate` lists it first.
- The commander is rank 0 unless `on R` says otherwise. Outside `parallel`, each statement completes
  (all its acknowledgements received) before the next starts.

## The store's model

- Every item has one *owner* rank (above). Items may also live on other ranks: a *copy* (`copy`,
  `replicate`, a restore onto another rank count) is the same item, not more of it. Only an order that
  says `merge` adds counts (and unites edges); `replace` overwrites; without either, a copy onto a rank
  that holds the key is refused.
- `rebalance` (and a restore onto a different number of ranks) brings every k-mer to its owner and
  never changes a value: a copy identical to the owner's collapses into it; a copy whose count or edges
  differ stays on its rank and is reported, never summed.
- `count`, `histogram`, `dump` (of k-mers, and of paths), `query` and `get` without `from` take each
  item once, however many ranks hold it: its owner's copy, or, when its owner does not hold it, the
  copy of the lowest rank that does (copies that differ after a `merge` or `replace` are not summed).
  `count` and `dump` say how many extra copies they left out; `ranks` lists what every rank holds,
  copies included.
- A `move` takes an item exactly once: while it is in flight, another move or delete of the same key
  from the same rank is refused ("is being moved ... by another order"), for single keys and selectors.
- `load` counts into the store: a second load adds its counts to the first (same k and `canonical=`).
  The first load decides the store's k (1 to 127); a k-mer id given by number must then be below 4**k
  and, in a canonical store, canonical. Keys of k > 31 are best written by their bases (`kmers/ACGT...`),
  and results show them that way. K-mers put by number before any load are checked by that first load.
- Files written by `dump`, `histogram` and `query ... to` are overwritten if they exist (through a
  symlink, its target is written); anything but a regular file (a device, a pipe) is refused.
- The de Bruijn graph that `walk` and `search` follow is what the store holds: a k-mer deleted, or
  moved away from its owner, is not in it, whatever its neighbours' edges say.

## Statements
"""

_ERRORS = """## Errors

Every error says where and what was expected; nothing is sent for a script that does not parse:

```
bad.ray:2:19: expected a rank number after 'from', got 'x'
    copy kmers/1 from x to 5
                      ^
bad.ray:1:1: unknown statement 'cpy'; did you mean 'copy'?
bad.ray:3:1: rank 7 is outside the cluster: ranks are 0..5 (6 ranks)
bad.ray:4:1: undefined variable $y
bad.ray:5:1: rank 2: kmers/1 is not on rank 2
```

A runtime refusal names the rank and the key. `rayscript check FILE --ranks N` reports every
syntax error of a file (each offending line is set aside and parsing goes on) and the static
checks of the other lines (undefined variables, ranks outside the cluster, same source and target,
option values that do not fit what the option takes, such as `k=99`), in the order of the file;
`rayscript run` and `Cluster.run` find the same errors before running anything.

Every error is a `rayscript.errors.RayScriptError`. From `Cluster.run` (and `stream`):

- `ScriptSyntaxError`: the text does not parse (file:line:column, the line and a caret).
- `ScriptError`: a static check failed (undefined variable, rank outside the cluster), or a statement
  refused what it was given before sending anything (a bad option value, a missing file:
  `rayscript.genomics.fastx.InputError`, a bad checkpoint: `CheckpointError`).
- `ScriptErrors`: several syntax or static problems at once (`.errors` lists them, in the order of the text).
- `StatementError`: a statement failed while it ran: its location, and `.cause`, a `RuntimeFault`
  naming the rank and the key (`OrderTimeout` when a rank did not answer in time).
- `StatementErrors`: several branches of `parallel` failed (a `StatementError`; `.errors` lists each
  branch's error, `.cause` and the location are the first's).
- `RankFailure`: a rank crashed; the job is shut down.
- `Cancelled`: Ctrl-C; the orders in flight were completed, later ones not sent.

A statement in a block another rank commands (`on R`) fails with the same error as on rank 0, located
at it. Nothing is sent for a script that does not parse or check. When a statement fails, the results of the
statements before it, and of the rounds of a loop or statements of a block that completed before it,
are printed before the error (by `rayscript run` and the REPL) and are on the exception
(`err.results`). A misused API call (`c.run(None)`,
`Cluster.local("3")`) raises `TypeError` with a sentence saying what was expected.
"""


def language_markdown(registry: dict[str, type[syntax.Statement]] | None = None) -> str:
    parts = [_INTRO]
    for word, (form, description, example) in entries(registry).items():
        parts.append(f"### {word}\n\n```\n{form}\n```\n\n{description}\n\n```\n{example}\n```\n")
    parts.append(_ERRORS)
    return "\n".join(parts)
