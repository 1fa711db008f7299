"""Syntax, description and example of every statement: the source of ``help`` and of
docs/language.md."""

HELP = {
    "put": ("put KEY [count=N] [edges=N] on RANK",
            "Store an item on a rank (overwrites what that rank held under the key).",
            "put kmers/19123890 count=3 on 2"),
    "get": ("get KEY [from RANK]",
            "Show the item as held on RANK (default: the key's owner rank).",
            "get kmers/19123890 from 5"),
    "copy": ("copy KEY|SELECTOR [from A] to B [replace|merge]",
             "Order rank A to send KEY straight to rank B; B acknowledges to the commander. Without "
             "'from', A is the first rank that 'locate' lists. If B holds KEY already the copy is "
             "refused unless 'replace' (overwrite) or 'merge' (k-mers: add counts, unite edges). A selector "
             "(kmers/*, kmers/ACG*, kmers where count >= 10) streams every selected k-mer from A to B in "
             "bounded chunks, all or nothing.",
             "copy kmers where count >= 10 from 1 to 2"),
    "move": ("move KEY|SELECTOR [from A] to B [replace|merge]",
             "Copy KEY from A to B, then delete it on A once B has stored it. If anything fails "
             "midway the item is still on A.",
             "move kmers/19123890 from 2 to 4"),
    "delete": ("delete KEY|SELECTOR from RANK", "Remove KEY (or every selected k-mer) from RANK.",
               "delete kmers/ACG* from 2"),
    "locate": ("locate KEY", "Every rank that holds KEY, owner first.", "locate kmers/19123890"),
    "on": ("on RANK: STATEMENT  |  on RANK { STATEMENTS }",
           "Make RANK the commander of the statements: it sends their orders and collects the "
           "acknowledgements.",
           "on 3: copy kmers/19123890 from 2 to 5"),
    "parallel": ("parallel { STATEMENTS }",
                 "Issue every statement of the block at once (typically several 'on' blocks); the "
                 "block ends when all are acknowledged.",
                 "parallel { on 1: copy kmers/7 from 1 to 2\n           on 3: copy kmers/9 from 3 to 0 }"),
    "let": ("let NAME = VALUE", "Define a variable, used as $NAME.", "let x = 19123890"),
    "for": ("for NAME in A..B { STATEMENTS }", "Repeat the block for NAME = A, A+1, ..., B (inclusive).",
            "for r in 1..4 { copy kmers/$x from 0 to $r }"),
    "ranks": ("ranks", "A table of the cluster: rank, host, items per namespace, bytes held.", "ranks"),
    "explain": ("explain STATEMENT",
                "Print the control messages STATEMENT compiles to, and the cascade they trigger, "
                "without sending anything.",
                "explain copy kmers/19123890 from 2 to 5"),
    "print": ("print VALUE ...", "Print text, numbers, keys and variables.", 'print "x is" $x'),
    "help": ("help [STATEMENT]", "List the statements, or show one's syntax and an example.", "help copy"),
    "set": ("set timeout [=] DURATION",
            "How long a commander waits for an answer before reporting the rank that did not "
            "answer (default 30s). The '=' may be left out: set timeout 10s.",
            "set timeout = 10s"),
    "load": ("load \"FILE\" [, \"FILE\" ...] into kmers [k=N] [canonical=false]",
             "Count the k-mers of FASTQ/FASTA files (plain or gzip) across the ranks.",
             'load "reads.fq" into kmers k=31'),
    "count": ("count kmers", "Distinct and total k-mers, summed over the ranks.", "count kmers"),
    "histogram": ("histogram kmers [to \"FILE\"]", "Count -> number of k-mers with that count.",
                  'histogram kmers to "histo.tsv"'),
    "dump": ("dump kmers|SELECTOR to \"FILE\" [min=N] [max=N]",
             "Write SEQUENCE<TAB>COUNT lines; every rank writes its own part.",
             'dump kmers to "out.tsv" min=2'),
    "walk": ("walk KEY [both] [length=N] into paths/NAME",
             "Follow the unique successor of the k-mer hop by hop (with 'both', also extend backwards), "
             "rank to rank without the commander; stop at a branch, a dead end, a cycle or N k-mers; store "
             "the path on the owner of paths/NAME and report why it stopped.",
             "walk kmers/ACGTACGTACGTACGTACGTACGTACGTACG both into paths/contig1"),
    "search": ("search KEY depth=D into results/NAME",
               "Breadth-first neighbourhood of a k-mer in the de Bruijn graph, frontier by frontier across "
               "the ranks; the result lists every vertex reached with its depth.",
               "search kmers/19123890 depth=3 into results/near"),
    "replicate": ("replicate KEY to N ranks",
                  "Place copies of KEY on N ranks chosen deterministically (its owner, then the next ranks); "
                  "'locate' lists them.",
                  "replicate kmers/19123890 to 3 ranks"),
    "rebalance": ("rebalance kmers",
                  "Move every k-mer to its owner rank (after bulk copies or restores), merging counts there.",
                  "rebalance kmers"),
    "save": ("save to \"DIRECTORY\"",
             "Checkpoint: every rank writes its shard (all namespaces) in parallel, then the commander "
             "writes a manifest (format version, k, rank count, item counts, a checksum per file). Files "
             "are written under new names and the manifest last, so a crash midway leaves the previous "
             "checkpoint intact.",
             'save to "ckpt/"'),
    "restore": ("restore from \"DIRECTORY\"",
                "Replace the store with a checkpoint, also on a different number of ranks (items go to "
                "their owners). Every file is verified (size, checksum, format, k) before the store changes.",
                'restore from "ckpt/"'),
    "query": ("query \"FILE\" in kmers [to \"FILE\"]", "The count of every k-mer of the given sequences.",
              'query "genes.fa" in kmers'),
}


def help_text(topic: str | None = None) -> str:
    if topic is None:
        width = max(len(k) for k in HELP)
        lines = ["statements (help STATEMENT for details):"]
        lines += [f"  {word:<{width}}  {HELP[word][0]}" for word in HELP]
        lines.append("keys: kmers/19123890, kmers/ACGT, paths/NAME, results/NAME; ranks: 0..N-1 or $var")
        return "\n".join(lines)
    syntax, description, example = HELP[topic]
    return f"{syntax}\n  {description}\n  example: {example}"


_INTRO = """# The .ray language

`grammar/ray.lark` is the single source of truth for the syntax; this page is generated from the
same table as the `help` statement (`src/rayscript/language/help.py`: `python -m
rayscript.language.help > docs/language.md`).

## Basics

- Statements end at a newline or `;`. `#` starts a comment. A trailing `\\` continues a line.
- Selectors pick many k-mers for copy, move, delete and dump: `kmers/*`, a base prefix of the
  canonical form `kmers/ACG*`, or a condition `kmers where count >= 10` (also <=, >, <, ==, !=).
- Keys are `NAMESPACE/ID`: `kmers/19123890` (a 2-bit k-mer id, A=0 C=1 G=2 T=3, first base most
  significant), `kmers/ACGT` (bases; canonicalized: the smaller of the k-mer and its reverse
  complement), `paths/NAME`, `results/NAME`. `$var` and `${var}` may appear inside a key: `kmers/$x`.
- Ranks are whole numbers `0..N-1` or `$variables`. A rank outside the cluster is refused before
  any message is sent, naming the cluster size.
- The owner rank of a key is `splitmix64(id) % N` (for a name, of its 64-bit BLAKE2b digest);
  the same on every rank and every run. `get` without `from` asks the owner; `locate` lists it first.
- The commander is rank 0 unless `on R` says otherwise. Outside `parallel`, each statement completes
  (all its acknowledgements received) before the next starts.

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
bad.ray:5:1: rank 2, kmers/1: kmers/1 is not on rank 2
```

A runtime refusal names the rank and the key. `rayscript check FILE --ranks N` reports every
syntax error of a file (each offending line is set aside and parsing goes on), then the static
checks (undefined variables, ranks outside the cluster, same source and target).
"""


def language_markdown() -> str:
    parts = [_INTRO]
    for word, (syntax, description, example) in HELP.items():
        parts.append(f"### {word}\n\n```\n{syntax}\n```\n\n{description}\n\n```\n{example}\n```\n")
    parts.append(_ERRORS)
    return "\n".join(parts)


if __name__ == "__main__":
    print(language_markdown(), end="")  # noqa: T201
