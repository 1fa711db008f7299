"""Syntax, description and example of every statement: the source of ``help`` and of
docs/language.md."""

HELP = {
    "put": ("put KEY [count=N] [edges=N] on RANK",
            "Store an item on a rank (overwrites what that rank held under the key).",
            "put kmers/19123890 count=3 on 2"),
    "get": ("get KEY [from RANK]",
            "Show the item as held on RANK (default: the key's owner rank).",
            "get kmers/19123890 from 5"),
    "copy": ("copy KEY [from A] to B [replace|merge]",
             "Order rank A to send KEY straight to rank B; B acknowledges to the commander. Without "
             "'from', A is the first rank that 'locate' lists. If B holds KEY already the copy is "
             "refused unless 'replace' (overwrite) or 'merge' (k-mers: add counts, unite edges).",
             "copy kmers/19123890 from 2 to 5"),
    "move": ("move KEY [from A] to B [replace|merge]",
             "Copy KEY from A to B, then delete it on A once B has stored it. If anything fails "
             "midway the item is still on A.",
             "move kmers/19123890 from 2 to 4"),
    "delete": ("delete KEY from RANK", "Remove KEY from RANK.", "delete kmers/19123890 from 2"),
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
    "set": ("set timeout = DURATION",
            "How long a commander waits for an answer before reporting the rank that did not "
            "answer (default 30s).",
            "set timeout = 10s"),
    "load": ("load \"FILE\" [, \"FILE\" ...] into kmers [k=N] [canonical=false]",
             "Count the k-mers of FASTQ/FASTA files (plain or gzip) across the ranks.",
             'load "reads.fq" into kmers k=31'),
    "count": ("count kmers", "Distinct and total k-mers, summed over the ranks.", "count kmers"),
    "histogram": ("histogram kmers [to \"FILE\"]", "Count -> number of k-mers with that count.",
                  'histogram kmers to "histo.tsv"'),
    "dump": ("dump kmers to \"FILE\" [min=N] [max=N]",
             "Write SEQUENCE<TAB>COUNT lines; every rank writes its own part.",
             'dump kmers to "out.tsv" min=2'),
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
