//! Conversation export: Markdown for reading, JSON for keeping.

use std::fmt::Write;

use serde::Serialize;

use super::{Conversation, Message, MessageStatus, Role, TimestampMs};
use crate::attachments::AttachmentKind;
use crate::error::{AppError, Result};

/// Bumped when the exported JSON changes shape incompatibly.
pub const JSON_EXPORT_VERSION: u32 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonExport<'a> {
    format: &'static str,
    version: u32,
    conversation: &'a Conversation,
    messages: &'a [Message],
}

pub(super) fn json(conversation: &Conversation, messages: &[Message]) -> Result<String> {
    serde_json::to_string_pretty(&JsonExport {
        format: "glimpse-conversation",
        version: JSON_EXPORT_VERSION,
        conversation,
        messages,
    })
    .map_err(|source| AppError::StoredJson {
        what: "the JSON export",
        source,
    })
}

pub(super) fn markdown(conversation: &Conversation, messages: &[Message]) -> String {
    let mut out = String::new();
    // `write!` to a String cannot fail; the results are ignored for that reason only.
    let _ = writeln!(out, "# {}\n", one_line(&conversation.title));
    let mut meta = format!(
        "Exported from Glimpse. Started {}",
        iso_utc(conversation.created_at)
    );
    if let Some(model) = &conversation.model_id {
        let _ = write!(meta, ", model {model}");
    }
    let _ = writeln!(out, "_{meta}._\n");

    for m in messages {
        let heading = match m.role {
            Role::User => "User",
            Role::Assistant => "Assistant",
            Role::System => "System",
        };
        let _ = writeln!(out, "## {heading}\n");
        for a in &m.attachments {
            let name = a.original_name.as_deref().unwrap_or(&a.hash);
            let what = match (a.kind, a.width, a.height) {
                (AttachmentKind::Image, Some(w), Some(h)) => format!("image, {w}×{h}"),
                (AttachmentKind::Image, ..) => "image".to_owned(),
                (AttachmentKind::Video, ..) => "video".to_owned(),
            };
            let link = if a.kind == AttachmentKind::Image {
                "!"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{link}[{}]({}) ({what})\n",
                escape_link_text(name),
                a.stored_path
            );
        }
        if !m.thinking.is_empty() {
            let _ = writeln!(
                out,
                "<details><summary>Thinking</summary>\n\n{}\n\n</details>\n",
                m.thinking.trim_end()
            );
        }
        if !m.content.is_empty() {
            let _ = writeln!(out, "{}\n", m.content.trim_end());
        }
        match m.status {
            MessageStatus::Complete => {}
            MessageStatus::Streaming => out.push_str("_(still being written when exported)_\n\n"),
            MessageStatus::Interrupted => out.push_str("_(interrupted)_\n\n"),
            MessageStatus::Error => {
                let why = m.error.as_deref().unwrap_or("unknown error");
                let _ = writeln!(out, "_(failed: {})_\n", one_line(why));
            }
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn escape_link_text(s: &str) -> String {
    one_line(s).replace('[', "\\[").replace(']', "\\]")
}

/// `2026-11-29 18:37 UTC` from epoch milliseconds.
pub(super) fn iso_utc(ms: TimestampMs) -> String {
    let t = crate::time::Utc::from_epoch_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

#[cfg(test)]
mod tests {
    use super::iso_utc;

    #[test]
    fn utc_dates() {
        assert_eq!(iso_utc(0), "1970-01-01 00:00 UTC");
        // 2024-02-29 12:34:56 UTC, a leap day.
        assert_eq!(iso_utc(1_709_210_096_000), "2024-02-29 12:34 UTC");
        assert_eq!(iso_utc(-60_000), "1969-12-31 23:59 UTC");
    }
}
