"""The ledger's SQLite schema as numbered migrations (``PRAGMA user_version`` is the version).

Kept apart from the store so the schema's history reads in one place; never edit a released
step, append one.
"""

from __future__ import annotations

# Each step takes the schema from version i to i + 1; never edit a released step, append one.
MIGRATIONS: list[tuple[str, ...]] = [(
    """CREATE TABLE items (
        id INTEGER PRIMARY KEY, wiki TEXT NOT NULL, source TEXT NOT NULL, sha1 TEXT NOT NULL,
        size INTEGER NOT NULL, target TEXT NOT NULL, final_name TEXT, state TEXT NOT NULL,
        reason TEXT, message TEXT, filekey TEXT, "offset" INTEGER NOT NULL DEFAULT 0,
        chunk_size INTEGER, stash_created_at TEXT, warnings TEXT, decision TEXT, flow_run_id TEXT,
        task_run_id TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, UNIQUE (wiki, source))""",
    "CREATE INDEX items_by_sha1 ON items (wiki, sha1)",
    "CREATE INDEX items_by_state ON items (wiki, state, updated_at)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
        from_state TEXT, to_state TEXT NOT NULL, reason TEXT, message TEXT, at TEXT NOT NULL,
        run_id TEXT)""",
    "CREATE INDEX events_by_item ON events (item_id, id)",
    "CREATE TABLE schema_history (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
), (
    # v2: what a late publish needs (page text, comment, tags), so a needs-review item can be
    # resolved hours later without the batch's parameters.
    "ALTER TABLE items ADD COLUMN params TEXT",
), (
    # v3: the intent of a write whose answer may be lost (a publish), and the lease that keeps two
    # runs from driving one file at once.
    "ALTER TABLE items ADD COLUMN intent TEXT",
    "ALTER TABLE items ADD COLUMN lease_owner TEXT",
    "ALTER TABLE items ADD COLUMN lease_until TEXT",
)]
