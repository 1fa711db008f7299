"""Keys as a script writes them (``NAMESPACE/ID``, ``kmers.NAME/ACGT``, ``paths/contig*``): checked and
made into nodes, by the parser and again at run time once ``$variables`` are substituted (so this
module needs no parser: a rank that only serves never loads the grammar)."""

from __future__ import annotations

import difflib
import re

from ..errors import ScriptSyntaxError
from ..items import is_kmers
from ..store.encoding import MAX_K
from . import syntax

_NAME_PART = r"(?:\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9_.\-])"
_IDENT_RE = re.compile(rf"{_NAME_PART}+")
_PATTERN_RE = re.compile(r"[ACGTacgt]*\*")
BASES_RE = re.compile(r"[ACGTacgt]+")


# names a set may not take: files and tables show a set by its name without 'kmers.' (the default set
# as 'kmers'), beside a 'kmer' column
RESERVED_SET_NAMES = ("kmers", "kmer")


def set_name_problem(namespace: str) -> str | None:
    """Why ``kmers.NAME`` is no set name (None when it is one, or when it is no ``kmers.`` name)."""
    if not namespace.startswith("kmers.") or (is_kmers(namespace) and namespace[6:] not in RESERVED_SET_NAMES):
        return None
    name = namespace[len("kmers."):]
    if not name:
        return "expected a set name after 'kmers.', such as kmers.tumour"
    if name in RESERVED_SET_NAMES:
        return (f"'{name}' is not a set name: tables name the default set 'kmers' and the k-mer column 'kmer'; "
                "choose another name")
    return (f"'{name}' is not a set name: a lowercase letter or '_', then lowercase letters, digits or '_' "
            f"(such as kmers.{re.sub('[^a-z0-9_]', '_', name.lower()).lstrip('0123456789') or 'sample'})")


def make_key(text: str) -> syntax.Key | syntax.Selector:
    """Validate ``NAMESPACE/ID`` text (also after ``$var`` substitution at run time)."""
    namespace, _, ident = text.partition("/")
    known = syntax.namespaces()
    problem = set_name_problem(namespace)
    if problem:
        raise ScriptSyntaxError(problem)
    if namespace not in known and not is_kmers(namespace):
        near = difflib.get_close_matches(namespace, known, n=1)
        hint = f"; did you mean '{near[0]}/'?" if near else ""
        listed = ", ".join(f"{n}/" for n in known)
        raise ScriptSyntaxError(f"unknown namespace '{namespace}/' (expected {listed}){hint}")
    if not ident:
        raise ScriptSyntaxError(f"expected an id after '{namespace}/', such as {namespace}/{_example(namespace)}")
    if ident.endswith("*"):
        if not is_kmers(namespace):
            if ident != "*" and not _IDENT_RE.fullmatch(ident[:-1]):
                raise ScriptSyntaxError(f"'{ident}' is not a pattern of names: use {namespace}/* or a name prefix "
                                        f"like {namespace}/contig*")
            return syntax.Selector(namespace, prefix=ident[:-1])
        if not _PATTERN_RE.fullmatch(ident) or len(ident) - 1 > MAX_K:
            raise ScriptSyntaxError(f"'{ident}' is not a k-mer pattern: use {namespace}/* or a base prefix like "
                                    f"{namespace}/ACG*")
        return syntax.Selector(namespace, prefix=ident[:-1].upper())
    if not _IDENT_RE.fullmatch(ident):
        raise ScriptSyntaxError(f"'{ident}' is not a valid id in {namespace}/ "
                                "(letters, digits, '_', '.', '-' or $variables)")
    if "$" in ident:
        return syntax.Key(namespace, ident)
    if is_kmers(namespace):
        if ident.isdigit():
            value = int(ident)
            if value >= 1 << (2 * MAX_K):
                raise ScriptSyntaxError(f"k-mer id {value} is too large for k <= {MAX_K} (ids are below 4**{MAX_K})")
            return syntax.Key(namespace, value)
        if BASES_RE.fullmatch(ident):
            if len(ident) > MAX_K:
                raise ScriptSyntaxError(f"a k-mer has at most {MAX_K} bases, '{ident}' has {len(ident)}")
            return syntax.Key(namespace, ident.upper())
        raise ScriptSyntaxError("a k-mer id is a number (kmers/19123890) or bases A, C, G, T (kmers/ACGT), "
                                f"not '{ident}'")
    return syntax.Key(namespace, ident)


def _example(namespace: str) -> str:
    return "19123890" if is_kmers(namespace) else {"paths": "p1", "results": "r1"}.get(namespace, "x")
