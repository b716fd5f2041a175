//! The history schema, as a list of forward migrations keyed by `PRAGMA user_version`.
//!
//! Migration `i` (1-based) takes a database at version `i - 1` to version `i`. A released
//! migration is never edited: a schema change is a new entry at the end of [`MIGRATIONS`].
//! `tests::v1_migrated_matches_a_fresh_database` builds a database from a frozen copy of the
//! version-1 SQL, migrates it, and compares its shape with a fresh one, so an in-place edit of
//! a released migration fails a test.

use rusqlite::Connection;

use crate::error::{AppError, Result};

/// One step of the schema.
pub(crate) struct Migration {
    /// What the step does, for error messages and readers.
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Version 1: the first release.
///
/// Times are milliseconds since the Unix epoch (UTC). Settings and stats are JSON text, opaque
/// to storage: their shape belongs to the generation code. Attachment paths are relative to the
/// app's data folder, so the folder can move. Ids use AUTOINCREMENT so an id the UI still holds
/// never comes back as a different row after a delete.
pub(crate) const V1_SQL: &str = r#"
CREATE TABLE conversations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    model_id    TEXT,
    settings    TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX conversations_by_update ON conversations (updated_at DESC, id DESC);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT    NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content         TEXT    NOT NULL DEFAULT '',
    thinking        TEXT    NOT NULL DEFAULT '',
    status          TEXT    NOT NULL
                    CHECK (status IN ('complete', 'streaming', 'interrupted', 'error')),
    error           TEXT,
    created_at      INTEGER NOT NULL,
    stats           TEXT,
    model_id        TEXT,
    settings        TEXT
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';

CREATE TABLE attachments (
    hash            TEXT    PRIMARY KEY,
    kind            TEXT    NOT NULL CHECK (kind IN ('image', 'video')),
    original_name   TEXT,
    mime            TEXT    NOT NULL,
    byte_size       INTEGER NOT NULL,
    width           INTEGER,
    height          INTEGER,
    duration_ms     INTEGER,
    stored_path     TEXT    NOT NULL,
    thumbnail_path  TEXT,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE message_attachments (
    message_id      INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    attachment_hash TEXT    NOT NULL REFERENCES attachments (hash) ON DELETE RESTRICT,
    PRIMARY KEY (message_id, position)
) WITHOUT ROWID;
CREATE INDEX message_attachments_by_hash ON message_attachments (attachment_hash);
"#;

/// Every migration, in order. The schema version is `MIGRATIONS.len()`.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "initial schema",
        sql: V1_SQL,
    },
    Migration {
        name: "video frame rate and per-message video options",
        sql: V2_SQL,
    },
];

/// Version 2 (issue 7): a video's frame rate (REAL: 29.97), and the options a message sends a
/// video with (JSON of `VideoRequest`; NULL = the model's defaults over the whole video).
pub(crate) const V2_SQL: &str = r#"
ALTER TABLE attachments ADD COLUMN fps REAL;
ALTER TABLE message_attachments ADD COLUMN video TEXT;
"#;

/// The schema version this build writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings `conn` from whatever version it is at to the end of `migrations`.
///
/// Each step runs in its own transaction together with its `user_version` bump, so a failure
/// leaves the database at the last complete version. A database newer than `migrations` is
/// refused, not opened: this build does not know what the newer columns mean.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<i64> {
    let latest = migrations.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > latest {
        return Err(AppError::SchemaTooNew {
            found,
            supported: latest,
        });
    }
    for (index, migration) in migrations.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql)
            .map_err(|source| AppError::Migration {
                version,
                name: migration.name,
                source,
            })?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version-1 schema exactly as released. Never update this copy: it stands for the
    /// databases already on people's disks.
    const FROZEN_V1_SQL: &str = include_str!("testdata/schema_v1.sql");

    fn user_version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    /// Columns, indexes and foreign keys of every table, in a comparable form. (`sqlite_master`
    /// text differs between `CREATE TABLE` and `ALTER TABLE ADD COLUMN`, so it is not compared.)
    fn shape(conn: &Connection) -> Vec<String> {
        let mut tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        tables.sort();
        let mut out = Vec::new();
        for t in tables {
            for (pragma, cols) in [
                ("table_info", "name, type, \"notnull\", dflt_value, pk"),
                ("index_list", "name, \"unique\", partial"),
                ("foreign_key_list", "\"table\", \"from\", \"to\", on_delete"),
            ] {
                let sql = format!("SELECT {cols} FROM pragma_{pragma}('{t}') ORDER BY 1, 2");
                let mut stmt = conn.prepare(&sql).unwrap();
                let n = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| {
                        let mut s = format!("{t}.{pragma}:");
                        for i in 0..n {
                            let v: rusqlite::types::Value = r.get(i)?;
                            s.push_str(&format!(" {v:?}"));
                        }
                        Ok(s)
                    })
                    .unwrap();
                for row in rows {
                    out.push(row.unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn fresh_database_reaches_latest() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), LATEST_VERSION);
        assert_eq!(user_version(&conn), LATEST_VERSION);
        // Idempotent: a second open applies nothing.
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), LATEST_VERSION);
    }

    #[test]
    fn v1_migrated_matches_a_fresh_database() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh, MIGRATIONS).unwrap();

        let mut old = Connection::open_in_memory().unwrap();
        old.execute_batch(FROZEN_V1_SQL).unwrap();
        old.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut old, MIGRATIONS).unwrap();

        assert_eq!(shape(&old), shape(&fresh));
        assert!(!shape(&fresh).is_empty());
    }

    #[test]
    fn steps_apply_in_order_and_a_failing_step_rolls_back() {
        let steps = [
            Migration {
                name: "a",
                sql: "CREATE TABLE a (x INTEGER);",
            },
            Migration {
                name: "b",
                sql: "ALTER TABLE a ADD COLUMN y TEXT NOT NULL DEFAULT 'b';",
            },
            Migration {
                name: "broken",
                sql: "CREATE TABLE c (z INTEGER); INSERT INTO nowhere VALUES (1);",
            },
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, &steps[..1]).unwrap(), 1);
        conn.execute("INSERT INTO a (x) VALUES (7)", []).unwrap();

        match migrate(&mut conn, &steps) {
            Err(AppError::Migration { version, name, .. }) => {
                assert_eq!((version, name), (3, "broken"))
            }
            other => panic!("expected a Migration error, got {other:?}"),
        }
        // Step 2 committed, step 3 left nothing behind.
        assert_eq!(user_version(&conn), 2);
        let y: String = conn.query_row("SELECT y FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(y, "b");
        let c_exists: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(c_exists, 0);
    }

    #[test]
    fn newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST_VERSION + 1)
            .unwrap();
        match migrate(&mut conn, MIGRATIONS) {
            Err(AppError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (LATEST_VERSION + 1, LATEST_VERSION));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }
}
