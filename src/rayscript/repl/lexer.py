"""One lexer for the .ray language, built from the terminals of grammar/ray.lark.

It is a Pygments lexer (usable for docs and ``.ray`` files: ``RayLexer``) and, wrapped in
prompt_toolkit's ``PygmentsLexer``, highlights statements as they are typed in the REPL.
"""

from __future__ import annotations

import re

from pygments.lexer import RegexLexer
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace, _TokenType

from ..statements import default_parser

# token type of each named terminal of the grammar
TERMINAL_TOKENS = {
    "COMMENT": Comment.Single,
    "STRING": String.Double,
    "KEY": Name.Variable.Instance,
    "VAR": Name.Variable,
    "DURATION": Number,
    "NAMESPACE": Name.Namespace,
    "INT": Number.Integer,
    "COMPARE": Operator,
    "NAME": Name,
}
_ORDER = ["COMMENT", "STRING", "KEY", "VAR", "DURATION", "NAMESPACE", "COMPARE"]


def _rules() -> list[tuple[str, _TokenType]]:
    terms = default_parser().terminals
    rules: list[tuple[str, _TokenType]] = [(r"[ \t\f]+", Whitespace), (r"\n", Text)]
    for name in _ORDER:
        rules.append((terms[name].pattern.to_regexp(), TERMINAL_TOKENS[name]))
    words = sorted((t.pattern.value for t in terms.values()
                    if t.pattern.type == "str" and t.pattern.value.isalpha()), key=len, reverse=True)
    rules.append((r"\b(" + "|".join(map(re.escape, words)) + r")\b", Keyword))
    rules.append((terms["INT"].pattern.to_regexp(), TERMINAL_TOKENS["INT"]))
    rules.append((terms["NAME"].pattern.to_regexp(), TERMINAL_TOKENS["NAME"]))
    rules.append((r"\.\.|[=,:;]", Operator))
    rules.append((r"[{}]", Punctuation))
    rules.append((r".", Text))
    return rules


class RayLexer(RegexLexer):
    name = "rayscript"
    aliases = ["ray", "rayscript"]
    filenames = ["*.ray"]
    tokens = {"root": _rules()}
