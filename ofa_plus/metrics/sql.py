"""Text-to-SQL: sql_execution_match, run on the row's sqlite file opened read-only."""

from __future__ import annotations

import math
import re
import sqlite3
import time
import urllib.parse
from collections import Counter
from pathlib import Path

from .registry import Metric, register
from .values import mean_percent, reference_list, row_column

SQL_TIMEOUT_S = 1.0  # a predicted query running longer than this is aborted (and wrong)
SQL_GOLD_TIMEOUT_S = 10.0  # gold queries are trusted, but still bounded
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


def _prediction_timeout() -> float:
    """The public setting `ofa_plus.metrics.SQL_TIMEOUT_S`, read at each call.

    The package re-exports this module's value, so a new value set there (as callers and tests do)
    would not reach the name here.
    """
    from .. import metrics as package

    return package.SQL_TIMEOUT_S


class _ReadOnlyDatabase:
    """A read-only sqlite connection that aborts queries running past their deadline."""

    def __init__(self, path: str):
        uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
        try:
            self.connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as error:
            raise ValueError(f"sql_execution_match: cannot open database {path!r}: {error}") from error
        self.deadline = math.inf
        # sqlite calls this every 1000 VM instructions; a true return interrupts the query
        self.connection.set_progress_handler(lambda: time.monotonic() > self.deadline, 1000)
        # mode=ro protects this file; ATTACH could still create or write another one
        self.connection.set_authorizer(
            lambda action, *args: (
                sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) else sqlite3.SQLITE_OK
            )
        )

    def run(self, sql: str, timeout: float) -> list[tuple]:
        self.deadline = time.monotonic() + timeout
        try:
            return self.connection.execute(sql).fetchall()
        finally:
            self.deadline = math.inf

    def close(self) -> None:
        self.connection.close()


def _comparable(result: list[tuple], ordered: bool) -> list | Counter:
    # rounding floats: AVG(x) and SUM(x) / COUNT(x) may differ in the last bits
    rows = [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in result]
    return rows if ordered else Counter(rows)


def _sql_execution_match(predictions: list, references: list, rows=None) -> float:
    """Share of predicted queries whose result equals the gold query's on the row's database.

    Results are compared as multisets of rows (order-insensitive) unless the gold query has an
    ORDER BY; column order matters. A prediction that fails (syntax error, write attempt, more than
    one statement, running past SQL_TIMEOUT_S) is wrong; a gold query that fails raises ValueError.
    """
    if rows is None:
        raise ValueError("sql_execution_match needs rows with a 'db_path' column")
    databases: dict[str, _ReadOnlyDatabase] = {}  # one connection per database file
    gold_results: dict[tuple[str, str], list] = {}
    scores = []
    try:
        for i, (prediction, reference) in enumerate(zip(predictions, references)):
            path = row_column(rows, i, "db_path")
            if path is None:
                raise ValueError(f"sql_execution_match: row {i} has no 'db_path'")
            path = str(path)
            if path not in databases:
                databases[path] = _ReadOnlyDatabase(path)
            database = databases[path]
            gold_sql = reference_list(reference)
            if not gold_sql:
                raise ValueError(f"sql_execution_match: row {i} has no gold query")
            gold_sql = str(gold_sql[0])
            if (path, gold_sql) not in gold_results:
                try:
                    gold_results[path, gold_sql] = database.run(gold_sql, SQL_GOLD_TIMEOUT_S)
                except sqlite3.Error as error:
                    raise ValueError(
                        f"sql_execution_match: gold query of row {i} fails on {path!r}: {error}\n  {gold_sql}"
                    ) from error
            if prediction is None or not str(prediction).strip():
                scores.append(0.0)
                continue
            try:
                predicted = database.run(str(prediction), _prediction_timeout())
            except (sqlite3.Error, sqlite3.Warning, OverflowError, ValueError):
                scores.append(0.0)  # invalid SQL, a write, several statements, a timeout: wrong
                continue
            ordered = _ORDER_BY.search(gold_sql) is not None
            gold = gold_results[path, gold_sql]
            scores.append(float(_comparable(predicted, ordered) == _comparable(gold, ordered)))
    finally:
        for database in databases.values():
            database.close()
    return mean_percent(scores)


register(
    Metric(
        "sql_execution_match",
        _sql_execution_match,
        needs_columns=("db_path",),
        description="predicted SQL returns the gold query's result on the row's sqlite file (%)",
    ),
)
