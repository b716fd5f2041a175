//! Reading rows: the column lists each query selects and the mapping back to the API types.
//! Each `*_from_row` returns the inner `Result` separately so a malformed stored value (bad
//! JSON, an unknown enum string) is an `AppError`, not a panic.

use rusqlite::Row;

use super::{from_json, Conversation, ConversationId, Message, MessageId, MessageStatus, Role};
use crate::attachments::{Attachment, AttachmentKind};
use crate::error::{AppError, Result};

pub(super) const CONVERSATION_COLUMNS: &str =
    "id, title, created_at, updated_at, model_id, settings";

pub(super) fn conversation_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Conversation>> {
    let id = ConversationId(r.get(0)?);
    let title = r.get(1)?;
    let created_at = r.get(2)?;
    let updated_at = r.get(3)?;
    let model_id = r.get(4)?;
    let settings: String = r.get(5)?;
    Ok(
        from_json("conversation settings", &settings).map(|settings| Conversation {
            id,
            title,
            created_at,
            updated_at,
            model_id,
            settings,
        }),
    )
}

pub(super) const MESSAGE_COLUMNS: &str =
    "id, conversation_id, role, content, thinking, status, error, \
                               created_at, stats, model_id, settings";

pub(super) fn message_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Message>> {
    let role: String = r.get(2)?;
    let status: String = r.get(5)?;
    let stats: Option<String> = r.get(8)?;
    let settings: Option<String> = r.get(10)?;
    let id = MessageId(r.get(0)?);
    let conversation_id = ConversationId(r.get(1)?);
    let content = r.get(3)?;
    let thinking = r.get(4)?;
    let error = r.get(6)?;
    let created_at = r.get(7)?;
    let model_id = r.get(9)?;
    Ok(Role::parse(&role).and_then(|role| {
        Ok(Message {
            id,
            conversation_id,
            role,
            content,
            thinking,
            status: MessageStatus::parse(&status)?,
            error,
            created_at,
            stats: stats.map(|s| from_json("message stats", &s)).transpose()?,
            model_id,
            settings: settings
                .map(|s| from_json("message settings", &s))
                .transpose()?,
            attachments: Vec::new(),
        })
    }))
}

/// Selected with `message_attachments ma` joined: the last column is the link's video options.
pub(super) const ATTACHMENT_COLUMNS: &str =
    "a.hash, a.kind, a.original_name, a.mime, a.byte_size, a.width, \
                                  a.height, a.duration_ms, a.stored_path, a.thumbnail_path, \
                                  a.fps, ma.video";

pub(super) fn attachment_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<Result<Attachment>> {
    let kind: String = r.get(at + 1)?;
    let byte_size: i64 = r.get(at + 4)?;
    let duration: Option<i64> = r.get(at + 7)?;
    let hash = r.get(at)?;
    let original_name = r.get(at + 2)?;
    let mime = r.get(at + 3)?;
    let width = r.get(at + 5)?;
    let height = r.get(at + 6)?;
    let stored_path = r.get(at + 8)?;
    let thumbnail_path = r.get(at + 9)?;
    let fps = r.get(at + 10)?;
    let video: Option<String> = r.get(at + 11)?;
    let video = match video.map(|v| serde_json::from_str(&v)).transpose() {
        Ok(v) => v,
        Err(source) => {
            return Ok(Err(AppError::StoredJson {
                what: "message video options",
                source,
            }))
        }
    };
    Ok(AttachmentKind::parse(&kind).map(|kind| Attachment {
        hash,
        kind,
        mime,
        byte_size: byte_size as u64,
        width,
        height,
        duration_ms: duration.map(|d| d as u64),
        fps,
        original_name,
        stored_path,
        thumbnail_path,
        video,
    }))
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::System => "system",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "user" => Ok(Self::User),
            "assistant" => Ok(Self::Assistant),
            "system" => Ok(Self::System),
            other => Err(corrupt("messages.role", other)),
        }
    }
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Streaming => "streaming",
            Self::Interrupted => "interrupted",
            Self::Error => "error",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "complete" => Ok(Self::Complete),
            "streaming" => Ok(Self::Streaming),
            "interrupted" => Ok(Self::Interrupted),
            "error" => Ok(Self::Error),
            other => Err(corrupt("messages.status", other)),
        }
    }
}

/// A value the schema's CHECK constraints should have made impossible.
pub(crate) fn corrupt(column: &str, value: &str) -> AppError {
    AppError::Storage(rusqlite::Error::InvalidColumnType(
        0,
        format!("{column} = {value:?}"),
        rusqlite::types::Type::Text,
    ))
}
