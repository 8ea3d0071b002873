"""DuckDB-dialect SQL run on PostgreSQL: the translator and the read cursor.

All SQL in the project (migrations, the stats queries, the loop's statements) is written
once, for DuckDB. The PostgreSQL engine runs the same texts through `Translator`:
sqlglot transpiles the dialect (``?`` placeholders, ``quantile_cont``, ``FILTER``,
``epoch()``, ``DOUBLE``, ``now()::TIMESTAMP``), and a few rewrites cover what it leaves
as is: ``GROUP BY ALL``, ``isfinite(x)`` on a double, a sub-query without an alias,
``INSERT OR IGNORE``. A ``%`` in a literal is doubled because psycopg reads the text as
a format string. Each distinct text is translated once (the set of texts is small and
fixed: they are constants in the code).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import sqlglot
from psycopg.types.numeric import FloatLoader
from psycopg.types.string import TextLoader
from sqlglot import exp

from proxy.logstore.backend import LogStoreUnavailable, Params

_CACHE_LIMIT = 2048


class SqlTranslationError(ValueError):
    """A DuckDB statement has no PostgreSQL translation (a programming error)."""


def _group_by_all(select: exp.Select) -> None:
    group = select.args.get("group")
    if not isinstance(group, exp.Group) or not group.args.get("all"):
        return
    positions = [
        exp.Literal.number(i)
        for i, projection in enumerate(select.expressions, start=1)
        if not projection.find(exp.AggFunc)
    ]
    select.set("group", exp.Group(expressions=positions) if positions else None)


def _finite(node: exp.Expression) -> exp.Expression:
    # PostgreSQL's isfinite() takes dates only; NaN compares above 'Infinity', so it fails too.
    value = node.expressions[0]
    inf = exp.cast(exp.Literal.string("Infinity"), "DOUBLE")
    neg = exp.cast(exp.Literal.string("-Infinity"), "DOUBLE")
    return exp.paren(
        exp.and_(
            exp.GT(this=value.copy(), expression=neg), exp.LT(this=value.copy(), expression=inf)
        )
    )


def _rewrite(tree: exp.Expr) -> exp.Expr:
    for number, sub in enumerate(list(tree.find_all(exp.Subquery))):
        if not sub.alias and isinstance(sub.parent, exp.From | exp.Join):
            sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"_sub{number}")))
    for select in tree.find_all(exp.Select):
        _group_by_all(select)
    for func in list(tree.find_all(exp.Anonymous)):
        if str(func.this).lower() == "isfinite" and len(func.expressions) == 1:
            func.replace(_finite(func))
    if isinstance(tree, exp.Insert) and tree.args.get("alternative"):
        if str(tree.args["alternative"]).upper() != "IGNORE":
            raise SqlTranslationError(
                "INSERT OR REPLACE has no PostgreSQL form: write ON CONFLICT (...) DO UPDATE"
            )
        tree.set("alternative", None)
        tree.set("conflict", exp.OnConflict(action=exp.var("DO NOTHING")))
    for literal in tree.find_all(exp.Literal):
        if literal.is_string and "%" in literal.this:
            literal.set("this", literal.this.replace("%", "%%"))
    return tree


def translate(sql: str) -> str:
    """One DuckDB text (several statements allowed) in PostgreSQL's dialect."""
    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise SqlTranslationError(f"cannot parse for PostgreSQL: {exc}") from exc
    out = [_rewrite(tree).sql(dialect="postgres") for tree in trees if tree is not None]
    return ";\n".join(out)


class Translator:
    """`translate` with a bounded, thread-safe memo (texts are constants of the code)."""

    def __init__(self) -> None:
        self._memo: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, sql: str) -> str:
        hit = self._memo.get(sql)
        if hit is not None:
            return hit
        text = translate(sql)
        with self._lock:
            if len(self._memo) >= _CACHE_LIMIT:
                self._memo.clear()
            self._memo[sql] = text
        return text


def params_list(params: Params) -> list[Any]:
    # Always a list: psycopg then reads every text as a format string, consistently with
    # the doubled % of the translation.
    if params is None:
        return []
    if isinstance(params, Mapping):
        raise TypeError("named parameters are not supported on PostgreSQL; use ?")
    return list(params)


def configure(conn: psycopg.Connection[Any]) -> None:
    """Results typed like DuckDB's: JSON as text, NUMERIC as float."""
    for name in ("json", "jsonb"):
        conn.adapters.register_loader(name, TextLoader)
    conn.adapters.register_loader("numeric", FloatLoader)


class PgCursor:
    """The DuckDB-cursor surface the read code uses (`execute` chains, `fetch*`,
    `description`) over a psycopg connection, with every statement translated."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        translator: Translator,
        *,
        owns_connection: bool = False,
    ) -> None:
        self._conn = conn
        self._translate = translator
        self._owns = owns_connection
        self._cur = conn.cursor()

    @property
    def connection(self) -> psycopg.Connection[Any]:
        return self._conn

    def execute(self, sql: str, params: Params = None) -> PgCursor:
        try:
            self._cur.execute(self._translate(sql), params_list(params))
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise LogStoreUnavailable(f"PostgreSQL: {exc}") from exc
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cur.fetchall()

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cur.fetchone()

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        return self._cur.fetchmany(size)

    @property
    def description(self) -> Sequence[Any] | None:
        return self._cur.description

    def cursor(self) -> PgCursor:
        return PgCursor(self._conn, self._translate)

    def close(self) -> None:
        self._cur.close()
        if self._owns:
            self._conn.close()

    def __enter__(self) -> PgCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
