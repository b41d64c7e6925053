"""Simulated tenant, the SQLite schema and the bookkeeping every write shares.

Licenses live in one row per (user, SKU, source): source ``""`` is a direct assignment, a
group id an inherited one. A user consumes one seat of a SKU when any of its rows for that
SKU is active (:data:`ACTIVE_STATES`), however many sources it has; triggers keep the seat
counts. Every change to a user's set of active SKUs is appended to ``history``
(:func:`record_change`) so tests can prove a swap never left a user unlicensed, and every
applied write is counted in ``applied`` (:func:`count_applied`).

This module imports nothing from the simulator: the store, the licensing rules and the
renderers all build on it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time

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
-- $filter compares strings without case (as Graph does): lookups by name or id use these
CREATE INDEX IF NOT EXISTS users_by_upn ON users(upn COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS users_by_id ON users(id COLLATE NOCASE);
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
REBUILD_SEATS = """
DELETE FROM holders;
DELETE FROM seat_use;
INSERT INTO holders SELECT sku_id, user_id, COUNT(*) FROM licenses
    WHERE state IN ('Active', 'ActiveWithError') GROUP BY sku_id, user_id;
INSERT INTO seat_use SELECT sku_id, COUNT(*) FROM holders GROUP BY sku_id;
"""

ACTIVE_STATES = ("Active", "ActiveWithError")


def now_iso(at: float | None = None) -> str:
    """An ISO-8601 UTC timestamp in Graph's style (``2025-01-31T12:00:00Z``)."""
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def precise_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


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
            (user_id, precise_iso(), encoded, operation),
        )


def count_applied(db: sqlite3.Connection, target: str, operation: str) -> None:
    """Count one applied write of ``operation`` on ``target``."""
    db.execute(
        "INSERT INTO applied VALUES(?, ?, 1) ON CONFLICT(target, operation) "
        "DO UPDATE SET count = count + 1",
        (target, operation),
    )
