"""Keyset pagination over a table with a UUIDv7 id column: for SQLAlchemy selects, and for plain SQL
run through psycopg (`keyset_rows`)."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Connection, RowMapping, Select
from sqlalchemy.sql.elements import ColumnElement

from tally.adapters.pagination import Page, PageRequest


def keyset_select(
    statement: Select[Any], id_column: ColumnElement[Any], page: PageRequest, *, descending: bool = True
) -> Select[Any]:
    """`statement` restricted to one page: cursor condition, order by id, and one extra row.

    Pass an unordered select already filtered by tenant. The extra row tells whether more exist.
    `descending=True` lists newest first. Paging backwards (`ending_before`) reads in the opposite
    direction; `fetch_page` puts the rows back in list order.
    """
    if page.starting_after is not None:
        condition = id_column < page.starting_after if descending else id_column > page.starting_after
        statement = statement.where(condition)
    if page.ending_before is not None:
        condition = id_column > page.ending_before if descending else id_column < page.ending_before
        statement = statement.where(condition)
    read_descending = descending != page.backwards
    order = id_column.desc() if read_descending else id_column.asc()
    return statement.order_by(order).limit(page.limit + 1)


def fetch_page(
    connection: Connection,
    statement: Select[Any],
    id_column: ColumnElement[Any],
    page: PageRequest,
    *,
    descending: bool = True,
) -> Page[RowMapping]:
    """Run `keyset_select` and return the rows of one page, in list order."""
    rows = list(connection.execute(keyset_select(statement, id_column, page, descending=descending)).mappings())
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if page.backwards:
        rows.reverse()
    return Page(items=rows, has_more=has_more, backwards=page.backwards)


def keyset_rows(  # noqa: PLR0917 - the query's parts, in the order they read
    connection: psycopg.Connection[Any],
    table: str,
    columns: str,
    filters: list[str],
    parameters: dict[str, Any],
    page: PageRequest,
) -> tuple[list[Any], bool]:
    """The rows of one page of `SELECT columns FROM table WHERE filters` (named parameters), newest
    first (ids are UUIDv7: id order is creation order), in list order; and whether more exist."""
    parameters = {**parameters, "limit": page.limit + 1}
    if page.starting_after is not None:
        filters = [*filters, "id < %(starting_after)s"]
        parameters["starting_after"] = page.starting_after
    if page.ending_before is not None:
        filters = [*filters, "id > %(ending_before)s"]
        parameters["ending_before"] = page.ending_before
    order = "ASC" if page.backwards else "DESC"
    rows = connection.execute(
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(filters)} ORDER BY id {order} LIMIT %(limit)s",
        parameters,
    ).fetchall()
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if page.backwards:
        rows.reverse()
    return rows, has_more
