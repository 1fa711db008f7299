"""Parse .ray text into statement nodes.

The grammar (``grammar/ray.lark``, shipped inside the package) is loaded once, lazily, into a
LALR parser.  Its ``statement`` rule is made from the statement registry (one alternative per
keyword), and each statement rule is turned into a node by its class in the registry
(:meth:`rayscript.language.syntax.Statement.build`), so this module knows no statement by name.
Lark's exceptions never escape: every problem becomes a :class:`~rayscript.errors.ScriptSyntaxError`
with file:line:column, the line, a caret and a sentence saying what was expected.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import fields
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any, NamedTuple, NoReturn, cast

import lark
from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..errors import Location, ScriptError, ScriptSyntaxError
from ..items import is_kmers
from . import cascade, syntax
from .keys import BASES_RE, make_key, set_name_problem

# blocks nested deeper than this are refused (each level costs Python stack when run)
MAX_NESTING = 64



def grammar_text() -> str:
    return resources.files("rayscript").joinpath("grammar/ray.lark").read_text(encoding="utf-8")


def _loc(meta_or_token: Any, source: str) -> Location:
    return Location(meta_or_token.line, meta_or_token.column, source)


class Option(NamedTuple):
    """``name=value`` as written; ``token`` locates the name, ``at`` the value."""

    name: str
    value: syntax.Value
    token: Token
    at: Token


class Builder:
    """What a statement's ``build`` gets besides its children (the
    :class:`~rayscript.language.syntax.Build` it is declared with): its location, the registry it
    belongs to, and helpers that raise located syntax errors."""

    def __init__(self, meta: Any, source: str, registry: dict[str, type[syntax.Statement]]) -> None:
        self.location = _loc(meta, source)
        self.source = source
        self.registry = registry
        # where the value of each option is written (kept on the node: errors about a value point at it)
        self.option_locations: tuple[tuple[str, Location], ...] = ()

    def fail(self, message: str, at: Any = None) -> NoReturn:
        raise ScriptSyntaxError(message, _loc(at, self.source) if at is not None else self.location)

    @staticmethod
    def positional(children: Sequence[Any]) -> list[Any]:
        return [c for c in children if not isinstance(c, Option)]

    def options(self, cls: type[syntax.Statement], children: Sequence[Any]) -> syntax.Options:
        allowed = cls.options_allowed
        seen: dict[str, syntax.Value] = {}
        for opt in (c for c in children if isinstance(c, Option)):
            if opt.name not in allowed:
                choices = ", ".join(f"{n}=" for n in allowed) or "none"
                near = difflib.get_close_matches(opt.name, list(allowed), n=1)
                hint = f"; did you mean '{near[0]}='?" if near else ""
                self.fail(f"'{cls.keyword}' has no option '{opt.name}=' (options: {choices}){hint}", opt.token)
            if opt.name in seen:
                self.fail(f"option '{opt.name}=' given twice", opt.token)
            seen[opt.name] = opt.value
            self.option_locations += ((opt.name, _loc(opt.at, self.source)),)
        return tuple(sorted(seen.items()))

    def options_arg(self, cls: type[syntax.Statement], children: Sequence[Any]) -> dict[str, Any]:
        if any(f.name == "options" for f in fields(cls)):
            return {"options": self.options(cls, children)}
        self.options(cls, children)  # refuses any option
        return {}

    def single(self, key: object, word: str) -> syntax.Key:
        if not isinstance(key, syntax.Key):  # the grammar gives a key or a selector
            self.fail(f"'{word}' takes one key, not the pattern {key}")
        return key

    def into(self, key: object, namespace: str, word: str) -> syntax.Key:
        if not isinstance(key, syntax.Key) or key.namespace != namespace:
            self.fail(f"'{word}' stores its result under {namespace}/NAME, not {key}")
        return key


class _ToAst(Transformer):
    """Turns lark's parse tree into statement nodes: values here, statements by the registry."""

    def __init__(self, source: str, registry: dict[str, type[syntax.Statement]]) -> None:
        super().__init__(visit_tokens=True)
        self.source = source
        self.registry = registry
        self._value_at: Token | None = None

    def __default__(self, data: str, children: list[Any], meta: Any) -> Any:
        cls = self.registry.get(data)
        if cls is None:
            return Tree(data, children, meta)
        b = Builder(meta, self.source, self.registry)
        node = cls.build(b, children)
        if b.option_locations:  # kept out of equality, like meta; set once, as the node is made
            object.__setattr__(node, "option_locations", tuple(dict(b.option_locations).items()))
        return node

    def _fail(self, message: str, tok: Any) -> NoReturn:
        raise ScriptSyntaxError(message, _loc(tok, self.source))

    def NAMESPACE(self, tok: Token) -> Token:
        problem = set_name_problem(str(tok))
        if problem:
            self._fail(problem, tok)
        return tok

    # --- values ---------------------------------------------------------
    def rank_int(self, children: list[Any]) -> int:
        tok = children[0]
        value = int(tok)
        if value < 0:
            self._fail(f"a rank is a number from 0 up, not {value}", tok)
        return value

    def rank_var(self, children: list[Any]) -> syntax.Var:
        return _var(children[0])

    # each value remembers its token: an option's value is the last one read before the option
    def int_value(self, children: list[Any]) -> int:
        self._value_at = children[0]
        return int(children[0])

    def float_value(self, children: list[Any]) -> float:
        self._value_at = children[0]
        return float(children[0])

    def str_value(self, children: list[Any]) -> str:
        self._value_at = children[0]
        raw = str(children[0])[1:-1]
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), raw)

    def var_value(self, children: list[Any]) -> syntax.Var:
        self._value_at = children[0]
        return _var(children[0])

    def range_value(self, children: list[Any]) -> syntax.Word:
        self._value_at = children[0]
        return syntax.Word(str(children[0]))

    def word_value(self, children: list[Any]) -> syntax.Word:
        self._value_at = children[0]
        return syntax.Word(str(children[0]))

    def duration_value(self, children: list[Any]) -> syntax.Duration:
        self._value_at = children[0]
        text = str(children[0])
        m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)", text)
        assert m is not None  # the terminal's own pattern
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]
        return syntax.Duration(float(m.group(1)) * scale, text)

    def key_value(self, children: list[Any]) -> syntax.Key | syntax.Selector:
        self._value_at = children[0]
        return self._key(children[0])

    def key(self, children: list[Any]) -> syntax.Key | syntax.Selector:
        return self._key(children[0])

    def where(self, children: list[Any]) -> syntax.Selector:
        namespace, name, op, value = children
        if not is_kmers(str(namespace)):
            self._fail(f"conditions select k-mers ('kmers where count >= 10'), not {namespace}", namespace)
        if str(name) in ("id", "edges", "kmer", "kmers"):
            self._fail(f"k-mers can be selected by 'count' or by a field ('field NAME = 0 on kmers'), not "
                       f"'{name}'", name)
        return syntax.Selector(str(namespace), field=str(name), op=str(op), value=value)

    def _key(self, tok: Token) -> syntax.Key | syntax.Selector:
        try:
            return make_key(str(tok))
        except ScriptSyntaxError as err:
            raise ScriptSyntaxError(err.message, _loc(tok, self.source)) from None

    def mode(self, children: list[Any]) -> str:
        """``replace`` or ``merge`` after a copy, a move or an assemble."""
        return str(children[0])

    def option(self, children: list[Any]) -> Option:
        name, *values = children
        value = values[0] if len(values) == 1 else tuple(values)  # name=a,b,c: a tuple of values
        return Option(str(name), value, name, self._value_at or name)

    def string_list(self, children: list[Any]) -> tuple[Any, ...]:
        return tuple(children)

    def namespace_list(self, children: list[Any]) -> tuple[Any, ...]:
        return tuple(children)

    def block(self, children: list[Any]) -> tuple[syntax.Statement, ...]:
        return tuple(children)

    def script(self, children: list[Any]) -> list[syntax.Statement]:
        return list(children)

    # --- cascade bodies (rayscript.language.cascade) -------------------------------
    def _at(self, meta: Any) -> Location:
        return _loc(meta, self.source)

    @lark.v_args(meta=True)
    def c_block(self, meta: Any, children: list[Any]) -> tuple[Any, ...]:
        return tuple(children)

    @lark.v_args(meta=True)
    def c_let(self, meta: Any, children: list[Any]) -> cascade.Let:
        return cascade.Let(str(children[0]), children[1], self._at(meta))

    @lark.v_args(meta=True)
    def c_if(self, meta: Any, children: list[Any]) -> cascade.If:
        cond, then, orelse = children
        if isinstance(orelse, cascade.If):
            orelse = (orelse,)
        return cascade.If(cond, then, orelse or (), self._at(meta))

    @lark.v_args(meta=True)
    def c_stop(self, meta: Any, children: list[Any]) -> cascade.Stop:
        return cascade.Stop(self._at(meta))

    @lark.v_args(meta=True)
    def c_set(self, meta: Any, children: list[Any]) -> cascade.SetField:
        obj, name, value = children
        return cascade.SetField(str(obj), str(name), value, self._at(meta))

    @lark.v_args(meta=True)
    def c_send(self, meta: Any, children: list[Any]) -> cascade.Send:
        name, target, *args = children
        return cascade.Send(str(name), target, tuple(args), self._at(meta))

    @lark.v_args(meta=True)
    def c_emit(self, meta: Any, children: list[Any]) -> cascade.Emit:
        return cascade.Emit(children[0], self._at(meta))

    def e_int(self, children: list[Any]) -> cascade.Num:
        return cascade.Num(int(children[0]), _loc(children[0], self.source))

    def e_float(self, children: list[Any]) -> cascade.Num:
        return cascade.Num(float(children[0]), _loc(children[0], self.source))

    def e_name(self, children: list[Any]) -> cascade.Name:
        return cascade.Name(str(children[0]), _loc(children[0], self.source))

    def e_attr(self, children: list[Any]) -> cascade.Attr:
        obj, attr = children
        return cascade.Attr(str(obj), str(attr), _loc(obj, self.source))

    def e_call(self, children: list[Any]) -> cascade.Call:
        fn, *args = children
        return cascade.Call(str(fn), tuple(args), _loc(fn, self.source))

    def e_var(self, children: list[Any]) -> cascade.ScriptVar:
        return cascade.ScriptVar(_var(children[0]).name, _loc(children[0], self.source))

    def e_key(self, children: list[Any]) -> cascade.KeyLit:
        tok = children[0]
        key = self._key(tok)
        if isinstance(key, syntax.Key) and key.is_template and is_kmers(key.namespace):
            return cascade.KeyLit(str(key.ident), _loc(tok, self.source))
        if not isinstance(key, syntax.Key) or not is_kmers(key.namespace) or not isinstance(key.ident, str) \
                or not BASES_RE.fullmatch(key.ident):
            self._fail(f"a k-mer to send to is written by its bases (kmers/ACGT...), not {tok}", tok)
        return cascade.KeyLit(str(key.ident).upper(), _loc(tok, self.source))

    @lark.v_args(meta=True)
    def e_or(self, meta: Any, children: list[Any]) -> cascade.Op:
        return cascade.Op("or", (children[0], children[1]), self._at(meta))

    @lark.v_args(meta=True)
    def e_and(self, meta: Any, children: list[Any]) -> cascade.Op:
        return cascade.Op("and", (children[0], children[1]), self._at(meta))

    @lark.v_args(meta=True)
    def e_not(self, meta: Any, children: list[Any]) -> cascade.Op:
        return cascade.Op("not", (children[0],), self._at(meta))

    @lark.v_args(meta=True)
    def e_cmp(self, meta: Any, children: list[Any]) -> cascade.Op:
        left, op, right = children
        return cascade.Op(str(op), (left, right), self._at(meta))

    def _binary(self, meta: Any, children: list[Any]) -> cascade.Op:
        left, op, right = children
        if str(op) == "~":
            self._fail("'~' is an operator of set expressions (combine), not of numbers", op)
        return cascade.Op(str(op), (left, right), self._at(meta))

    @lark.v_args(meta=True)
    def e_add(self, meta: Any, children: list[Any]) -> cascade.Op:
        return self._binary(meta, children)

    @lark.v_args(meta=True)
    def e_mul(self, meta: Any, children: list[Any]) -> cascade.Op:
        return self._binary(meta, children)

    @lark.v_args(meta=True)
    def e_neg(self, meta: Any, children: list[Any]) -> cascade.Expr:
        op, value = children
        if str(op) == "+":
            return cast("cascade.Expr", value)
        if str(op) != "-":
            self._fail(f"'{op}' cannot stand before a number ('-' can)", op)
        return cascade.Op("-", (value,), self._at(meta))


def _var(tok: Token) -> syntax.Var:
    text = str(tok)
    return syntax.Var(text[2:-1] if text.startswith("${") else text[1:])


_NAMESPACE_TERMINAL = "NAMESPACE.2: /(?!)/"  # in the grammar file: a placeholder matching nothing


def _with_namespaces(grammar: str) -> str:
    """The grammar with its NAMESPACE terminal matching the namespaces of the item registry, and a
    k-mer set's ``kmers.NAME`` (any name-like text after the dot: a name outside the rules is
    refused by the transformer, with its place)."""
    pattern = ("(?:kmers\\.[A-Za-z0-9_]*|" + "|".join(map(re.escape, syntax.namespaces()))
               + r")(?![A-Za-z0-9_])")
    return grammar.replace(_NAMESPACE_TERMINAL, f"NAMESPACE.2: /{pattern}/")


def _with_statements(grammar: str, registry: dict[str, type[syntax.Statement]]) -> str:
    """The grammar with its ``statement`` rule: one alternative per keyword of the registry, each
    the rule named by that keyword (a statement whose rule is missing is named)."""
    for word, cls in registry.items():
        if not re.search(rf"^{re.escape(word)}\s*:", grammar, re.M):
            raise ValueError(f"the statement '{word}' ({cls.__module__}.{cls.__qualname__}) has no grammar rule: "
                             f"add '{word}: \"{word}\" ...' to the grammar")
    return f"{grammar}\n?statement: {' | '.join(sorted(registry))}\n"


def _cache_file(grammar: str) -> str | bool:
    """Where the built parser is kept between runs (lark's cache, checked against the grammar's
    hash when loaded): the user's own cache directory, not a shared temporary one; False (no
    cache) where that cannot be made."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "rayscript")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return False
    if not os.access(folder, os.W_OK):
        return False
    key = hashlib.sha256(f"{grammar}\0{lark.__version__}\0{sys.version}".encode()).hexdigest()[:16]
    return os.path.join(folder, f"parser-{key}.lark")


# --- the parser ------------------------------------------------------------------

class Parser:
    """A .ray parser over a grammar and a statement registry (by default the package's own)."""

    def __init__(self, grammar: str | None = None,
                 registry: dict[str, type[syntax.Statement]] | None = None) -> None:
        self.grammar = grammar if grammar is not None else grammar_text()
        self.registry = registry if registry is not None else syntax.Statement.registry

    def lark(self, strict: bool = False) -> Lark:
        """The LALR parser, built once.  ``strict`` (no terminal collisions, no LALR conflicts)
        is checked by the test suite; it triples the build time, so parsing skips it."""
        if strict:
            return self._build(True)
        return self._lark

    @cached_property
    def _lark(self) -> Lark:
        return self._build(False)

    def _build(self, strict: bool) -> Lark:
        grammar = _with_statements(_with_namespaces(self.grammar), self.registry)
        # building takes half a second (lark checks every pair of terminals): parsing loads the
        # built parser from the cache; the strict check (the test suite's) always builds.  An
        # optional part written [...] gives None when left out: a statement's children have places.
        return Lark(grammar, parser="lalr", start="script", propagate_positions=True, strict=strict,
                    maybe_placeholders=True, cache=False if strict else _cache_file(grammar))

    @cached_property
    def terminals(self) -> dict[str, Any]:
        return {t.name: t for t in self._lark.terminals}

    def words(self) -> tuple[str, ...]:
        return tuple(sorted(self.registry))

    # --- parsing -------------------------------------------------------------------
    def parse(self, text: str, source: str = "<script>") -> list[syntax.Statement]:
        """Parse a whole script; raise the first error as a located :class:`ScriptSyntaxError`."""
        text_n = text + "\n" if not text.endswith("\n") else text
        try:
            tree = self._lark.parse(text_n)
            _check_nesting(tree, source, self.registry)
            return _ToAst(source, self.registry).transform(tree)
        except UnexpectedInput as err:
            raise self._syntax_error(err, text_n, source) from None
        except ScriptError as err:
            raise err.with_location(err.location, text_n) from None
        except VisitError as err:
            inner = err.orig_exc
            if isinstance(inner, ScriptError):
                raise inner.with_location(inner.location, text_n) from None
            raise

    def parse_all(self, text: str, source: str = "<script>") -> tuple[list[syntax.Statement], list[ScriptError]]:
        """Parse, collecting every syntax error: after each one the offending line is blanked
        and parsing starts again, so errors on later lines are found too.  An error that no
        blanking can repair (an unclosed block, the end of the input) ends the search.  The
        statements are those of the script, none when it has an error."""
        statements, errors, _ = self.parse_recovering(text, source)
        return ([] if errors else statements), errors

    def parse_recovering(self, text: str, source: str = "<script>") \
            -> tuple[list[syntax.Statement], list[ScriptError], set[int]]:
        """As :meth:`parse_all`, also giving the statements of the lines that parse (those of the
        offending lines set aside; none when an error could not be repaired) and the numbers of
        the lines set aside: the static checks can then look at the rest."""
        errors: list[ScriptError] = []
        work = text
        blanked: set[int] = set()
        for _ in range(100):
            try:
                statements = self.parse(work, source)
                return statements, _with_text(errors, text), blanked
            except ScriptSyntaxError as err:
                errors.append(err)
                line = err.location.line if err.location else None
                if line is None or line in blanked or not err.recoverable:
                    break
                blanked.add(line)
                lines = work.split("\n")
                if line - 1 < len(lines):
                    lines[line - 1] = " " * len(lines[line - 1])
                work = "\n".join(lines)
        return [], _with_text(errors, text), blanked

    def accepts(self, text: str) -> set[str] | None:
        """The terminals the grammar accepts after ``text`` (None if ``text`` cannot start a
        valid script): the parser's error messages and the REPL's completion both use it."""
        try:
            ip = self._lark.parse_interactive(text)
            ip.exhaust_lexer()
            return set(ip.accepts())
        except UnexpectedInput:
            return None

    # --- error messages --------------------------------------------------------------
    def _describe(self, expected: set[str], statement: str | None = None) -> str:
        """``expected`` in words; ``statement``: the keyword of the statement being read, whose
        options are named where an option may come."""
        names = set(expected)
        keywords = sorted(n for n in names if n.isalpha() and n.isupper() and n.lower() in self.registry)
        if len(keywords) > 5:
            return "a statement (" + ", ".join(k.lower() for k in keywords[:6]) + ", ...)"
        words = []
        if {"INT", "VAR"} <= names and not names & {"STRING", "KEY"}:
            names -= {"INT", "VAR"}
            words.append("a rank number or $variable")
        if {"INT", "STRING", "VAR", "KEY"} <= names:
            names -= {"INT", "STRING", "VAR", "KEY", "NAME", "DURATION", "FLOAT"}
            words.append("a value")
        described = _terminal_words()
        options = self._options_of(statement) if "NAME" in names else ""
        if options:
            described["NAME"] = f"an option ({options})"
        cls = self.registry.get(statement) if statement else None
        takes = getattr(cls, "syntax", "") or ""
        for n in sorted(names):
            if n in described:
                words.append(described[n])
            else:
                term = self.terminals.get(n)
                pat = term.pattern.value if term is not None and term.pattern.type == "str" else None
                if pat in _MODES and takes and not re.search(rf"\b{pat}\b", takes):
                    continue  # a word of the shared [mode] that this statement refuses
                words.append(f"'{pat}'" if pat else n.lower())
        words = list(dict.fromkeys(words))
        if len(words) > 1 and "the end of the input" in words:
            words.remove("the end of the input")
        if {"the end of the line", "';'"} <= set(words):
            words = [w for w in words if w not in ("the end of the line", "';'")] + ["the end of the statement"]
        if len(words) <= 1:
            return words[0] if words else "something else"
        return ", ".join(words[:-1]) + " or " + words[-1]

    def _options_of(self, statement: str | None) -> str:
        """The NAME=VALUE options in a statement's syntax line, as it writes them."""
        cls = self.registry.get(statement) if statement else None
        syntax = getattr(cls, "syntax", "") or ""
        written = re.findall(r"\b[a-z_]+=[A-Za-z0-9_|.]+", syntax)
        named = {w.split("=")[0] for w in written}
        written += [f"{name}=..." for name in getattr(cls, "options_allowed", {}) if name not in named]
        return ", ".join(dict.fromkeys(written))

    def _before(self, text: str, pos: int) -> tuple[Token | None, str | None]:
        """What precedes ``pos``: the last token on its line (None after a line break), and the
        keyword of the statement ``pos`` is in (the last keyword that began one)."""
        last, keyword, starts = None, None, True
        try:
            for tok in self._lark.lex(text[:pos]):
                if starts and tok.type.lower() in self.registry:
                    keyword = tok.type.lower()
                starts = tok.type in ("_NL", "SEMICOLON", "LBRACE", "RBRACE")
                last = tok if tok.type not in ("_NL",) else None
        except UnexpectedInput:
            pass
        return last, keyword

    def _syntax_error(self, err: UnexpectedInput, text: str, source: str) -> ScriptSyntaxError:
        lines = text.splitlines() or [""]
        end = Location(len(lines), len(lines[-1]) + 1, source)
        if isinstance(err, UnexpectedEOF):
            msg = "unexpected end of input"
            if "RBRACE" in set(err.expected):
                msg = "unexpected end of input: a block opened with '{' is not closed with '}'"
            return ScriptSyntaxError(msg, end, text, recoverable=False)
        if isinstance(err, UnexpectedToken) and err.token.type == "$END":
            expected = set(err.expected)
            if "RBRACE" in expected:
                return ScriptSyntaxError("a block opened with '{' is not closed with '}'", end, text,
                                         recoverable=False)
            prev, statement = self._before(text, len(text.rstrip()))
            loc = Location(prev.end_line or 1, prev.end_column or 1, source) if prev else Location(1, 1, source)
            after = f" after '{prev}'" if prev is not None else ""
            what = self._describe(expected, statement)
            return ScriptSyntaxError(f"expected {what}{after}", loc, text, recoverable=False)

        if isinstance(err, UnexpectedToken):
            pos = err.token.start_pos or 0
            expected = set(err.expected)
            got = str(err.token) if err.token.type != "_NL" else "the end of the line"
            if err.token.type == "_NL":
                pos_line, pos_col = err.token.line or 1, err.token.column or 1
            else:
                pos_line, pos_col = err.line, err.column
        else:  # UnexpectedCharacters
            pos = err.pos_in_stream or 0
            expected = set(getattr(err, "allowed", None) or ())
            got = _word_at(text, pos)
            pos_line, pos_col = err.line, err.column
        loc = Location(pos_line, pos_col, source)
        expected = self.accepts(text[:pos]) or expected

        statement_start = sum(1 for n in expected if n.lower() in self.registry) > 5
        if statement_start:
            word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", got)
            if word:
                near = difflib.get_close_matches(word.group(0).lower(), self.words(), n=1, cutoff=0.5)
                hint = f"; did you mean '{near[0]}'?" if near else " (try 'help')"
                return ScriptSyntaxError(f"unknown statement '{word.group(0)}'{hint}", loc, text)
            return ScriptSyntaxError(f"expected a statement, got '{got}' (try 'help')", loc, text)

        prev, statement = self._before(text, pos)
        words = {t.pattern.value for n in expected
                 if (t := self.terminals.get(n)) is not None and t.pattern.type == "str"}
        if prev is not None and str(prev) in words and str(prev).isalpha() \
                and text[:prev.start_pos or 0].rstrip().endswith(","):  # the list's ',' took the word after it
            where = Location(prev.line or 1, prev.column or 1, source)
            return ScriptSyntaxError(f"expected a value after ',', got '{prev}': remove the ',' before '{prev}'",
                                     where, text)
        if prev is not None and prev.type == "VAR" and got == ".." and "RANGE" not in expected:
            return ScriptSyntaxError(f"a range is written with numbers (k=21..41), not with $variables ('{prev}..'): "
                                     "let a variable hold the whole range (let r = \"21..41\", then k=$r)", loc, text)
        after = f" after '{prev}'" if prev is not None else ""
        what = self._describe(expected, statement)
        if prev is not None and prev.type in _RANK_WORDS and {"INT", "VAR"} <= expected and "STRING" not in expected:
            what = "a rank number"
        hint = ""
        if "STRING" in expected and got.startswith("'"):
            hint = ' (text is written in double quotes: "...")'
        elif "STRING" in expected and got.startswith('"'):
            hint = " (a string that does not end: is its closing quote missing, or escaped with \\?)"
        return ScriptSyntaxError(f"expected {what}{after}, got '{got}'{hint}", loc, text)


_MODES = ("replace", "merge")  # the words of the grammar's shared 'mode' rule


def _terminal_words() -> dict[str, str]:
    names = list(syntax.namespaces())
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    return {
        "INT": "a number",
        "FLOAT": "a number with a point (0.5)",
        "MULOP": "an operator (+, -, *, / or %)",
        "STAR": "'*'",
        "COMPARE": "a comparison (>=, <=, ==, !=, > or <)",
        "VAR": "a $variable",
        "KEY": "a key such as kmers/19123890",
        "STRING": 'a quoted "string"',
        "NAME": "a name",
        "NAMESPACE": f"a namespace ({listed}) or a k-mer set (kmers.NAME)",
        "SET_OP": "an operator of sets (+, -, ~ or *)",
        "DURATION": "a duration such as 30s",
        "_NL": "the end of the line",
        "SEMICOLON": "';'",
        "$END": "the end of the input",
    }


_RANK_WORDS = {"FROM", "TO", "ON"}


def _word_at(text: str, pos: int) -> str:
    m = re.match(r"[^\s;{}#]+", text[pos:])
    return m.group(0) if m else text[pos:pos + 1]


def _check_nesting(tree: Tree[Any], source: str, registry: dict[str, type[syntax.Statement]]) -> None:
    """Refuse statements nested deeper than MAX_NESTING (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if node.data in registry:
            depth += 1
            if depth > MAX_NESTING:
                raise ScriptSyntaxError(f"statements are nested too deeply (more than {MAX_NESTING} levels)",
                                        _loc(node.meta, source), recoverable=False)
        stack.extend((c, depth) for c in node.children)


def _with_text(errors: list[ScriptError], text: str) -> list[ScriptError]:
    for e in errors:
        e.text = text if text.endswith("\n") else text + "\n"
    return errors


def default_parser() -> Parser:
    """The parser of the package's grammar and statements (built again when an item type, and
    with it a namespace, is registered)."""
    return _default_parser(syntax.namespaces())


@lru_cache(maxsize=2)
def _default_parser(_namespaces: tuple[str, ...]) -> Parser:
    return Parser()


def parse(text: str, source: str = "<script>") -> list[syntax.Statement]:
    return default_parser().parse(text, source)


def parse_all(text: str, source: str = "<script>") -> tuple[list[syntax.Statement], list[ScriptError]]:
    return default_parser().parse_all(text, source)

