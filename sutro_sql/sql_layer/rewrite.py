"""sqlglot over the SQL surface: refuse what is not a read query, and find the calls to rewrite.

Small pure tree functions, each doing one thing: `validate_read_query` (the query given
to `sutro_batch`), `sutro_calls` + `literal_function_name` (find calls, insist on a
string-literal Function name), `inner_queries` + `with_batch_sources` (find the
queries of `sutro_batch` calls, then put the files their rows were written to in
their place), and `liftable_calls` + `with_lifted_answers` (which `sutro_run` calls
the `auto_batch` lift may turn into one batch job, then the lookups replacing them).
Nothing here runs a query: `query.py` runs things between the finding and the
substituting, as sqlglot's optimizer rules never interleave the two.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from ..answers import ANSWER_SQL_TYPE
from ..errors import QueryError

#: A bare (optionally qualified) table or view name: `sutro_batch('fn', 'leads')`.
TABLE_NAME = re.compile(r'^\s*(?:[A-Za-z_][\w$]*|"[^"]+")(?:\s*\.\s*(?:[A-Za-z_][\w$]*|"[^"]+")){0,2}\s*;?\s*$')

#: Nodes that write, change the catalog or the session: never allowed inside a sutro_batch query.
WRITE_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Insert Update Delete Merge Create Drop Alter Copy Attach Detach Command Set Pragma Use Install "
        "TruncateTable Export Transaction Commit Rollback LoadData Analyze"
    ).split()
    if hasattr(exp, name)
)
SUTRO_FUNCTIONS = ("sutro_run", "sutro_batch")


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot warns when it falls back to a raw Command; we refuse those ourselves."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def parse(query: str) -> list[exp.Expression]:
    """Parse DuckDB SQL; a ParseError is left to the caller."""
    with _quiet_sqlglot():
        return [statement for statement in sqlglot.parse(query, read="duckdb") if statement is not None]


def validate_read_query(query: str | None) -> str:
    """The SQL to run for `sutro_batch`'s query argument, or a QueryError saying why not.

    A table or view name reads the whole table; anything else must parse as exactly
    one read query (SELECT / WITH / UNION / VALUES ...) with no DDL, DML, ATTACH,
    COPY, PRAGMA or SET anywhere in it."""
    if query is None or not query.strip().rstrip(";").strip():
        raise QueryError("sutro_batch: the query is empty; pass a SELECT or a table name")
    if TABLE_NAME.match(query):
        return f"SELECT * FROM {query.strip().rstrip(';').strip()}"
    try:
        statements = parse(query)
    except ParseError as exc:
        raise QueryError(f"sutro_batch: cannot parse the query: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryError(f"sutro_batch runs a single read query, got {len(statements)} statements")
    statement = statements[0]
    if isinstance(statement, (exp.Alias, exp.Condition)):  # a bare expression: "SELEC x" parses as an alias
        raise QueryError(f"sutro_batch: the query is not a SQL statement (a typo in SELECT?): {_preview(query)}")
    if not isinstance(statement, exp.Query):
        raise QueryError(
            f"sutro_batch runs only read queries (SELECT, WITH ... SELECT, UNION), got {statement.key.upper()}: "
            f"{_preview(query)}"
        )
    for node in statement.walk():
        if isinstance(node, WRITE_NODES):
            raise QueryError(f"sutro_batch runs only read queries; {node.key.upper()} is not allowed")
    return query.strip().rstrip(";").strip()


def sutro_calls(tree: exp.Expression, name: str) -> list[exp.Anonymous]:
    """Calls of `name` (case-insensitive) anywhere in `tree`, outermost first."""
    return [call for call in tree.find_all(exp.Anonymous) if call.name.lower() == name]


def literal_function_name(call: exp.Anonymous) -> str:
    """The Function name of a sutro_run/sutro_batch call; it must be a string literal."""
    first = call.expressions[0] if call.expressions else None
    if not isinstance(first, exp.Literal) or not first.is_string:
        shown = first.sql("duckdb") if first is not None else "nothing"
        raise QueryError(
            f"{call.name.lower()}: the Function name must be a string literal such as 'lead-qualifier', got {shown}"
        )
    return first.this


def positional(call: exp.Anonymous) -> list[exp.Expression]:
    return [arg for arg in call.expressions if not isinstance(arg, exp.PropertyEQ)]


def named(call: exp.Anonymous) -> dict[str, exp.Expression]:
    return {arg.this.name.lower(): arg.expression for arg in call.expressions if isinstance(arg, exp.PropertyEQ)}


def inner_queries(tree: exp.Expression) -> list[str | None]:
    """Per `sutro_batch` call in `tree` (in `sutro_calls` order), its query, validated as one
    read query (a string or a ``(SELECT ...)`` subquery), or None for a call without one."""
    queries: list[str | None] = []
    for call in sutro_calls(tree, "sutro_batch"):
        literal_function_name(call)
        args = positional(call)
        if len(args) < 2:
            queries.append(None)
            continue
        inner = args[1]
        if isinstance(inner, exp.Subquery):
            queries.append(validate_read_query(inner.this.sql("duckdb")))
        elif isinstance(inner, exp.Literal) and inner.is_string:
            queries.append(validate_read_query(inner.this))
        else:
            raise QueryError("sutro_batch: the query must be a string or a (SELECT ...) subquery")
    return queries


def with_batch_sources(tree: exp.Expression, sources: list[str | None]) -> exp.Expression:
    """A copy of `tree` whose `sutro_batch` calls read their rows from the Parquet file at the
    same position in `sources` (None: left as it is)."""
    tree = tree.copy()
    for call, source in zip(sutro_calls(tree, "sutro_batch"), sources, strict=True):
        if source is not None:
            positional(call)[1].replace(exp.Literal.string(f"SELECT * FROM read_parquet('{source}')"))
    return tree


@dataclass(frozen=True)
class Lift:
    """One distinct `sutro_run(fn, input, ...)` the lift answers with a batch job; `scope`: the
    SELECT whose projections hold its calls (0: the statement, n: its n-th CTE), `calls`: the
    positions of its calls among the statement's `sutro_run` calls."""

    function: str
    input: exp.Expression
    on_error: str
    cache: bool
    calls: tuple[int, ...]
    scope: int = 0


def lift_scope(tree: exp.Expression) -> exp.Select | None:
    """The SELECT whose `sutro_run` calls the lift may answer: the statement itself, or the query
    of a CREATE TABLE ... AS / INSERT INTO ... SELECT (not a view's: a view outlives the answers)."""
    if isinstance(tree, exp.Select):
        return tree
    inner = tree.expression if isinstance(tree, (exp.Insert, exp.Create)) else None
    if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() != "TABLE":
        return None
    return inner if isinstance(inner, exp.Select) else None


def liftable_calls(tree: exp.Expression) -> list[Lift]:
    """`sutro_run` calls in the projections of a plain SELECT (`lift_scope`), or of one of its CTEs
    (the dbt idiom: answer in a CTE, unpack after), with no GROUP BY, DISTINCT, LIMIT, window,
    aggregate or condition (CASE, IF) around them: the ones whose inputs are exactly the rows of
    that SELECT's FROM/WHERE. Other calls stay per-row."""
    tree = lift_scope(tree)
    if tree is None:
        return []
    position = {id(call): i for i, call in enumerate(sutro_calls(tree, "sutro_run"))}
    groups: dict[tuple[int, str, str, str, bool], list[int]] = {}
    inputs: dict[tuple[int, str, str, str, bool], exp.Expression] = {}
    for scope, select in enumerate(_scopes(tree)):
        if not isinstance(select, exp.Select) or any(
            select.args.get(key) for key in ("group", "having", "distinct", "limit", "offset", "qualify")
        ):
            continue
        for projection in select.expressions:
            for call in sutro_calls(projection, "sutro_run"):
                key = _lift_key(call, select)
                if key is not None:
                    groups.setdefault((scope, *key), []).append(position[id(call)])
                    inputs.setdefault((scope, *key), positional(call)[1])
    return [Lift(key[1], inputs[key], key[3], key[4], tuple(calls), key[0]) for key, calls in groups.items()]


def _scopes(tree: exp.Select) -> list[exp.Expression]:
    """The statement's SELECT, then each of its CTEs' queries, in order."""
    with_ = tree.args.get("with_")
    return [tree, *(cte.this for cte in (with_.expressions if with_ is not None else []))]


def _lift_key(call: exp.Anonymous, select: exp.Select) -> tuple[str, str, str, bool] | None:
    """(Function, input SQL, on_error, cache) of a call the lift may answer, or None: a call under
    an aggregate, window, subquery or condition, with other arguments (e.g. abstain_below: answered per row,
    as written) or a non-literal `cache` stays per row."""
    # a call under a condition answers only some rows: lifting would send the others too
    around = (exp.AggFunc, exp.Window, exp.Subquery, exp.Select, exp.Case, exp.If)
    if any(isinstance(a, around) for a in _ancestors(call, select)):
        return None
    args = positional(call)
    options = named(call)
    if len(args) != 2 or set(options) - {"on_error", "cache"}:
        return None
    on_error = options.get("on_error")
    cache = options.get("cache")
    if cache is not None and not isinstance(cache, exp.Boolean):
        return None
    mode = on_error.name if isinstance(on_error, exp.Literal) else "raise"
    return literal_function_name(call), args[1].sql("duckdb"), mode, cache is None or bool(cache.this)


def _ancestors(node: exp.Expression, stop: exp.Expression) -> Iterator[exp.Expression]:
    parent = node.parent
    while parent is not None and parent is not stop:
        yield parent
        parent = parent.parent


def scope_query(tree: exp.Expression, scope: int) -> exp.Select:
    """A copy of the lift scope's SELECT number `scope` (see `_scopes`) that runs on its own: a
    CTE's SELECT gets the CTEs before it."""
    tree = lift_scope(tree)
    select = _scopes(tree)[scope].copy()
    if scope:
        earlier = tree.args["with_"].copy()
        earlier.set("expressions", earlier.expressions[: scope - 1])
        select.set("with_", earlier if earlier.expressions else None)
    return select


def inputs_query(tree: exp.Expression, lift: Lift) -> str:
    """SELECT DISTINCT of the lift's input, as JSON text, over its SELECT's own FROM/WHERE (with
    the CTEs before it, for a CTE's SELECT)."""
    select = scope_query(tree, lift.scope)
    select.set("order", None)
    json_input = exp.cast(exp.func("to_json", lift.input.copy()), "VARCHAR")
    select.set("expressions", [json_input.as_("__sutro_input")])
    select.set("distinct", exp.Distinct())
    return f"SELECT __sutro_input FROM ({select.sql('duckdb')}) AS __sutro_inputs WHERE __sutro_input IS NOT NULL"


def with_lifted_answers(
    tree: exp.Expression, lifts: list[Lift], files: list[str | None], names: dict[int, list[str]]
) -> exp.Expression:
    """A copy of `tree` whose lifted `sutro_run` calls look their answers up in the Parquet file at
    the same position in `files` (None: the lift was not worth a job; its calls stay). `names`:
    per lifted scope, the column names DuckDB gives its SELECT as written; an unaliased projection
    holding a lifted call is aliased with its name, so a table's columns do not change when its
    rows cross the lift threshold."""
    tree = tree.copy()
    scope = lift_scope(tree) if lifts else None
    calls = sutro_calls(scope, "sutro_run") if scope is not None else []
    selects = _scopes(scope) if scope is not None else []
    unnamed: set[tuple[int, int]] = set()  # (scope, projection) holding a replaced call, unaliased
    for lift, path in zip(lifts, files, strict=True):
        if path is None:
            continue
        for index in lift.calls:
            projection = _projection_of(calls[index], selects[lift.scope])
            if not isinstance(projection, exp.Alias):
                unnamed.add((lift.scope, projection.index))
            calls[index].replace(lookup(path, lift))
    for number, position in unnamed:
        projection = selects[number].expressions[position]
        projection.replace(exp.alias_(projection.copy(), names[number][position], quoted=True))
    return tree


def _projection_of(call: exp.Expression, select: exp.Select) -> exp.Expression:
    """The projection of `select` that holds `call` (a lifted call is always in one)."""
    node = call
    while node.parent is not select:
        node = node.parent
    return node


def lookup(path: str, lift: Lift) -> exp.Expression:
    """The expression replacing a lifted call: the batch answer whose input is this row's input,
    as `sutro_run`'s type (a file, not a TEMP table, so any cursor of the database can read it)."""
    json_input = exp.cast(exp.func("to_json", lift.input.copy()), "VARCHAR")
    answers = exp.Table(
        this=exp.Anonymous(this="read_parquet", expressions=[exp.Literal.string(path)]),
        alias=exp.TableAlias(this=exp.to_identifier("__sutro_answers")),
    )
    answer = exp.cast(exp.column("__sutro_answer", "__sutro_answers"), exp.DataType.build(ANSWER_SQL_TYPE, "duckdb"))
    return exp.Subquery(
        this=exp.select(answer).from_(answers).where(exp.column("__sutro_input", "__sutro_answers").eq(json_input))
    )


def _preview(query: str, limit: int = 80) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."
