"""Simulated tenant, what every Graph resource handler shares: lookups, paging, lag.

Handlers take a :class:`~batch.simulator.calls.Call` and return a
:class:`~batch.simulator.responses.Reply` or raise
:class:`~batch.simulator.responses.GraphFault`. They live in one module per resource
(:mod:`~batch.simulator.users`, :mod:`~batch.simulator.groups`,
:mod:`~batch.simulator.assignments`, :mod:`~batch.simulator.organization`) as methods of
subclasses of :class:`Endpoints`; :class:`batch.simulator.graph.GraphApi` combines them and
routes requests to them.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any
from urllib.parse import quote

from batch.simulator.calls import Call
from batch.simulator.lag import ReadLag, UserSnapshot
from batch.simulator.odata import Condition, make_skiptoken, read_skiptoken
from batch.simulator.options import SimulatorOptions
from batch.simulator.responses import Reply, bad_request, not_found
from batch.simulator.store import TenantStore


class Endpoints:
    """The state the handlers work on, and the helpers they share."""

    def __init__(
        self, store: TenantStore, options: SimulatorOptions, lag: ReadLag | None = None
    ) -> None:
        self.store = store
        self.options = options
        self.lag = lag

    # -- helpers --------------------------------------------------------------------------

    def _user(self, db: sqlite3.Connection, key: str) -> sqlite3.Row:
        row = self.store.user_row(db, key)
        if row is None:
            raise not_found(key)
        return row

    def _group(self, db: sqlite3.Connection, key: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM groups WHERE id=?", (key,)).fetchone()
        if row is None:
            raise not_found(key)
        return row

    def _json_body(self, call: Call) -> dict[str, Any]:
        if not isinstance(call.body, dict):
            raise bad_request("Empty Payload. JSON content expected.")
        return call.body

    def _context(self, call: Call, entity: str, select: list[str] | None) -> str:
        suffix = f"({','.join(select)})" if select else ""
        return f"{call.base_url}/$metadata#{entity}{suffix}"

    def _next_link(self, call: Call, last_seq: int) -> str:
        params = {k: v for k, v in call.params.items() if k != "$skiptoken"}
        params["$skiptoken"] = make_skiptoken(last_seq)
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        return f"{call.base_url}{call.path}?{query}"

    def _advanced_allowed(self, call: Call) -> bool:
        return call.eventual and call.params.get("$count", "").lower() == "true"

    def _page(
        self,
        call: Call,
        db: sqlite3.Connection,
        table: str,
        condition: Condition,
        top: int,
        *,
        extra_sql: str = "",
        extra_params: tuple[Any, ...] = (),
    ) -> tuple[list[sqlite3.Row], str | None, int | None]:
        after = read_skiptoken(call.params.get("$skiptoken"))
        where = f"{table}.seq > ? AND {condition.sql}{extra_sql}"
        rows = list(
            db.execute(
                f"SELECT {table}.* FROM {table} WHERE {where} ORDER BY {table}.seq LIMIT ?",  # noqa: S608
                (after, *condition.params, *extra_params, top + 1),
            )
        )
        next_link = None
        if len(rows) > top:
            rows = rows[:top]
            next_link = self._next_link(call, rows[-1]["seq"])
        count = None
        if self._advanced_allowed(call) and "$skiptoken" not in call.params:
            count = db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {condition.sql}{extra_sql}",  # noqa: S608
                (*condition.params, *extra_params),
            ).fetchone()[0]
        return rows, next_link, count

    def _collection(
        self, context: str, values: list[Any], next_link: str | None, count: int | None
    ) -> Reply:
        body: dict[str, Any] = {"@odata.context": context}
        if count is not None:
            body["@odata.count"] = count
        body["value"] = values
        if next_link:
            body["@odata.nextLink"] = next_link
        return Reply(200, body)

    def _check_query_options(self, call: Call, allowed: set[str]) -> None:
        for name in call.params:
            if name.startswith("$") and name not in allowed:
                if name in (
                    "$orderby",
                    "$skip",
                    "$expand",
                    "$search",
                    "$count",
                    "$filter",
                    "$select",
                    "$top",
                    "$skiptoken",
                    "$format",
                ):
                    raise bad_request(
                        f"Query option '{name}' is not supported for this request.",
                        code="Request_UnsupportedQuery",
                    )
                raise bad_request(f"Unrecognized query option '{name}'.")

    def _lagging_user(self, row: Any) -> tuple[Any, dict[str, list[Any]]]:
        """The row (and license rows) one read of a user shows."""
        snapshot = self.lag.view(row["id"]) if self.lag is not None else None
        if snapshot is None:
            return row, {}
        return snapshot.row, {snapshot.user_id: snapshot.licenses}

    def _snapshots(self, db: sqlite3.Connection, user_ids: list[str]) -> list[UserSnapshot]:
        return self.lag.snapshots(db, user_ids) if self.lag is not None else []

    def _written(self, snapshots: list[UserSnapshot]) -> None:
        if self.lag is not None:
            self.lag.record(snapshots)

    def _due(self) -> float:
        return time.time() + self.options.scaled(self.options.group_processing_delay)
