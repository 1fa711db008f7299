"""Static checks that need no cluster: undefined variables, ranks outside the cluster (when its
size is known), loop bounds.  Every problem found is returned, with its location."""

from __future__ import annotations

from ..errors import ScriptError
from . import ast


def check(statements, size: int | None = None, text: str | None = None,
          defined: set[str] | None = None) -> list[ScriptError]:
    errors: list[ScriptError] = []
    _check_block(statements, set(defined or ()), size, errors)
    for e in errors:
        e.text = text
    return errors


COLLECTIVE = (ast.Load,)


def _check_block(statements, scope: set[str], size, errors, in_parallel=False) -> None:
    for st in statements:
        if in_parallel:
            for inner in ast.walk((st,)):
                if isinstance(inner, COLLECTIVE):
                    _err(errors, inner, f"'{inner.keyword}' involves every rank at once and cannot run "
                                        "inside 'parallel'")
        _check(st, scope, size, errors)


def _err(errors, st, message):
    errors.append(ScriptError(message, st.location))


def _uses(value, scope, st, errors):
    if isinstance(value, ast.Var) and value.name not in scope:
        _err(errors, st, f"undefined variable ${value.name}")
    elif isinstance(value, ast.Key) and value.is_template:
        for name in ast.KEY_VARIABLE.findall(str(value.ident)):
            if name not in scope:
                _err(errors, st, f"undefined variable ${name} in key {value}")


def _rank(value, scope, size, st, errors):
    _uses(value, scope, st, errors)
    if isinstance(value, int) and size is not None and not 0 <= value < size:
        _err(errors, st, f"rank {value} is outside the cluster: ranks are 0..{size - 1} ({size} ranks)")


def _check(st, scope: set[str], size, errors) -> None:
    for name in ("key", "value", "path", "output"):
        if hasattr(st, name):
            _uses(getattr(st, name), scope, st, errors)
    for name in ("rank", "source", "target"):
        if getattr(st, name, None) is not None:
            _rank(getattr(st, name), scope, size, st, errors)
    if isinstance(st, ast.Print):
        for v in st.values:
            _uses(v, scope, st, errors)
    if isinstance(st, (ast.Copy, ast.Move)) and st.source is not None and st.source == st.target:
        _err(errors, st, f"source and target are the same rank ({st.source})")
    if isinstance(st, ast.Let):
        scope.add(st.name)
    elif isinstance(st, ast.For):
        for bound in (st.start, st.stop):
            _uses(bound, scope, st, errors)
            if not isinstance(bound, (int, ast.Var)):
                _err(errors, st, f"a loop bound is a whole number or $variable, not '{bound}'")
        _check_block(st.body, scope | {st.name}, size, errors)
    elif isinstance(st, ast.On):
        _check_block(st.body, set(scope), size, errors)
    elif isinstance(st, ast.Parallel):
        _check_block(st.body, set(scope), size, errors, in_parallel=True)
    elif isinstance(st, ast.Explain):
        _check(st.statement, set(scope), size, errors)
