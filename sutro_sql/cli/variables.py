"""`${name}` in a `sutro-sql run` script: replaced by a --var value as a quoted SQL literal."""

from __future__ import annotations

import bisect
import re

import click

VARIABLE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


class VariableError(Exception):
    """A `${name}` in a script that cannot be substituted safely."""


def substitute_variables(script: str, variables: dict[str, str]) -> str:
    """Replace each `${name}` outside quoted strings and comments with the value as a SQL string literal.

    The value is quoted ('...', quotes doubled), so it can never change the
    statement's structure; cast it in SQL when you need a type (`${day}::DATE`).
    Positions come from DuckDB's own tokenizer. A `${name}` inside a quoted
    string is refused rather than guessed at; `${name}` in a comment is left as is.
    """
    import duckdb

    tokens = duckdb.tokenize(script)
    starts = [offset for offset, _ in tokens]
    pieces: list[str] = []
    position = 0
    for match in VARIABLE.finditer(script):
        index = _token_index(starts, match.start())
        token_type = tokens[index][1] if index >= 0 else None
        token_text = script[starts[index] : match.start()] if index >= 0 else ""
        if token_type == duckdb.token_type.comment:
            continue
        line = script.count("\n", 0, match.start()) + 1
        if token_type == duckdb.token_type.string_const or token_text.startswith('"'):
            raise VariableError(
                f"line {line}: {match.group(0)} is inside a quoted string; variables become SQL literals, "
                f"so use them outside quotes (e.g. 'prefix' || {match.group(0)}, or a table built from them)"
            )
        name = match.group(1)
        if name not in variables:
            raise VariableError(f"line {line}: no value for {match.group(0)}; pass --var {name}=VALUE")
        pieces.append(script[position : match.start()])
        pieces.append("'" + variables[name].replace("'", "''") + "'")
        position = match.end()
    pieces.append(script[position:])
    return "".join(pieces)


def _token_index(starts: list[int], offset: int) -> int:
    """Index of the token whose span contains `offset` (-1 before the first token)."""
    return bisect.bisect_right(starts, offset) - 1


def parse_variables(pairs: tuple[str, ...]) -> dict[str, str]:
    """`--var NAME=VALUE` options as a mapping; a malformed one is a usage error."""
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--var")
        variables[name.strip()] = value
    return variables
