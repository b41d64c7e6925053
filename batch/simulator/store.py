"""Simulated tenant, state: users, SKUs, groups, license assignments, kept in SQLite.

The state is one SQLite database in WAL mode in the state directory. Every mutation runs in
one ``BEGIN IMMEDIATE`` transaction that commits before the HTTP answer is written, so a
process killed with SIGKILL leaves either the old or the new state, never half of one, and
several processes can open the same state (``apply`` in one, ``true-up`` in the next).
``synchronous=NORMAL`` makes commits durable against a killed process (not a power cut).

Licenses live in one row per (user, SKU, source): source ``""`` is a direct assignment, a
group id an inherited one. A user consumes one seat of a SKU when any of its rows for that
SKU is active, however many sources it has. Every change to a user's set of active SKUs is
appended to ``history`` so tests can prove a swap never left a user unlicensed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apps(
    client_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, secret TEXT,
    certificates TEXT NOT NULL DEFAULT '[]', roles TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS skus(
    position INTEGER PRIMARY KEY, sku_id TEXT UNIQUE NOT NULL, part_number TEXT NOT NULL,
    display_name TEXT NOT NULL, applies_to TEXT NOT NULL, capability_status TEXT NOT NULL,
    enabled INTEGER NOT NULL, warning INTEGER NOT NULL, suspended INTEGER NOT NULL,
    locked_out INTEGER NOT NULL, service_plans TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users(
    seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, upn TEXT NOT NULL,
    upn_key TEXT UNIQUE NOT NULL, display_name TEXT, given_name TEXT, surname TEXT, mail TEXT,
    account_enabled INTEGER NOT NULL, usage_location TEXT, usage_location_changed REAL,
    department TEXT, employee_id TEXT, job_title TEXT, country TEXT, user_type TEXT,
    created TEXT NOT NULL, last_sign_in TEXT, last_non_interactive TEXT,
    last_successful TEXT, sign_in_missing INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS licenses(
    user_id TEXT NOT NULL, sku_id TEXT NOT NULL, source TEXT NOT NULL,
    disabled_plans TEXT NOT NULL, state TEXT NOT NULL, error TEXT NOT NULL,
    assigned TEXT NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY(user_id, sku_id, source));
CREATE INDEX IF NOT EXISTS licenses_by_sku ON licenses(sku_id, state, user_id);
CREATE TABLE IF NOT EXISTS groups(
    seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, display_name TEXT NOT NULL,
    description TEXT, mail_nickname TEXT, security_enabled INTEGER NOT NULL,
    mail_enabled INTEGER NOT NULL, group_types TEXT NOT NULL, created TEXT NOT NULL,
    licenses TEXT NOT NULL, due REAL);
CREATE TABLE IF NOT EXISTS members(
    group_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY(group_id, user_id));
CREATE INDEX IF NOT EXISTS members_by_user ON members(user_id);
CREATE TABLE IF NOT EXISTS history(
    seq INTEGER PRIMARY KEY, user_id TEXT NOT NULL, at TEXT NOT NULL, skus TEXT NOT NULL,
    operation TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_user ON history(user_id, seq);
CREATE TABLE IF NOT EXISTS applied(
    target TEXT NOT NULL, operation TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY(target, operation));
-- Seats in use, kept by triggers: counting a SKU's holders on every write is linear in the
-- tenant's size. holders: active license rows per (SKU, user); seat_use: users per SKU.
CREATE TABLE IF NOT EXISTS holders(
    sku_id TEXT NOT NULL, user_id TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY(sku_id, user_id));
CREATE TABLE IF NOT EXISTS seat_use(sku_id TEXT PRIMARY KEY, consumed INTEGER NOT NULL);
DROP TRIGGER IF EXISTS seat_take;
CREATE TRIGGER seat_take AFTER INSERT ON licenses
WHEN NEW.state IN ('Active', 'ActiveWithError') BEGIN
    -- no conflict clauses in here: an outer INSERT OR REPLACE would override them
    INSERT INTO seat_use SELECT NEW.sku_id, 0
        WHERE NOT EXISTS (SELECT 1 FROM seat_use WHERE sku_id = NEW.sku_id);
    UPDATE seat_use SET consumed = consumed + 1 WHERE sku_id = NEW.sku_id
        AND NOT EXISTS (SELECT 1 FROM holders WHERE sku_id = NEW.sku_id AND user_id = NEW.user_id);
    UPDATE holders SET n = n + 1 WHERE sku_id = NEW.sku_id AND user_id = NEW.user_id;
    INSERT INTO holders SELECT NEW.sku_id, NEW.user_id, 1 WHERE NOT EXISTS (
        SELECT 1 FROM holders WHERE sku_id = NEW.sku_id AND user_id = NEW.user_id);
END;
CREATE TRIGGER IF NOT EXISTS seat_give AFTER DELETE ON licenses
WHEN OLD.state IN ('Active', 'ActiveWithError') BEGIN
    UPDATE holders SET n = n - 1 WHERE sku_id = OLD.sku_id AND user_id = OLD.user_id;
    UPDATE seat_use SET consumed = consumed - 1 WHERE sku_id = OLD.sku_id AND EXISTS (
        SELECT 1 FROM holders WHERE sku_id = OLD.sku_id AND user_id = OLD.user_id AND n <= 0);
    DELETE FROM holders WHERE sku_id = OLD.sku_id AND user_id = OLD.user_id AND n <= 0;
END;
CREATE TRIGGER IF NOT EXISTS seat_rows_immutable BEFORE UPDATE OF state, sku_id, user_id
ON licenses BEGIN
    SELECT RAISE(ABORT, 'license rows are replaced, never updated in place');
END;
"""

#: holders/seat_use rebuilt from the licenses (a state made before the triggers existed)
_REBUILD_SEATS = """
DELETE FROM holders;
DELETE FROM seat_use;
INSERT INTO holders SELECT sku_id, user_id, COUNT(*) FROM licenses
    WHERE state IN ('Active', 'ActiveWithError') GROUP BY sku_id, user_id;
INSERT INTO seat_use SELECT sku_id, COUNT(*) FROM holders GROUP BY sku_id;
"""

ACTIVE_STATES = ("Active", "ActiveWithError")
_USER_COLUMNS = (
    "id, upn, display_name, given_name, surname, mail, account_enabled, usage_location, "
    "usage_location_changed, department, employee_id, job_title, country, user_type, created, "
    "last_sign_in, last_non_interactive, last_successful, sign_in_missing, seq"
)


def now_iso(at: float | None = None) -> str:
    """An ISO-8601 UTC timestamp in Graph's style (``2025-01-31T12:00:00Z``)."""
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _precise_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


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
                db.executescript("BEGIN IMMEDIATE;" + _REBUILD_SEATS + "COMMIT;")
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
        from batch.simulator.licensing import process_group

        started = time.time()
        with self.write() as db:
            for table in ("skus", "users", "licenses", "groups", "members", "history", "applied"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            if not keep_apps:
                db.execute("DELETE FROM apps")
            org = dict(tenant["organization"])
            self.set_meta(db, "organization", json.dumps(org))
            self.set_meta(db, "tenant_id", org["id"])
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
                    for i, s in enumerate(tenant["skus"])
                ],
            )
            stamp = now_iso(started)
            db.executemany(
                "INSERT INTO users(id, upn, upn_key, display_name, given_name, surname, mail, "
                "account_enabled, usage_location, department, employee_id, job_title, country, "
                "user_type, created, last_sign_in, last_non_interactive, last_successful, "
                "sign_in_missing) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_user_row(u, started) for u in tenant["users"]),
            )
            license_rows = []
            history_rows = []
            for user in tenant["users"]:
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
            for group in tenant.get("groups", []):
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
        from batch.simulator.render import render_users

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
        from batch.simulator.render import render_skus

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
    sign_in = user.get("signIn") if isinstance(user.get("signIn"), dict) else {}

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


def record_change(db: sqlite3.Connection, user_id: str, operation: str) -> None:
    """Append the user's current set of active SKUs to the history, if it changed."""
    skus = sorted(
        r[0]
        for r in db.execute(
            "SELECT DISTINCT sku_id FROM licenses WHERE user_id=? AND state IN "
            "('Active', 'ActiveWithError')",
            (user_id,),
        )
    )
    last = db.execute(
        "SELECT skus FROM history WHERE user_id=? ORDER BY seq DESC LIMIT 1", (user_id,)
    ).fetchone()
    encoded = json.dumps(skus)
    if (last[0] if last else "[]") != encoded:
        db.execute(
            "INSERT INTO history(user_id, at, skus, operation) VALUES(?, ?, ?, ?)",
            (user_id, _precise_iso(), encoded, operation),
        )


def count_applied(db: sqlite3.Connection, target: str, operation: str) -> None:
    """Count one applied write of ``operation`` on ``target``."""
    db.execute(
        "INSERT INTO applied VALUES(?, ?, 1) ON CONFLICT(target, operation) "
        "DO UPDATE SET count = count + 1",
        (target, operation),
    )
