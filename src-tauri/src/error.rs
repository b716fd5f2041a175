//! The app's one error type. It crosses IPC as `{ kind, message }` so the UI can branch on
//! `kind` and show `message` as a sentence (see `ui/src/lib/ipc.ts`, `AppError`).

use std::path::PathBuf;

use serde::ser::SerializeStruct;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The OS gave no per-user data folder (no `$HOME`, for one).
    #[error("cannot find this user's data folder: {0}")]
    NoDataDir(String),

    /// A folder where models are looked for exists but cannot be listed.
    #[error("cannot read the model folder {}: {source}", path.display())]
    UnreadableFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The OS refused to start a helper thread (the history's flush thread).
    #[error("cannot start a background thread: {0}")]
    Thread(std::io::Error),

    /// The history database refused or failed a read or write.
    #[error("the chat history database failed: {0}")]
    Storage(#[from] rusqlite::Error),

    /// A schema upgrade of the history database failed; the database stays at the last
    /// complete version.
    #[error("upgrading the chat history to schema {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    /// The history database was written by a newer Glimpse; opening it could lose data.
    #[error(
        "the chat history was written by a newer version of Glimpse (schema {found}, this version \
         knows up to {supported}); update Glimpse to open it"
    )]
    SchemaTooNew { found: i64, supported: i64 },

    /// A stored JSON column (settings, stats) could not be read or written.
    #[error("the chat history holds unreadable JSON in {what}: {source}")]
    StoredJson {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("conversation {0} does not exist (it may have been deleted)")]
    ConversationNotFound(i64),

    #[error("message {0} does not exist (it may have been deleted)")]
    MessageNotFound(i64),

    /// A write that only makes sense while an answer streams reached a finished message.
    #[error("message {0} is not an answer that is still being written")]
    MessageNotStreaming(i64),

    /// A message referred to an attachment that was never imported.
    #[error("attachment {0} is not in the history; import it first")]
    UnknownAttachment(String),

    /// Reading or writing an attachment (or its thumbnail) on disk failed.
    #[error("cannot store the attachment at {}: {source}", path.display())]
    AttachmentIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is neither an image nor a video Glimpse can read.
    #[error("{name} cannot be attached: {reason}")]
    UnsupportedAttachment { name: String, reason: String },

    /// A link from an answer was not opened (a scheme other than http/https/mailto, or the
    /// system has no handler).
    #[error("the link {url} was not opened: {reason}")]
    LinkRefused { url: String, reason: String },

    /// The file claims to be an image but cannot be decoded.
    #[error("{name} looks like an image but cannot be read: {reason}")]
    AttachmentDecode { name: String, reason: String },

    /// The file is a video container, but its video cannot be used: no video stream, truncated,
    /// or a codec this FFmpeg cannot decode.
    #[error("{name} cannot be used as a video: {reason}")]
    VideoUnreadable { name: String, reason: String },

    /// A video command got the hash of an image.
    #[error("{0} is not a video")]
    NotAVideo(String),

    /// Decoding the image would need more memory than the attachment store allows.
    #[error(
        "{name} is too large to open ({width}×{height} pixels, {needed_mib} MiB decoded; the \
         limit is {limit_mib} MiB)"
    )]
    ImageTooLarge {
        name: String,
        width: u32,
        height: u32,
        needed_mib: u64,
        limit_mib: u64,
    },
    /// A message was sent while an answer is still being generated; answers never interleave.
    #[error("an answer is still being generated; stop it or wait for it to finish")]
    Busy,

    /// Sending needs a loaded model.
    #[error("no model is loaded; load one from the model list first")]
    NoModel,

    /// The engine refused a model, an image or a prompt (the message says which and why).
    #[error("{0}")]
    Engine(#[from] glimpse_models::Error),

    /// A message that cannot be regenerated or edited (no question yet, not a user message).
    #[error("{0}")]
    NothingToAnswer(String),

    /// A worker thread or the file dialog ended without an answer.
    #[error("a background task failed: {0}")]
    TaskFailed(String),

    /// A model download failed; the inner error carries its own `kind`.
    #[error(transparent)]
    Download(#[from] crate::models::error::DownloadError),

    /// A folder the user asked to add does not exist (or is not a folder).
    #[error("{} is not a folder on this computer", .0.display())]
    FolderNotFound(PathBuf),

    /// A small settings file in the app's data folder could not be read or written.
    #[error("cannot read or write {}: {source}", path.display())]
    SettingsIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Only the catalogue's checkpoints are downloaded.
    #[error("{0} is not in Glimpse's model catalogue")]
    UnknownRepo(String),

    /// A second download of a repository that is already downloading.
    #[error("{0} is already downloading")]
    AlreadyDownloading(String),

    /// The folder cannot be loaded (the validation's reason).
    #[error("{path} cannot be loaded: {reason}")]
    UnusableModel { path: String, reason: String },

    /// The device or dtype chosen cannot work here; the inner error carries its own `kind`.
    #[error(transparent)]
    LoadRefused(#[from] crate::models::load_check::LoadRefusal),
}

impl AppError {
    /// The stable name the UI branches on.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoDataDir(_) => "noDataDir",
            Self::UnreadableFolder { .. } => "unreadableFolder",
            Self::Thread(_) => "thread",
            Self::Storage(_) => "storage",
            Self::Migration { .. } => "migration",
            Self::SchemaTooNew { .. } => "schemaTooNew",
            Self::StoredJson { .. } => "storedJson",
            Self::ConversationNotFound(_) => "conversationNotFound",
            Self::MessageNotFound(_) => "messageNotFound",
            Self::MessageNotStreaming(_) => "messageNotStreaming",
            Self::UnknownAttachment(_) => "unknownAttachment",
            Self::AttachmentIo { .. } => "attachmentIo",
            Self::UnsupportedAttachment { .. } => "unsupportedAttachment",
            Self::LinkRefused { .. } => "linkRefused",
            Self::AttachmentDecode { .. } => "attachmentDecode",
            Self::ImageTooLarge { .. } => "imageTooLarge",
            Self::VideoUnreadable { .. } => "videoUnreadable",
            Self::NotAVideo(_) => "notAVideo",
            Self::Busy => "busy",
            Self::NoModel => "noModel",
            Self::Engine(_) => "engine",
            Self::NothingToAnswer(_) => "nothingToAnswer",
            Self::TaskFailed(_) => "taskFailed",
            Self::Download(e) => e.kind(),
            Self::FolderNotFound(_) => "folderNotFound",
            Self::SettingsIo { .. } => "settingsIo",
            Self::UnknownRepo(_) => "unknownRepo",
            Self::AlreadyDownloading(_) => "alreadyDownloading",
            Self::UnusableModel { .. } => "unusableModel",
            Self::LoadRefused(e) => e.kind(),
        }
    }
}

impl serde::Serialize for AppError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("AppError", 2)?;
        st.serialize_field("kind", self.kind())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

pub type Result<T> = std::result::Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crosses_ipc_as_kind_and_message() {
        let err = AppError::UnreadableFolder {
            path: PathBuf::from("/m"),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        let json = serde_json::to_value(&err).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "unreadableFolder",
                "message": "cannot read the model folder /m: denied"
            })
        );
    }
}
