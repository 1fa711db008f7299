"""Parse .ray text into statement nodes.

The grammar (``grammar/ray.lark``, shipped inside the package) is loaded once, lazily, into a
LALR parser.  Lark's exceptions never escape: every problem becomes a
:class:`~rayscript.errors.ScriptSyntaxError` with file:line:column, the line, a caret and a
sentence saying what was expected.
"""

from __future__ import annotations

import difflib
import re
from functools import cache, lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..errors import Location, ScriptError, ScriptSyntaxError
from . import ast

MAX_K = 31

# Options each statement accepts, with the kind of value expected.
STATEMENT_OPTIONS = {
    "put": {"count": "a number", "edges": "a number"},
    "load": {"k": "a number", "canonical": "true or false"},
    "dump": {"min": "a number", "max": "a number"},
    "walk": {"length": "a number"},
    "search": {"depth": "a number"},
}

_NAME_PART = r"(?:\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9_.\-])"
_IDENT_RE = re.compile(rf"{_NAME_PART}+")
_PATTERN_RE = re.compile(r"[ACGTacgt]*\*")
_BASES_RE = re.compile(r"[ACGTacgt]+")


@lru_cache(maxsize=2)
def _lark(strict: bool = False) -> Lark:
    """The parser, built once.  ``strict`` (no terminal collisions, no LALR conflicts) is
    checked by the test suite; it triples the build time, so the runtime parser skips it."""
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, strict=strict, maybe_placeholders=False)


def grammar_text() -> str:
    return resources.files("rayscript").joinpath("grammar/ray.lark").read_text(encoding="utf-8")


def _loc(meta_or_token, source: str) -> Location:
    return Location(meta_or_token.line, meta_or_token.column, source)


class _ToAst(Transformer):
    """Turns lark's parse tree into :mod:`rayscript.language.ast` nodes."""

    def __init__(self, source: str):
        super().__init__(visit_tokens=True)
        self.source = source

    # --- values ---------------------------------------------------------
    def _fail(self, message, tok):
        raise ScriptSyntaxError(message, _loc(tok, self.source))

    def INT(self, tok):
        return tok

    def rank_int(self, children):
        tok = children[0]
        value = int(tok)
        if value < 0:
            self._fail(f"a rank is a number from 0 up, not {value}", tok)
        return value

    def rank_var(self, children):
        return _var(children[0])

    def int_value(self, children):
        return int(children[0])

    def str_value(self, children):
        raw = str(children[0])[1:-1]
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), raw)

    def var_value(self, children):
        return _var(children[0])

    def word_value(self, children):
        return ast.Word(str(children[0]))

    def duration_value(self, children):
        text = str(children[0])
        m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)", text)
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]
        return ast.Duration(float(m.group(1)) * scale, text)

    def key_value(self, children):
        return self._key(children[0])

    def key(self, children):
        return self._key(children[0])

    def _single(self, key, word, meta):
        if isinstance(key, ast.Selector):
            raise ScriptSyntaxError(f"'{word}' takes one key, not the pattern {key}", _loc(meta, self.source))
        return key

    def where(self, children):
        namespace, name, op, value = children
        if str(namespace) != "kmers":
            self._fail(f"conditions select k-mers ('kmers where count >= 10'), not {namespace}", namespace)
        if str(name) != "count":
            self._fail(f"k-mers can be selected by 'count', not '{name}'", name)
        return ast.Selector(str(namespace), field="count", op=str(op), value=value)

    def _key(self, tok):
        try:
            return make_key(str(tok))
        except ScriptSyntaxError as err:
            raise ScriptSyntaxError(err.message, _loc(tok, self.source)) from None

    def mode(self, children):
        return str(children[0])

    def option(self, children):
        name, value = children
        return (str(name), value, name)

    def string_list(self, children):
        return tuple(children)

    def block(self, children):
        return tuple(children)

    def start(self, children):
        return list(children)

    # --- statements -----------------------------------------------------
    def _options(self, word, options):
        allowed = STATEMENT_OPTIONS.get(word, {})
        seen = {}
        for name, value, tok in options:
            if name not in allowed:
                choices = ", ".join(f"{n}=" for n in allowed) or "none"
                near = difflib.get_close_matches(name, list(allowed), n=1)
                hint = f"; did you mean '{near[0]}='?" if near else ""
                self._fail(f"'{word}' has no option '{name}=' (options: {choices}){hint}", tok)
            if name in seen:
                self._fail(f"option '{name}=' given twice", tok)
            seen[name] = value
        return tuple(sorted(seen.items()))

    @v_args(meta=True)
    def put(self, meta, children):
        key, *rest = children
        rank = rest[-1]
        key = self._single(key, "put", meta)
        return ast.Put(key, rank, self._options("put", rest[:-1]), meta=_loc(meta, self.source))

    @v_args(meta=True)
    def get(self, meta, children):
        key = self._single(children[0], "get", meta)
        return ast.Get(key, children[1] if len(children) > 1 else None, meta=_loc(meta, self.source))

    def _transfer(self, cls, meta, children):
        key, *rest = children
        mode = rest.pop() if rest and isinstance(rest[-1], str) and rest[-1] in ("replace", "merge") else None
        source, target = (rest[0], rest[1]) if len(rest) == 2 else (None, rest[0])
        return cls(key, source, target, mode, meta=_loc(meta, self.source))

    @v_args(meta=True)
    def copy(self, meta, children):
        return self._transfer(ast.Copy, meta, children)

    @v_args(meta=True)
    def move(self, meta, children):
        return self._transfer(ast.Move, meta, children)

    @v_args(meta=True)
    def delete(self, meta, children):
        return ast.Delete(children[0], children[1], meta=_loc(meta, self.source))

    @v_args(meta=True)
    def locate(self, meta, children):
        return ast.Locate(self._single(children[0], "locate", meta), meta=_loc(meta, self.source))

    @v_args(meta=True)
    def on(self, meta, children):
        rank, body = children
        if not isinstance(body, tuple):
            body = (body,)
        return ast.On(rank, body, meta=_loc(meta, self.source))

    @v_args(meta=True)
    def parallel(self, meta, children):
        return ast.Parallel(children[0], meta=_loc(meta, self.source))

    @v_args(meta=True)
    def let(self, meta, children):
        return ast.Let(str(children[0]), children[1], meta=_loc(meta, self.source))

    @v_args(meta=True)
    def set(self, meta, children):
        name, value = children
        if str(name) != "timeout":
            self._fail(f"unknown setting '{name}' (settings: timeout)", name)
        if not isinstance(value, (ast.Duration, int, ast.Var)):
            self._fail("expected a duration such as 30s or 500ms after 'timeout'", name)
        return ast.Set(str(name), value, meta=_loc(meta, self.source))

    @v_args(meta=True)
    def for_(self, meta, children):
        name, start, stop, body = children
        return ast.For(str(name), start, stop, body, meta=_loc(meta, self.source))

    @v_args(meta=True)
    def ranks(self, meta, children):
        return ast.Ranks(meta=_loc(meta, self.source))

    @v_args(meta=True)
    def explain(self, meta, children):
        return ast.Explain(children[0], meta=_loc(meta, self.source))

    @v_args(meta=True)
    def print(self, meta, children):
        return ast.Print(tuple(children), meta=_loc(meta, self.source))

    @v_args(meta=True)
    def help(self, meta, children):
        topic = str(children[0]) if children else None
        if topic is not None and topic not in ast.STATEMENT_CLASSES:
            near = difflib.get_close_matches(topic, ast.STATEMENT_WORDS, n=1)
            hint = f"; did you mean 'help {near[0]}'?" if near else ""
            self._fail(f"no help on '{topic}'{hint}", children[0])
        return ast.Help(topic, meta=_loc(meta, self.source))

    @v_args(meta=True)
    def load(self, meta, children):
        paths, namespace, *options = children
        opts = self._options("load", options)
        return ast.Load(paths, str(namespace), opts, meta=_loc(meta, self.source))

    @v_args(meta=True)
    def count(self, meta, children):
        return ast.Count(str(children[0]), meta=_loc(meta, self.source))

    @v_args(meta=True)
    def histogram(self, meta, children):
        return ast.Histogram(str(children[0]), children[1] if len(children) > 1 else None,
                             meta=_loc(meta, self.source))

    @v_args(meta=True)
    def dump(self, meta, children):
        what, path, *options = children
        selector = what if isinstance(what, ast.Selector) else None
        if isinstance(what, ast.Key):
            raise ScriptSyntaxError(f"'dump' writes many k-mers: use kmers, kmers/* or kmers/ACG*, not {what}",
                                    _loc(meta, self.source))
        return ast.Dump("kmers", path, self._options("dump", options), selector, meta=_loc(meta, self.source))

    @v_args(meta=True)
    def walk(self, meta, children):
        start, *rest = children
        into = rest.pop()
        both = bool(rest) and isinstance(rest[0], Token) and rest[0].type == "WALK_BOTH"
        if both:
            rest = rest[1:]
        start = self._single(start, "walk", meta)
        self._into(into, "paths", "walk", meta)
        return ast.Walk(start, into, both, self._options("walk", rest), meta=_loc(meta, self.source))

    @v_args(meta=True)
    def search(self, meta, children):
        start, *rest = children
        into = rest.pop()
        start = self._single(start, "search", meta)
        self._into(into, "results", "search", meta)
        return ast.Search(start, into, self._options("search", rest), meta=_loc(meta, self.source))

    def _into(self, key, namespace, word, meta):
        if not isinstance(key, ast.Key) or key.namespace != namespace:
            raise ScriptSyntaxError(f"'{word}' stores its result under {namespace}/NAME, not {key}",
                                    _loc(meta, self.source))

    @v_args(meta=True)
    def replicate(self, meta, children):
        key, copies = children
        return ast.Replicate(self._single(key, "replicate", meta), copies, meta=_loc(meta, self.source))

    @v_args(meta=True)
    def save(self, meta, children):
        return ast.Save(children[0], meta=_loc(meta, self.source))

    @v_args(meta=True)
    def restore(self, meta, children):
        return ast.Restore(children[0], meta=_loc(meta, self.source))

    @v_args(meta=True)
    def rebalance(self, meta, children):
        return ast.Rebalance(str(children[0]), meta=_loc(meta, self.source))

    @v_args(meta=True)
    def query(self, meta, children):
        path, namespace, *rest = children
        return ast.Query(path, str(namespace), rest[0] if rest else None, meta=_loc(meta, self.source))


# lark names the rule 'for' as 'for'; a Python method cannot be called that.
setattr(_ToAst, "for", _ToAst.for_)


def make_key(text: str) -> ast.Key:
    """Validate ``NAMESPACE/ID`` text (also after ``$var`` substitution at run time)."""
    namespace, _, ident = text.partition("/")
    if namespace not in ast.NAMESPACES:
        near = difflib.get_close_matches(namespace, ast.NAMESPACES, n=1)
        hint = f"; did you mean '{near[0]}/'?" if near else ""
        raise ScriptSyntaxError(f"unknown namespace '{namespace}/' (expected kmers/, paths/ or results/){hint}")
    if not ident:
        raise ScriptSyntaxError(f"expected an id after '{namespace}/', such as {namespace}/{_example(namespace)}")
    if ident.endswith("*"):
        if namespace != "kmers":
            raise ScriptSyntaxError(f"patterns select k-mers (kmers/* or kmers/ACG*), not {namespace}/ items")
        if not _PATTERN_RE.fullmatch(ident) or len(ident) - 1 > MAX_K:
            raise ScriptSyntaxError(f"'{ident}' is not a k-mer pattern: use kmers/* or a base prefix like kmers/ACG*")
        return ast.Selector(namespace, prefix=ident[:-1].upper())
    if not _IDENT_RE.fullmatch(ident):
        raise ScriptSyntaxError(f"'{ident}' is not a valid id in {namespace}/ "
                                "(letters, digits, '_', '.', '-' or $variables)")
    if "$" in ident:
        return ast.Key(namespace, ident)
    if namespace == "kmers":
        if ident.isdigit():
            value = int(ident)
            if value >= 1 << (2 * MAX_K):
                raise ScriptSyntaxError(f"k-mer id {value} is too large for k <= {MAX_K} (ids are below 4**{MAX_K})")
            return ast.Key(namespace, value)
        if _BASES_RE.fullmatch(ident):
            if len(ident) > MAX_K:
                raise ScriptSyntaxError(f"a k-mer has at most {MAX_K} bases, '{ident}' has {len(ident)}")
            return ast.Key(namespace, ident.upper())
        raise ScriptSyntaxError("a k-mer id is a number (kmers/19123890) or bases A, C, G, T (kmers/ACGT), "
                                f"not '{ident}'")
    return ast.Key(namespace, ident)


def _var(tok) -> ast.Var:
    text = str(tok)
    return ast.Var(text[2:-1] if text.startswith("${") else text[1:])


def _example(namespace):
    return {"kmers": "19123890", "paths": "p1", "results": "r1"}.get(namespace, "x")


# --- error messages ------------------------------------------------------

_TERMINAL_WORDS = {
    "INT": "a number",
    "VAR": "a $variable",
    "KEY": "a key such as kmers/19123890",
    "STRING": 'a quoted "string"',
    "NAME": "a name",
    "NAMESPACE": "a namespace (kmers, paths or results)",
    "DURATION": "a duration such as 30s",
    "_NL": "the end of the line",
    "SEMICOLON": "';'",
    "$END": "the end of the input",
}
_RANK_WORDS = {"FROM", "TO", "ON"}


def _describe(expected: set[str]) -> str:
    names = set(expected)
    keywords = sorted(n for n in names if n.isalpha() and n.isupper() and n.lower() in ast.STATEMENT_CLASSES)
    if len(keywords) > 5:
        return "a statement (" + ", ".join(k.lower() for k in keywords[:6]) + ", ...)"
    words = []
    if {"INT", "VAR"} <= names and not names & {"STRING", "KEY"}:
        names -= {"INT", "VAR"}
        words.append("a rank number or $variable")
    if {"INT", "STRING", "VAR", "KEY"} <= names:
        names -= {"INT", "STRING", "VAR", "KEY", "NAME", "DURATION"}
        words.append("a value")
    for n in sorted(names):
        if n in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[n])
        else:
            pat = _terminal_text(n)
            words.append(f"'{pat}'" if pat else n.lower())
    words = list(dict.fromkeys(words))
    if len(words) > 1 and "the end of the input" in words:
        words.remove("the end of the input")
    if {"the end of the line", "';'"} <= set(words):
        words = [w for w in words if w not in ("the end of the line", "';'")] + ["the end of the statement"]
    if len(words) <= 1:
        return words[0] if words else "something else"
    return ", ".join(words[:-1]) + " or " + words[-1]


@cache
def _terminal_text(name: str) -> str | None:
    for term in _lark().terminals:
        if term.name == name and term.pattern.type == "str":
            return term.pattern.value
    return None


def _previous_token(text: str, pos: int) -> Token | None:
    last = None
    try:
        for tok in _lark().lex(text[:pos]):
            last = tok if tok.type not in ("_NL",) else None
    except UnexpectedInput:
        pass
    return last


def _accepts(text: str, pos: int) -> set[str] | None:
    """The terminals the parser accepts at ``pos`` (exact, unlike the lexer's guess)."""
    try:
        ip = _lark().parse_interactive(text[:pos])
        ip.exhaust_lexer()
        return set(ip.accepts())
    except UnexpectedInput:
        return None


def _word_at(text: str, pos: int) -> str:
    m = re.match(r"[^\s;{}#]+", text[pos:])
    return m.group(0) if m else text[pos:pos + 1]


def _syntax_error(err: UnexpectedInput, text: str, source: str) -> ScriptSyntaxError:
    if isinstance(err, UnexpectedEOF):
        lines = text.splitlines() or [""]
        loc = Location(len(lines), len(lines[-1]) + 1, source)
        expected = set(err.expected)
        msg = "unexpected end of input"
        if "RBRACE" in expected:
            msg = "unexpected end of input: a block opened with '{' is not closed with '}'"
        return ScriptSyntaxError(msg, loc, text)
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        lines = text.splitlines() or [""]
        expected = set(err.expected)
        if "RBRACE" in expected:
            loc = Location(len(lines), len(lines[-1]) + 1, source)
            return ScriptSyntaxError("a block opened with '{' is not closed with '}'", loc, text)
        pos = len(text.rstrip())
        prev = _previous_token(text, pos)
        loc = Location(prev.end_line, prev.end_column, source) if prev else Location(1, 1, source)
        after = f" after '{prev}'" if prev is not None else ""
        return ScriptSyntaxError(f"expected {_describe(expected)}{after}", loc, text)

    if isinstance(err, UnexpectedToken):
        pos = err.token.start_pos
        expected = set(err.expected)
        got = str(err.token) if err.token.type != "_NL" else "the end of the line"
        if err.token.type == "_NL":
            pos_line, pos_col = err.token.line, err.token.column
        else:
            pos_line, pos_col = err.line, err.column
    else:  # UnexpectedCharacters
        pos = err.pos_in_stream
        expected = set(err.allowed or ())
        got = _word_at(text, pos)
        pos_line, pos_col = err.line, err.column
    loc = Location(pos_line, pos_col, source)
    expected = _accepts(text, pos) or expected

    statement_start = sum(1 for n in expected if n.lower() in ast.STATEMENT_CLASSES) > 5
    if statement_start:
        word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", got)
        if word:
            near = difflib.get_close_matches(word.group(0).lower(), ast.STATEMENT_WORDS, n=1, cutoff=0.5)
            hint = f"; did you mean '{near[0]}'?" if near else " (try 'help')"
            return ScriptSyntaxError(f"unknown statement '{word.group(0)}'{hint}", loc, text)
        return ScriptSyntaxError(f"expected a statement, got '{got}' (try 'help')", loc, text)

    prev = _previous_token(text, pos)
    after = f" after '{prev}'" if prev is not None else ""
    what = _describe(expected)
    if prev is not None and prev.type in _RANK_WORDS and {"INT", "VAR"} <= expected:
        what = "a rank number"
    return ScriptSyntaxError(f"expected {what}{after}, got '{got}'", loc, text)


def parse(text: str, source: str = "<script>") -> list[ast.Statement]:
    """Parse a whole script; raise the first error as a located :class:`ScriptSyntaxError`."""
    text_n = text + "\n" if not text.endswith("\n") else text
    try:
        tree = _lark().parse(text_n)
        return _ToAst(source).transform(tree)
    except UnexpectedInput as err:
        raise _syntax_error(err, text_n, source) from None
    except VisitError as err:
        inner = err.orig_exc
        if isinstance(inner, ScriptError):
            raise inner.with_location(inner.location, text_n) from None
        raise


def parse_all(text: str, source: str = "<script>") -> tuple[list[ast.Statement], list[ScriptError]]:
    """Parse, collecting every syntax error: after each one the offending line is blanked
    and parsing starts again, so errors on later lines are found too."""
    errors: list[ScriptError] = []
    work = text
    blanked: set[int] = set()
    for _ in range(100):
        try:
            statements = parse(work, source)
            return ([] if errors else statements), _with_text(errors, text)
        except ScriptSyntaxError as err:
            errors.append(err)
            line = err.location.line if err.location else None
            if line is None or line in blanked or "end of input" in err.message or "not closed" in err.message:
                break
            blanked.add(line)
            lines = work.split("\n")
            if line - 1 < len(lines):
                lines[line - 1] = " " * len(lines[line - 1])
            work = "\n".join(lines)
    return [], _with_text(errors, text)


def _with_text(errors, text):
    for e in errors:
        e.text = text if text.endswith("\n") else text + "\n"
    return errors
