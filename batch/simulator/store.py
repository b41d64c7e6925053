"""Simulated tenant, state: users, SKUs, groups, license assignments, kept in SQLite.

The state is one SQLite database in WAL mode in the state directory. Every mutation runs in
one ``BEGIN IMMEDIATE`` transaction that commits before the HTTP answer is written, so a
process killed with SIGKILL leaves either the old or the new state, never half of one, and
several processes can open the same state (``apply`` in one, ``true-up`` in the next).
``synchronous=NORMAL`` makes commits durable against a killed process (not a power cut).

The tables, the seat-count triggers and the history every license change appends to are
described in :mod:`batch.simulator.schema`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batch.simulator.licensing import process_group
from batch.simulator.render import render_skus, render_users
from batch.simulator.schema import REBUILD_SEATS, SCHEMA, now_iso

_USER_COLUMNS = (
    "id, upn, display_name, given_name, surname, mail, account_enabled, usage_location, "
    "usage_location_changed, department, employee_id, job_title, country, user_type, created, "
    "last_sign_in, last_non_interactive, last_successful, sign_in_missing, seq"
)


class TenantStore:
    """The persisted tenant: one SQLite file, one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        db = self.connection()
        with self._write_lock:
            db.executescript(SCHEMA)
            columns = {r["name"] for r in db.execute("PRAGMA table_info(users)")}
            if "sign_in_missing" not in columns:  # a state made before the column existed
                db.execute(
                    "ALTER TABLE users ADD COLUMN sign_in_missing INTEGER NOT NULL DEFAULT 0"
                )
            if self.meta("seat_index") != "1":
                db.executescript("BEGIN IMMEDIATE;" + REBUILD_SEATS + "COMMIT;")
                db.execute("INSERT OR REPLACE INTO meta VALUES('seat_index', '1')")

    # -- connections and transactions -----------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use :meth:`write` for changes)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=30.0, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=OFF")
            # INSERT OR REPLACE must fire the delete triggers that keep seat counts
            db.execute("PRAGMA recursive_triggers=ON")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        db = self.connection()
        # One writer per process at a time; SQLite's own lock orders the processes.
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot for several queries."""
        db = self.connection()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._connections_lock:
            for db in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._connections.clear()
        self._local = threading.local()

    # -- meta and apps --------------------------------------------------------------------

    def meta(self, key: str, default: str | None = None) -> str | None:
        """A value from the meta table."""
        row = self.connection().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row["value"] if row else default

    def set_meta(self, db: sqlite3.Connection, key: str, value: str) -> None:
        """Set a meta value inside a write transaction."""
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    @property
    def initialized(self) -> bool:
        """True once a tenant has been loaded."""
        return self.meta("tenant_id") is not None

    def organization(self) -> dict[str, Any]:
        """The organization record (tenant id, name, domain, country)."""
        return json.loads(self.meta("organization") or "{}")

    def app(self, client_id: str) -> dict[str, Any] | None:
        """An app registration by client id, or None."""
        row = (
            self.connection()
            .execute("SELECT * FROM apps WHERE client_id=?", (client_id,))
            .fetchone()
        )
        if row is None:
            return None
        return {
            "client_id": row["client_id"],
            "display_name": row["display_name"],
            "secret": row["secret"],
            "certificates": json.loads(row["certificates"]),
            "roles": json.loads(row["roles"]),
        }

    def save_app(
        self,
        client_id: str,
        display_name: str,
        secret: str | None,
        certificates: list[dict[str, str]],
        roles: list[str],
    ) -> None:
        """Register (or replace) an app registration."""
        with self.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO apps VALUES(?, ?, ?, ?, ?)",
                (client_id, display_name, secret, json.dumps(certificates), json.dumps(roles)),
            )

    # -- loading --------------------------------------------------------------------------

    def load_tenant(self, tenant: dict[str, Any], *, keep_apps: bool = True) -> None:
        """Replace the directory with ``tenant`` (the sample format of ``seed.py``)."""
        started = time.time()
        with self.write() as db:
            for table in ("skus", "users", "licenses", "groups", "members", "history", "applied"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            if not keep_apps:
                db.execute("DELETE FROM apps")
            org = dict(tenant["organization"])
            self.set_meta(db, "organization", json.dumps(org))
            self.set_meta(db, "tenant_id", org["id"])
            _insert_skus(db, tenant["skus"])
            _insert_users(db, tenant["users"], started)
            _insert_groups(db, tenant.get("groups", []), now_iso(started))
            # Seeded group licenses are processed at once: the sample starts settled.
            for group in tenant.get("groups", []):
                if group.get("assignedLicenses"):
                    process_group(db, group["id"], operation="seed")

    # -- queries for tests and the CLI ----------------------------------------------------

    def user_row(self, db: sqlite3.Connection, key: str) -> sqlite3.Row | None:
        """A user row by object id or userPrincipalName (case-insensitive)."""
        row = db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id=?", (key,)).fetchone()
        if row is None:
            row = db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE upn_key=?", (key.lower(),)
            ).fetchone()
        return row

    def user(self, key: str) -> dict[str, Any] | None:
        """A user with every property (licenses included), by id or UPN; None if unknown."""
        with self.read() as db:
            row = self.user_row(db, key)
            if row is None:
                return None
            return render_users(db, [row])[0]

    def user_licenses(self, key: str) -> set[str]:
        """The skuIds currently active on a user (direct or inherited)."""
        user = self.user(key)
        if user is None:
            raise KeyError(key)
        return {lic["skuId"] for lic in user["assignedLicenses"]}

    def license_history(self, key: str) -> list[tuple[str, frozenset[str]]]:
        """Every (timestamp, set of active skuIds) a user went through, oldest first."""
        db = self.connection()
        row = self.user_row(db, key)
        if row is None:
            raise KeyError(key)
        return [
            (r["at"], frozenset(json.loads(r["skus"])))
            for r in db.execute(
                "SELECT at, skus FROM history WHERE user_id=? ORDER BY seq", (row["id"],)
            )
        ]

    def set_sign_in(self, key: str, activity: dict[str, str | None] | None) -> None:
        """Set a user's sign-in data, for tests.

        ``None``: the data is missing (Graph answers ``"signInActivity": null``, an unknown
        value, as reported in msgraph-sdk-powershell issue 1898). A dict with
        ``lastSignInDateTime``, ``lastNonInteractiveSignInDateTime`` and
        ``lastSuccessfulSignInDateTime`` (ISO-8601, each may be None): known data; all None
        (or ``{}``) is a user who never signed in, whose ``signInActivity`` is not returned
        at all (documented: "This property isn't returned for a user who never signed in").
        """
        values = activity or {}
        with self.write() as db:
            row = self.user_row(db, key)
            if row is None:
                raise KeyError(key)
            db.execute(
                "UPDATE users SET last_sign_in=?, last_non_interactive=?, last_successful=?, "
                "sign_in_missing=? WHERE id=?",
                (
                    values.get("lastSignInDateTime"),
                    values.get("lastNonInteractiveSignInDateTime"),
                    values.get("lastSuccessfulSignInDateTime"),
                    int(activity is None),
                    row["id"],
                ),
            )

    def applied_writes(self) -> dict[tuple[str, str], int]:
        """How many times each (target id, operation) write was applied."""
        return {
            (r["target"], r["operation"]): r["count"]
            for r in self.connection().execute("SELECT * FROM applied")
        }

    def skus(self) -> list[dict[str, Any]]:
        """The tenant's subscribedSkus, Graph-shaped."""
        with self.read() as db:
            return render_skus(db, self.meta("tenant_id") or "")

    def groups(self) -> list[dict[str, Any]]:
        """Every group with its member ids and assigned licenses."""
        db = self.connection()
        result = []
        for g in db.execute("SELECT * FROM groups ORDER BY seq"):
            members = [
                r[0] for r in db.execute("SELECT user_id FROM members WHERE group_id=?", (g["id"],))
            ]
            result.append(
                {
                    "id": g["id"],
                    "displayName": g["display_name"],
                    "assignedLicenses": json.loads(g["licenses"]),
                    "members": members,
                    "pending": g["due"] is not None,
                }
            )
        return result

    def summary(self) -> dict[str, Any]:
        """Counts for ``simulator show``: users, licensed users, SKUs with seats, groups."""
        db = self.connection()
        org = self.organization()
        users = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        licensed = db.execute(
            "SELECT COUNT(DISTINCT user_id) FROM licenses WHERE state IN ('Active', "
            "'ActiveWithError')"
        ).fetchone()[0]
        groups = db.execute("SELECT COUNT(*) FROM groups").fetchone()[0]
        skus = [
            {
                "skuPartNumber": s["skuPartNumber"],
                "enabled": s["prepaidUnits"]["enabled"],
                "consumed": s["consumedUnits"],
                "capabilityStatus": s["capabilityStatus"],
                "appliesTo": s["appliesTo"],
            }
            for s in self.skus()
        ]
        return {
            "tenant": org.get("displayName"),
            "tenant_id": org.get("id"),
            "domain": org.get("domain"),
            "users": users,
            "licensed_users": licensed,
            "groups": groups,
            "skus": skus,
        }


def _user_row(user: dict[str, Any], started: float) -> tuple[Any, ...]:
    # "signIn": {...days ago...}; None or absent: never signed in; "missing": unknown
    raw = user.get("signIn")
    sign_in: dict[str, Any] = raw if isinstance(raw, dict) else {}

    def ago(key: str) -> str | None:
        days = sign_in.get(key)
        return None if days is None else now_iso(started - float(days) * 86400)

    return (
        user["id"],
        user["userPrincipalName"],
        user["userPrincipalName"].lower(),
        user.get("displayName"),
        user.get("givenName"),
        user.get("surname"),
        user.get("mail"),
        int(user.get("accountEnabled", True)),
        user.get("usageLocation"),
        user.get("department"),
        user.get("employeeId"),
        user.get("jobTitle"),
        user.get("country"),
        user.get("userType", "Member"),
        user.get("createdDateTime") or now_iso(started),
        ago("lastSignInDaysAgo"),
        ago("lastNonInteractiveDaysAgo"),
        ago("lastSuccessfulDaysAgo"),
        int(user.get("signIn") == "missing"),
    )


def _insert_skus(db: sqlite3.Connection, skus: list[dict[str, Any]]) -> None:
    db.executemany(
        "INSERT INTO skus VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                s["skuId"],
                s["skuPartNumber"],
                s.get("displayName", s["skuPartNumber"]),
                s.get("appliesTo", "User"),
                s.get("capabilityStatus", "Enabled"),
                s["prepaidUnits"]["enabled"],
                s["prepaidUnits"].get("warning", 0),
                s["prepaidUnits"].get("suspended", 0),
                s["prepaidUnits"].get("lockedOut", 0),
                json.dumps(s["servicePlans"]),
            )
            for i, s in enumerate(skus)
        ],
    )


def _insert_users(db: sqlite3.Connection, users: list[dict[str, Any]], started: float) -> None:
    """The users, their direct licenses and the first entry of their license history."""
    stamp = now_iso(started)
    db.executemany(
        "INSERT INTO users(id, upn, upn_key, display_name, given_name, surname, mail, "
        "account_enabled, usage_location, department, employee_id, job_title, country, "
        "user_type, created, last_sign_in, last_non_interactive, last_successful, "
        "sign_in_missing) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (_user_row(u, started) for u in users),
    )
    license_rows = []
    history_rows = []
    for user in users:
        skus = []
        for lic in user.get("licenses", []):
            license_rows.append(
                (
                    user["id"],
                    lic["skuId"],
                    "",
                    json.dumps(lic.get("disabledPlans", [])),
                    "Active",
                    "None",
                    stamp,
                    stamp,
                )
            )
            skus.append(lic["skuId"])
        if skus:
            history_rows.append((user["id"], stamp, json.dumps(sorted(skus)), "seed"))
    db.executemany("INSERT INTO licenses VALUES(?, ?, ?, ?, ?, ?, ?, ?)", license_rows)
    db.executemany(
        "INSERT INTO history(user_id, at, skus, operation) VALUES(?, ?, ?, ?)",
        history_rows,
    )


def _insert_groups(db: sqlite3.Connection, groups: list[dict[str, Any]], stamp: str) -> None:
    for group in groups:
        db.execute(
            "INSERT INTO groups(id, display_name, description, mail_nickname, "
            "security_enabled, mail_enabled, group_types, created, licenses, due) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                group["id"],
                group["displayName"],
                group.get("description"),
                group.get("mailNickname"),
                int(group.get("securityEnabled", True)),
                int(group.get("mailEnabled", False)),
                json.dumps(group.get("groupTypes", [])),
                group.get("createdDateTime", stamp),
                json.dumps(group.get("assignedLicenses", [])),
            ),
        )
        db.executemany(
            "INSERT OR IGNORE INTO members VALUES(?, ?)",
            ((group["id"], member) for member in group.get("members", [])),
        )
