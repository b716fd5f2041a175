//! Chat: what crosses IPC (the types of `/work/wt/IPC.md`, mirrored in `ui/src/lib/ipc.ts`) and
//! the pure mappings behind the commands: UI settings → engine options, stored history →
//! engine messages, stored rows → IPC views. The generation worker is in [`run`].

pub mod run;
#[cfg(test)]
mod tests;

use std::path::Path;

use glimpse_models::generation::{FinishReason, GenerationStats as EngineStats, Overrides};
use glimpse_models::processor::resize::smart_resize;
use glimpse_models::processor::{Content, ImageInput, Message, RenderOptions, VideoInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attachments::{Attachment, AttachmentKind, AttachmentStore};
use crate::history::{self, Conversation, MessageStatus, Role};
use crate::video::VideoRequest;

/// One attachment of a message to send: its hash, or its hash with how to send the video
/// (`(string | {hash, video?})` in TypeScript).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AttachmentRef {
    Hash(String),
    #[serde(rename_all = "camelCase")]
    With {
        hash: String,
        #[serde(default)]
        video: Option<VideoRequest>,
    },
}

impl AttachmentRef {
    pub fn hash(&self) -> &str {
        match self {
            Self::Hash(h) | Self::With { hash: h, .. } => h,
        }
    }

    pub fn video(&self) -> Option<&VideoRequest> {
        match self {
            Self::Hash(_) => None,
            Self::With { video, .. } => video.as_ref(),
        }
    }
}

/// The UI's generation settings; every field optional (absent = the checkpoint's default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pixels: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pixels: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<bool>,
}

impl Settings {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            max_new_tokens: self.max_new_tokens,
            ..Overrides::default()
        }
    }

    pub fn render_options(&self) -> RenderOptions {
        RenderOptions {
            add_generation_prompt: true,
            enable_thinking: self.thinking,
            ..RenderOptions::default()
        }
    }

    /// The image pixel budget for this send: each bound the user set, else the checkpoint's.
    pub fn pixel_budget(&self, checkpoint: (usize, usize)) -> (usize, usize) {
        (
            self.min_pixels.unwrap_or(checkpoint.0),
            self.max_pixels.unwrap_or(checkpoint.1),
        )
    }

    fn system_prompt(&self) -> Option<&str> {
        self.system_prompt
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// What one image costs: the loaded model's patch geometry and current pixel budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisionBudget {
    pub patch_size: usize,
    pub merge_size: usize,
    pub min_pixels: usize,
    pub max_pixels: usize,
}

impl VisionBudget {
    /// Tokens a `width`×`height` image becomes: the engine's own `smart_resize`, then one
    /// token per merged patch. `None` when the image cannot be resized (e.g. absurd aspect).
    pub fn image_tokens(&self, width: u32, height: u32) -> Option<usize> {
        let factor = self.patch_size * self.merge_size;
        let (h, w) = smart_resize(
            height as usize,
            width as usize,
            factor,
            self.min_pixels,
            self.max_pixels,
        )
        .ok()?;
        Some((h / self.patch_size) * (w / self.patch_size) / (self.merge_size * self.merge_size))
    }
}

/// The conversation as the engine sees it: the stored messages in order, each user message's
/// attachments (absolute paths in the store) before its text, then nothing for the answer
/// being generated (the template's generation prompt starts it). Assistant messages that
/// produced no text (failed, or the one about to be written) are left out; partial answers of
/// interrupted messages stay, as the user saw them. The settings' system prompt comes first
/// unless the conversation has its own.
pub fn engine_messages(
    stored: &[history::Message],
    store: &AttachmentStore,
    settings: &Settings,
) -> Vec<Message> {
    let mut out = Vec::with_capacity(stored.len() + 1);
    if let Some(system) = settings.system_prompt() {
        if !stored.iter().any(|m| m.role == Role::System) {
            out.push(Message::text("system", system));
        }
    }
    for m in stored {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
        };
        if m.role == Role::Assistant && (m.content.is_empty() || m.status == MessageStatus::Error) {
            continue;
        }
        let mut content: Vec<Content> = m
            .attachments
            .iter()
            .map(|a| {
                let path = store.resolve(&a.stored_path);
                match a.kind {
                    AttachmentKind::Image => Content::Image(ImageInput::File(path)),
                    AttachmentKind::Video => Content::Video(VideoInput::File {
                        path,
                        options: a
                            .video
                            .clone()
                            .unwrap_or_default()
                            .options(a.duration_ms.map(|ms| ms as f64 / 1000.0)),
                    }),
                }
            })
            .collect();
        if !m.content.is_empty() || content.is_empty() {
            content.push(Content::Text(m.content.clone()));
        }
        out.push(Message::new(role, content));
    }
    out
}

/// An attachment as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentView {
    pub hash: String,
    pub kind: AttachmentKind,
    pub mime: String,
    pub byte_size: u64,
    pub file_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vision_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// The options a sent video was sent with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoRequest>,
}

impl AttachmentView {
    pub fn new(a: &Attachment, store: &AttachmentStore, budget: Option<VisionBudget>) -> Self {
        let vision_tokens = match (a.kind, a.width, a.height, budget) {
            (AttachmentKind::Image, Some(w), Some(h), Some(b)) => b.image_tokens(w, h),
            _ => None,
        };
        Self {
            hash: a.hash.clone(),
            kind: a.kind,
            mime: a.mime.clone(),
            byte_size: a.byte_size,
            file_name: a.original_name.clone().unwrap_or_else(|| a.hash.clone()),
            width: a.width,
            height: a.height,
            url: asset_url(&store.resolve(&a.stored_path)),
            thumbnail_url: a
                .thumbnail_path
                .as_ref()
                .map(|t| asset_url(&store.resolve(t))),
            vision_tokens,
            duration_ms: a.duration_ms,
            fps: a.fps,
            video: a.video.clone(),
        }
    }
}

/// What `convertFileSrc` of `@tauri-apps/api/core` returns for `path`: the asset protocol's
/// URL with the path percent-encoded like `encodeURIComponent`.
pub fn asset_url(path: &Path) -> String {
    let raw = path.to_string_lossy();
    let mut encoded = String::with_capacity(raw.len() * 3 / 2);
    for b in raw.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b);
        if keep {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    if cfg!(any(windows, target_os = "android")) {
        format!("http://asset.localhost/{encoded}")
    } else {
        format!("asset://localhost/{encoded}")
    }
}

/// Timing and counts of one answer, as stored with the message and sent in `done`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    pub decode_tokens_per_s: f64,
    pub finish_reason: FinishReason,
    /// From the start of the answer (media decoding included) to its first token; absent when
    /// none came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<f64>,
}

impl From<&EngineStats> for StatsView {
    fn from(s: &EngineStats) -> Self {
        Self {
            prompt_tokens: s.prompt_tokens,
            generated_tokens: s.token_ids.len(),
            prefill_ms: s.prefill_ms,
            decode_tokens_per_s: s.decode_tokens_per_s,
            finish_reason: s.finish_reason,
            first_token_ms: None,
        }
    }
}

/// `{ kind, message }`, as every error crosses IPC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorView {
    pub kind: String,
    pub message: String,
}

impl From<&crate::error::AppError> for ErrorView {
    fn from(e: &crate::error::AppError) -> Self {
        Self {
            kind: e.kind().to_owned(),
            message: e.to_string(),
        }
    }
}

/// One event of an answer's stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum GenerationEvent {
    #[serde(rename_all = "camelCase")]
    Started {
        message_id: i64,
        prompt_tokens: usize,
    },
    #[serde(rename_all = "camelCase")]
    Token {
        text: String,
        thinking: String,
        elapsed_ms: f64,
    },
    Done {
        stats: StatsView,
    },
    Error {
        error: ErrorView,
    },
    /// Work before the first token, in order: `video` counts extracted video frames, then
    /// (after `started`) `image` and `videoFrames` the vision tower's blocks over the images and
    /// the videos, `prompt` the decoder's layers over the whole prompt.
    Progress {
        stage: &'static str,
        done: usize,
        total: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMessage {
    pub id: i64,
    pub role: Role,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    pub status: MessageStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attachments: Vec<AttachmentView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Value>,
}

impl StoredMessage {
    pub fn new(
        m: &history::Message,
        store: &AttachmentStore,
        budget: Option<VisionBudget>,
    ) -> Self {
        Self {
            id: m.id.0,
            role: m.role,
            content: m.content.clone(),
            thinking: (!m.thinking.is_empty()).then(|| m.thinking.clone()),
            status: m.status,
            error: m.error.clone(),
            attachments: m
                .attachments
                .iter()
                .map(|a| AttachmentView::new(a, store, budget))
                .collect(),
            stats: m.stats.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    pub id: i64,
    pub title: String,
    /// ISO 8601 UTC, as `Date` parses it.
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl From<&Conversation> for ConversationSummary {
    fn from(c: &Conversation) -> Self {
        Self {
            id: c.id.0,
            title: c.title.clone(),
            updated_at: iso8601(c.updated_at),
            model: c.model_id.clone(),
        }
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso8601(ms: i64) -> String {
    let t = crate::time::Utc::from_epoch_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}
