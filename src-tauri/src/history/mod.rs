//! Chat history in SQLite: conversations, their messages, and the attachments they show.
//!
//! One [`History`] per app, opened once at start-up on `<app data>/history.sqlite3`. It is
//! `Send` but not `Sync` (it owns one SQLite connection): the app keeps it behind a `Mutex`.
//! An answer being generated is written through a [`StreamWriter`], which owns a second
//! connection so the generation thread never waits for the UI's lock; SQLite's WAL mode lets
//! the two write in turn and read at any time.
//!
//! Crash safety: the writer flushes buffered text at least every [`FlushPolicy::interval`]; a
//! message still marked `streaming` when the history is next opened was cut off by a crash,
//! and [`History::open`] marks it `interrupted`, keeping the text up to the last flush.

mod export;
mod gc;
mod migrations;
mod rows;
mod stream;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attachments::Attachment;
use crate::error::{AppError, Result};
use crate::video::VideoRequest;

use rows::{
    attachment_from_row, conversation_from_row, message_from_row, ATTACHMENT_COLUMNS,
    CONVERSATION_COLUMNS, MESSAGE_COLUMNS,
};

pub use gc::GcReport;
pub use migrations::LATEST_VERSION;
pub(crate) use rows::corrupt;
pub use stream::{Clock, FlushPolicy, StreamWriter, SystemClock};

/// How long another connection's write lock is waited for before a write fails. The only
/// other writer is this app's own stream writer, whose writes take well under a millisecond.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    User,
    Assistant,
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageStatus {
    Complete,
    /// An answer still being generated.
    Streaming,
    /// Stopped before the end: cancelled, or the app quit or crashed mid-answer.
    Interrupted,
    /// Generation failed; [`Message::error`] says why.
    Error,
}

/// How a streamed answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageEnd {
    Complete,
    Interrupted,
    Error(String),
}

/// Millisecond UTC timestamps, as JavaScript's `Date` takes them.
pub type TimestampMs = i64;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub id: ConversationId,
    pub title: String,
    pub created_at: TimestampMs,
    /// Bumped by every new message and every finished answer: the list's sort key.
    pub updated_at: TimestampMs,
    /// The model last chosen for this conversation.
    pub model_id: Option<String>,
    /// The conversation's generation settings, as the settings code wrote them.
    pub settings: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub role: Role,
    pub content: String,
    /// The model's reasoning (Thinking models); empty otherwise.
    pub thinking: String,
    pub status: MessageStatus,
    /// Why generation failed, for [`MessageStatus::Error`].
    pub error: Option<String>,
    pub created_at: TimestampMs,
    /// Timing and token counts of the generation, as the generation code reported them.
    pub stats: Option<Value>,
    /// The model and settings that produced an assistant message.
    pub model_id: Option<String>,
    pub settings: Option<Value>,
    /// In the order they were attached.
    pub attachments: Vec<Attachment>,
}

/// The chat history database. See the module docs for threading and crash safety.
pub struct History {
    conn: Connection,
    path: PathBuf,
    recovered: Vec<MessageId>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("path", &self.path).finish()
    }
}

impl History {
    /// Opens (creating if needed) the history at `path`, upgrades its schema, and marks
    /// answers a crash left `streaming` as `interrupted`.
    ///
    /// Call once per app run: a second `open` while an answer streams would mark that live
    /// answer interrupted. Fails with [`AppError::SchemaTooNew`] on a database from a newer
    /// Glimpse, leaving it untouched.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| AppError::UnreadableFolder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = connect(&path)?;
        migrations::migrate(&mut conn, migrations::MIGRATIONS)?;
        let recovered = conn
            .prepare(
                "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming' \
                 RETURNING id",
            )?
            .query_map([], |r| r.get(0).map(MessageId))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Self {
            conn,
            path,
            recovered,
        })
    }

    /// The answers [`History::open`] found cut off by a crash and marked interrupted.
    pub fn recovered_on_open(&self) -> &[MessageId] {
        &self.recovered
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn create_conversation(
        &mut self,
        title: &str,
        model_id: Option<&str>,
        settings: &Value,
    ) -> Result<Conversation> {
        let now = now_ms();
        let settings_text = to_json("conversation settings", settings)?;
        self.conn.execute(
            "INSERT INTO conversations (title, created_at, updated_at, model_id, settings) \
             VALUES (?1, ?2, ?2, ?3, ?4)",
            params![title, now, model_id, settings_text],
        )?;
        self.conversation(ConversationId(self.conn.last_insert_rowid()))
    }

    pub fn conversation(&self, id: ConversationId) -> Result<Conversation> {
        self.conn
            .query_row(
                &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1"),
                [id.0],
                conversation_from_row,
            )
            .optional()?
            .ok_or(AppError::ConversationNotFound(id.0))?
    }

    /// Conversations, most recently updated first. With a non-blank `search`, only those whose
    /// title or any message text contains it (case-insensitive for ASCII letters; SQLite's
    /// `LIKE` folds no other case). Substring matching works for every script, which a word
    /// index would not (Chinese and Japanese have no spaces).
    pub fn list_conversations(&self, search: Option<&str>) -> Result<Vec<Conversation>> {
        let pattern = search
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| format!("%{}%", escape_like(s)));
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c \
             WHERE ?1 IS NULL \
                OR c.title LIKE ?1 ESCAPE '\\' \
                OR EXISTS (SELECT 1 FROM messages m \
                           WHERE m.conversation_id = c.id AND m.content LIKE ?1 ESCAPE '\\') \
             ORDER BY c.updated_at DESC, c.id DESC"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([pattern], conversation_from_row)?;
        rows.map(|r| r?).collect()
    }

    pub fn rename(&mut self, id: ConversationId, title: &str) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE conversations SET title = ?2 WHERE id = ?1",
            params![id.0, title],
        )?;
        expect_one(n, AppError::ConversationNotFound(id.0))
    }

    /// Records the model and settings the conversation now uses.
    pub fn set_conversation_model(
        &mut self,
        id: ConversationId,
        model_id: Option<&str>,
        settings: &Value,
    ) -> Result<()> {
        let settings_text = to_json("conversation settings", settings)?;
        let n = self.conn.execute(
            "UPDATE conversations SET model_id = ?2, settings = ?3 WHERE id = ?1",
            params![id.0, model_id, settings_text],
        )?;
        expect_one(n, AppError::ConversationNotFound(id.0))
    }

    /// Deletes the conversation, its messages and their attachment links. Attachment files
    /// stay until [`History::collect_garbage`], since another conversation may show them.
    pub fn delete(&mut self, id: ConversationId) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM conversations WHERE id = ?1", [id.0])?;
        expect_one(n, AppError::ConversationNotFound(id.0))
    }

    /// Records an imported attachment so messages can refer to it by hash. Importing the same
    /// content again only refreshes its last-use time (which protects it from garbage
    /// collection until it is sent).
    pub fn record_attachment(&mut self, attachment: &Attachment) -> Result<()> {
        let now = now_ms();
        self.conn.execute(
            "INSERT INTO attachments (hash, kind, original_name, mime, byte_size, width, height, \
                 duration_ms, stored_path, thumbnail_path, created_at, last_used_at, fps) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12) \
             ON CONFLICT (hash) DO UPDATE SET last_used_at = excluded.last_used_at, \
                 thumbnail_path = coalesce(attachments.thumbnail_path, excluded.thumbnail_path)",
            params![
                attachment.hash,
                attachment.kind.as_str(),
                attachment.original_name,
                attachment.mime,
                attachment.byte_size as i64,
                attachment.width,
                attachment.height,
                attachment.duration_ms.map(|d| d as i64),
                attachment.stored_path,
                attachment.thumbnail_path,
                now,
                attachment.fps,
            ],
        )?;
        Ok(())
    }

    /// The stored attachment `hash` (without per-message options); [`AppError::UnknownAttachment`]
    /// if it was never imported.
    pub fn attachment(&self, hash: &str) -> Result<Attachment> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {ATTACHMENT_COLUMNS} FROM attachments a \
                     LEFT JOIN (SELECT NULL AS video) ma WHERE a.hash = ?1"
                ),
                [hash],
                |r| attachment_from_row(r, 0),
            )
            .optional()?
            .ok_or_else(|| AppError::UnknownAttachment(hash.to_owned()))?
    }

    /// Adds a user message showing the given attachments (by hash, in order), in one
    /// transaction. Fails with [`AppError::UnknownAttachment`] for a hash never recorded.
    pub fn add_user_message<S: AsRef<str>>(
        &mut self,
        conversation: ConversationId,
        text: &str,
        attachment_hashes: &[S],
    ) -> Result<MessageId> {
        let refs: Vec<(&str, Option<&VideoRequest>)> = attachment_hashes
            .iter()
            .map(|h| (h.as_ref(), None))
            .collect();
        self.add_user_message_with(conversation, text, &refs)
    }

    /// [`History::add_user_message`] with the options each video is sent with, stored with the
    /// message (an empty request is stored as none).
    pub fn add_user_message_with(
        &mut self,
        conversation: ConversationId,
        text: &str,
        attachments: &[(&str, Option<&VideoRequest>)],
    ) -> Result<MessageId> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let id = insert_message(&tx, conversation, Role::User, text, "complete", None, now)?;
        for (position, (hash, video)) in attachments.iter().enumerate() {
            let hash = *hash;
            let video = video
                .filter(|v| !v.is_empty())
                .map(|v| {
                    serde_json::to_string(v).map_err(|source| AppError::StoredJson {
                        what: "message video options",
                        source,
                    })
                })
                .transpose()?;
            let known = tx
                .query_row("SELECT 1 FROM attachments WHERE hash = ?1", [hash], |_| {
                    Ok(())
                })
                .optional()?
                .is_some();
            if !known {
                return Err(AppError::UnknownAttachment(hash.to_owned()));
            }
            tx.execute(
                "INSERT INTO message_attachments (message_id, position, attachment_hash, video) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![id.0, position as i64, hash, video],
            )?;
            tx.execute(
                "UPDATE attachments SET last_used_at = ?2 WHERE hash = ?1",
                params![hash, now],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Adds a system message (a system prompt kept with the conversation).
    pub fn add_system_message(
        &mut self,
        conversation: ConversationId,
        text: &str,
    ) -> Result<MessageId> {
        let tx = self.conn.transaction()?;
        let id = insert_message(
            &tx,
            conversation,
            Role::System,
            text,
            "complete",
            None,
            now_ms(),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Starts an empty assistant message, status `streaming`, recording the model and settings
    /// that produce it. Write its text through [`History::stream_writer`].
    pub fn begin_assistant_message(
        &mut self,
        conversation: ConversationId,
        model_id: &str,
        settings: &Value,
    ) -> Result<MessageId> {
        let settings_text = to_json("message settings", settings)?;
        let tx = self.conn.transaction()?;
        let id = insert_message(
            &tx,
            conversation,
            Role::Assistant,
            "",
            "streaming",
            Some((model_id, &settings_text)),
            now_ms(),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// A writer for the streaming message `id`, on its own connection; move it to the
    /// generation thread. Fails if `id` is not a streaming message.
    pub fn stream_writer(&self, id: MessageId) -> Result<StreamWriter> {
        self.stream_writer_with(id, FlushPolicy::default(), std::sync::Arc::new(SystemClock))
    }

    /// [`History::stream_writer`] with an explicit flush policy and clock (tests, tuning).
    pub fn stream_writer_with(
        &self,
        id: MessageId,
        policy: FlushPolicy,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Result<StreamWriter> {
        self.expect_streaming(id)?;
        StreamWriter::start(connect(&self.path)?, id, policy, clock)
    }

    /// Ends a streaming message without a writer (e.g. generation failed before the first
    /// token). With a writer, use [`StreamWriter::finish`], which also flushes its buffer.
    pub fn finish_assistant_message(
        &mut self,
        id: MessageId,
        end: MessageEnd,
        stats: Option<&Value>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        stream::finish(&tx, id, "", "", &end, stats)?;
        tx.commit()?;
        Ok(())
    }

    pub fn message(&self, id: MessageId) -> Result<Message> {
        let mut message = self
            .conn
            .query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
                [id.0],
                message_from_row,
            )
            .optional()?
            .ok_or(AppError::MessageNotFound(id.0))??;
        message.attachments = self.attachments_of(id)?;
        Ok(message)
    }

    /// The conversation's messages in order, each with its attachments.
    pub fn messages(&self, conversation: ConversationId) -> Result<Vec<Message>> {
        // Distinguish "no such conversation" from "no messages yet".
        self.conversation(conversation)?;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 ORDER BY id"
        ))?;
        let mut messages = stmt
            .query_map([conversation.0], message_from_row)?
            .map(|r| r?)
            .collect::<Result<Vec<_>>>()?;

        let mut stmt = self.conn.prepare(&format!(
            "SELECT ma.message_id, {ATTACHMENT_COLUMNS} FROM message_attachments ma \
             JOIN attachments a ON a.hash = ma.attachment_hash \
             JOIN messages m ON m.id = ma.message_id \
             WHERE m.conversation_id = ?1 ORDER BY ma.message_id, ma.position"
        ))?;
        let links = stmt.query_map([conversation.0], |r| {
            Ok((MessageId(r.get(0)?), attachment_from_row(r, 1)?))
        })?;
        for link in links {
            let (id, attachment) = link?;
            let attachment = attachment?;
            if let Some(m) = messages.iter_mut().find(|m| m.id == id) {
                m.attachments.push(attachment);
            }
        }
        Ok(messages)
    }

    /// Deletes every message after `id` in its conversation (regenerate: keep the question,
    /// drop the answers). Returns how many were deleted.
    pub fn truncate_after(&mut self, id: MessageId) -> Result<usize> {
        self.truncate(id, ">")
    }

    /// Deletes `id` and every message after it (edit-and-resend: the edited question is added
    /// again as a new message). Returns how many were deleted.
    pub fn truncate_from(&mut self, id: MessageId) -> Result<usize> {
        self.truncate(id, ">=")
    }

    fn truncate(&mut self, id: MessageId, op: &str) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let conversation: i64 = tx
            .query_row(
                "SELECT conversation_id FROM messages WHERE id = ?1",
                [id.0],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(AppError::MessageNotFound(id.0))?;
        let n = tx.execute(
            &format!("DELETE FROM messages WHERE conversation_id = ?1 AND id {op} ?2"),
            params![conversation, id.0],
        )?;
        tx.execute(
            "UPDATE conversations SET updated_at = ?2 WHERE id = ?1",
            params![conversation, now_ms()],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// The conversation as Markdown: a title, then each message under its role, thinking in a
    /// collapsed `<details>`, attachments as links relative to the app's data folder.
    pub fn export_markdown(&self, conversation: ConversationId) -> Result<String> {
        let c = self.conversation(conversation)?;
        Ok(export::markdown(&c, &self.messages(conversation)?))
    }

    /// The conversation as pretty JSON (`{"format": "glimpse-conversation", "version": 1,
    /// "conversation": …, "messages": […]}`), the same shapes the UI receives.
    pub fn export_json(&self, conversation: ConversationId) -> Result<String> {
        let c = self.conversation(conversation)?;
        export::json(&c, &self.messages(conversation)?)
    }

    fn attachments_of(&self, id: MessageId) -> Result<Vec<Attachment>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT ma.message_id, {ATTACHMENT_COLUMNS} FROM message_attachments ma \
             JOIN attachments a ON a.hash = ma.attachment_hash \
             WHERE ma.message_id = ?1 ORDER BY ma.position"
        ))?;
        let rows = stmt.query_map([id.0], |r| attachment_from_row(r, 1))?;
        rows.map(|r| r?).collect()
    }

    fn expect_streaming(&self, id: MessageId) -> Result<()> {
        let status: Option<String> = self
            .conn
            .query_row("SELECT status FROM messages WHERE id = ?1", [id.0], |r| {
                r.get(0)
            })
            .optional()?;
        match status.as_deref() {
            None => Err(AppError::MessageNotFound(id.0)),
            Some("streaming") => Ok(()),
            Some(_) => Err(AppError::MessageNotStreaming(id.0)),
        }
    }

    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Opens a connection with the settings every history connection needs.
fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL: readers never block the writer and a crash never corrupts committed data.
    // synchronous=NORMAL in WAL mode: a power cut may drop the last commits, never corrupt.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    debug_assert_eq!(mode.to_ascii_lowercase(), "wal");
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Off by default in SQLite, per connection: without it the cascades do nothing.
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    conversation: ConversationId,
    role: Role,
    text: &str,
    status: &str,
    model: Option<(&str, &str)>,
    now: TimestampMs,
) -> Result<MessageId> {
    let touched = tx.execute(
        "UPDATE conversations SET updated_at = ?2 WHERE id = ?1",
        params![conversation.0, now],
    )?;
    expect_one(touched, AppError::ConversationNotFound(conversation.0))?;
    tx.execute(
        "INSERT INTO messages (conversation_id, role, content, status, created_at, model_id, \
             settings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            conversation.0,
            role.as_str(),
            text,
            status,
            now,
            model.map(|m| m.0),
            model.map(|m| m.1)
        ],
    )?;
    Ok(MessageId(tx.last_insert_rowid()))
}

fn to_json(what: &'static str, value: &Value) -> Result<String> {
    serde_json::to_string(value).map_err(|source| AppError::StoredJson { what, source })
}

fn from_json(what: &'static str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|source| AppError::StoredJson { what, source })
}

fn expect_one(changed: usize, otherwise: AppError) -> Result<()> {
    if changed == 0 {
        Err(otherwise)
    } else {
        Ok(())
    }
}

/// Escapes `LIKE` wildcards so a search for `50%` or `snake_case` means what it says.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn now_ms() -> TimestampMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
