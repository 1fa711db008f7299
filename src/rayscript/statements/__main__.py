"""``python -m rayscript.statements > docs/language.md``: the language reference, from the
statements' own help entries."""

from ..language.help import language_markdown
from . import parse  # noqa: F401 - importing the package fills the registry

print(language_markdown(), end="")  # noqa: T201
