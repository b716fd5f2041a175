-- Glimpse history schema version 1, frozen as released. Never edit this file.
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
