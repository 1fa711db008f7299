"""The .ray language: grammar, parser, statement nodes and static checks (no MPI, no numpy).

The parser (:mod:`.parser`, with lark and the grammar) is imported by what parses, not with the
package: a rank that only serves needs the nodes (:mod:`.syntax`, :mod:`.cascade`) and keys
(:mod:`.keys`), never the parser."""
