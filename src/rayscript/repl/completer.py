"""Completion for the REPL: what the grammar accepts at the cursor, and the words that fit there.

The candidates come from lark's interactive parser fed with the text before the word being
typed: statement words at the start, keywords the statement allows next, ranks and variables
where a rank fits, namespaces and recently seen keys where a key fits, option names, file paths
inside a quoted string.  Works on a prompt_toolkit ``Document``: no terminal needed to test it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from ..language import syntax
from ..language.help import entries
from ..statements import default_parser

META_COMMANDS = {":timing": "on|off: time every statement", ":source": "FILE.ray: run a script",
                 ":vars": "list the variables", "exit": "leave (Ctrl-D)"}
_WORD = re.compile(r"[^\s;{}]*$")
_RANK_WORDS = {"from", "to", "on"}


def _statement_text(text: str) -> str:
    """The text of the statement being typed (after the last ';', newline or '{')."""
    cut = max(text.rfind(";"), text.rfind("\n"), text.rfind("{"), text.rfind("}"))
    return text[cut + 1:]


# statements that name files: a quote is offered where a string may come
_WRITE_OR_READ = ("load", "dump", "histogram", "query", "save", "restore", "compare", "matrix", "count")


class RayCompleter(Completer):
    def __init__(self, size: int = 1, variables: dict[str, Any] | None = None, keys: list[str] | None = None,
                 sets: list[str] | None = None) -> None:
        self.size = size
        self.variables = variables if variables is not None else {}
        self.keys = keys if keys is not None else []  # recently seen keys, newest last
        self.sets = sets if sets is not None else []  # k-mer sets seen (kmers.NAME), newest last
        self.paths = PathCompleter(expanduser=True)

    def accepts(self, before: str) -> set[str]:
        return default_parser().accepts(before) or set()

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        found = _WORD.search(text)
        word = found.group(0) if found else ""
        stmt = _statement_text(text[: len(text) - len(word)])
        if word.startswith('"'):
            yield from self._paths(word)
            return
        if not stmt.strip() and not text[: len(text) - len(word)].rstrip().endswith(":"):
            starts = [(w, h[0]) for w, h in entries().items()]
            if not text[: len(text) - len(word)].strip():
                starts += list(META_COMMANDS.items())
            yield from self._offer(word, starts)
            return
        accepts = self.accepts(text[: len(text) - len(word)])
        previous = stmt.split()[-1] if stmt.split() else ""
        first = stmt.split()[0] if stmt.split() else ""
        candidates: list[tuple[str, str]] = []
        parser = default_parser()
        terms = parser.terminals
        for name in sorted(accepts):
            term = terms.get(name)
            if term is not None and term.pattern.type == "str" and term.pattern.value.isalpha():
                candidates.append((term.pattern.value, "keyword"))
        if "INT" in accepts and (previous in _RANK_WORDS or ("VAR" in accepts and "KEY" not in accepts)):
            candidates += [(str(r), "rank") for r in range(self.size)]
        if "VAR" in accepts or word.startswith("$"):
            candidates += [(f"${v}", f"= {val!r}") for v, val in self.variables.items()]
        named = list(dict.fromkeys(reversed(self.sets)))
        if "KEY" in accepts:
            candidates += [(f"{ns}/", "namespace") for ns in syntax.namespaces()]
            candidates += [(f"{ns}/", "k-mer set") for ns in named]
            candidates += [(k, "seen") for k in reversed(self.keys)]
        if "NAMESPACE" in accepts:
            candidates += [(ns, "namespace") for ns in syntax.namespaces()]
            candidates += [(ns, "k-mer set") for ns in named]
        statement = parser.registry.get(first)
        if "NAME" in accepts and statement is not None:
            candidates += [(f"{opt}=", str(takes)) for opt, takes in statement.options_allowed.items()]
        if "NAME" in accepts and first == "help":
            candidates += [(w, h[0]) for w, h in entries().items()]
        if "STRING" in accepts and first in _WRITE_OR_READ:
            candidates.append(('"', "a file path"))
        yield from self._offer(word, list(dict.fromkeys(candidates)))

    def _offer(self, word: str, candidates: list[tuple[str, str]]) -> Iterator[Completion]:
        seen = set()
        for text, meta in candidates:
            if text.startswith(word) and text not in seen:
                seen.add(text)
                yield Completion(text, start_position=-len(word), display_meta=meta)

    def _paths(self, word: str) -> Iterator[Completion]:
        inner = word[1:]
        for c in self.paths.get_completions(Document(inner, len(inner)), CompleteEvent()):
            full = inner[: len(inner) + c.start_position] + c.text
            suffix = "" if os.path.isdir(os.path.expanduser(full)) else '"'
            yield Completion('"' + full + suffix, start_position=-len(word), display=c.display)
