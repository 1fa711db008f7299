"""The interactive shell on rank 0 (prompt_toolkit).

It owns input and display only: every statement goes through the same ``Cluster`` API as
scripts and embedding.  While the prompt waits for the user no order is in flight: every order
comes from rank 0 or from a block rank 0 delegated and waited for, so no rank needs rank 0 to
serve it until the next statement is entered (the other ranks keep serving in their loops).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_toolkit import PromptSession
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.layout.processors import Processor, Transformation, TransformationInput
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.output import Output
from prompt_toolkit.shortcuts import print_formatted_text
from prompt_toolkit.styles import Style, merge_styles, style_from_pygments_cls
from pygments.styles import get_style_by_name

from .. import __version__
from ..errors import Cancelled, RankFailure, RayScriptError
from ..language.help import entries
from ..language.syntax import namespaces
from .completer import META_COMMANDS, RayCompleter
from .lexer import RayLexer
from .lines import balance

if TYPE_CHECKING:
    from ..cluster import Cluster
    from ..results import Result

STYLE = merge_styles([
    style_from_pygments_cls(get_style_by_name("monokai")),
    Style.from_dict({"hint": "#777777 italic", "error": "#ff5f5f", "header": "bold #5fafff",
                     "timing": "#888888", "banner": "#87af87"}),
])
# statements that make, rename or remove sets: after one, the completion asks the ranks for them again
# (not after every put, copy or move: a set made by those alone is completed once another of these ran)
_CHANGES_SETS = re.compile(r"\b(?:load|combine|rename|drop|restore)\b")
_KEY_RE = re.compile(r"\b(?:kmers|paths|results)/[A-Za-z0-9_.\-]+")


def history_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "rayscript" / "history"


class HintProcessor(Processor):
    """Shows a statement's shape in grey after its first word (as redis-cli does)."""

    def apply_transformation(self, ti: TransformationInput) -> Transformation:
        text = ti.document.text
        m = re.fullmatch(r"\s*([a-z]+)(\s*)", text)
        table = entries()
        if ti.lineno == ti.document.line_count - 1 and m and m.group(1) in table:
            syntax = table[m.group(1)][0]
            rest = syntax.split(" ", 1)[1] if " " in syntax else ""
            if rest:
                return Transformation([*ti.fragments, ("class:hint", ("" if m.group(2) else " ") + rest)])
        return Transformation(ti.fragments)


class Shell:
    def __init__(self, cluster: Cluster, input: Input | None = None, output: Output | None = None,
                 history: History | None = None) -> None:
        self.cluster = cluster
        self.timing = False
        self.keys: list[str] = []
        self.sets: list[str] = []  # k-mer sets named in statements and results, for completion
        self.completer = RayCompleter(cluster.size, cluster.scope.env, self.keys, self.sets)
        if history is None:
            path = history_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                history = FileHistory(str(path))
            except OSError:
                history = InMemoryHistory()
        self.session: PromptSession[str] = PromptSession(
            message=f"ray[{cluster.size}]> ", history=history, completer=self.completer,
            lexer=PygmentsLexer(RayLexer), style=STYLE, multiline=Condition(self._open_block),
            prompt_continuation=lambda width, line, wrap: "." * (width - 2) + "> ",
            input_processors=[HintProcessor()], complete_while_typing=False, enable_history_search=False,
            input=input, output=output, include_default_pygments_style=False, bottom_toolbar=self.toolbar)
        self.output = output
        self.prompt_mode = contextlib.nullcontext  # how the terminal is set while the prompt waits
        # where Ctrl-C comes from while a statement runs, if not SIGINT
        self.interrupt_source: Callable[[], bool] | None = None

    def toolbar(self) -> str | None:
        """The toolbar under the prompt: how the last long statement went (its progress while it
        ran is drawn on the same line, see rayscript.progress); none before any."""
        summary = getattr(self.cluster.node.progress, "summary", "")
        return f" {summary} " if summary else None

    def _open_block(self) -> bool:
        return balance(self.session.default_buffer.text) > 0

    def say(self, fragments: list[tuple[str, str]]) -> None:
        print_formatted_text(FormattedText(fragments), style=STYLE, output=self.output)

    def banner(self) -> None:
        (res,) = self.cluster.run("ranks")
        hosts = sorted({row["host"] for row in res.data})
        columns = [ns for ns in res.data[0] if ns not in ("rank", "host", "bytes")] if res.data else namespaces()
        held = {ns: sum(row.get(ns, 0) for row in res.data) for ns in columns}
        self.sets[:] = [ns for ns in columns if ns.startswith("kmers.")]
        store = ", ".join(f"{n:,} {ns}" for ns, n in held.items())
        n = self.cluster.size
        self.say([("class:banner", f"rayscript {__version__}: {n} rank{'s' if n != 1 else ''} on "
                                   f"{len(hosts)} host{'s' if len(hosts) > 1 else ''} ({', '.join(hosts)}); "
                                   f"store: {store}; 'help' lists the statements, Ctrl-D leaves")])

    def show(self, result: Result) -> None:
        lines = result.text.splitlines()
        fragments = []
        for i, line in enumerate(lines):
            is_header = i + 1 < len(lines) and lines[i + 1].strip() and set(lines[i + 1]) <= {"-", " "}
            fragments.append(("class:header" if is_header else "", line + "\n"))
        print_formatted_text(FormattedText(fragments), style=STYLE, output=self.output, end="")
        self.keys.extend(k for k in _KEY_RE.findall(result.text) if k not in self.keys[-50:])
        del self.keys[:-200]

    def refresh_sets(self) -> None:
        """The k-mer sets the store holds now, for completion (asked of the ranks)."""
        try:
            (res,) = self.cluster.run("sets")
        except RayScriptError:
            return
        self.sets[:] = [row["name"] for row in res.data if row["name"] != "kmers"]

    def meta(self, line: str) -> bool:
        """Meta commands; returns False when the line is not one."""
        words = line.split()
        if not words or not words[0].startswith(":"):
            return False
        cmd, args = words[0], words[1:]
        if cmd == ":timing" and args in (["on"], ["off"]):
            self.timing = args == ["on"]
            self.say([("", f"timing is {args[0]}")])
        elif cmd == ":vars":
            env = self.cluster.scope.env
            for name, value in env.items():
                self.say([("", f"${name} = {value!r}")])
            if not env:
                self.say([("", "no variables yet (let NAME = VALUE)")])
        elif cmd == ":source" and len(args) == 1:
            try:
                text = Path(args[0]).read_text(encoding="utf-8")
            except OSError as exc:
                self.say([("class:error", f"error: cannot read {args[0]}: {exc.strerror}")])
                return True
            self.execute(text, args[0])
        else:
            known = ", ".join(f"{c} {d.split(':')[0]}" for c, d in META_COMMANDS.items() if c.startswith(":"))
            if cmd in META_COMMANDS:  # a known one, used wrongly
                usage = META_COMMANDS[cmd].split(":")[0]
                problem = (f"{cmd} takes {usage.split(' ', 1)[0].replace('|', ' or ')}" if cmd != ":vars"
                           else f"{cmd} takes nothing")
                if cmd == ":timing":
                    problem += f" (it is {'on' if self.timing else 'off'} now)"
                self.say([("class:error", f"error: {problem}")])
            else:
                self.say([("class:error", f"error: unknown meta command {line.strip()!r} (meta commands: {known})")])
        return True

    def execute(self, text: str, source: str = "<stdin>") -> None:
        started = time.perf_counter()
        try:
            with self.cluster.node.interrupts.read_by(self.interrupt_source):
                self._run(text, source)
        except RankFailure:
            raise
        except Cancelled as exc:
            self.say([("class:error", f"^C {exc}")])
        except RayScriptError as exc:
            self.say([("class:error", str(exc))])
        if self.timing:
            self.say([("class:timing", f"({(time.perf_counter() - started) * 1e3:.1f} ms)")])

    def _run(self, text: str, source: str) -> None:
        for results in self.cluster.stream(text, source):
            for r in results:
                if r.text:
                    self.show(r)
        if _CHANGES_SETS.search(text):
            self.refresh_sets()

    def loop(self) -> int:
        self.banner()
        while True:
            try:
                with self.prompt_mode():
                    text = self.session.prompt()
            except KeyboardInterrupt:
                continue  # a fresh prompt
            except EOFError:
                break
            stripped = text.strip()
            if stripped in ("exit", "quit"):
                break
            if not stripped or self.meta(stripped):
                continue
            self.execute(text)
        return 0


def run_shell(cluster: Cluster) -> int:
    return Shell(cluster).loop()


__all__ = ["Shell", "run_shell"]
