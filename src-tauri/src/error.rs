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

    /// A model download failed; the inner error carries its own `kind`.
    #[error(transparent)]
    Download(#[from] crate::models::error::DownloadError),
}

impl AppError {
    /// The stable name the UI branches on.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoDataDir(_) => "noDataDir",
            Self::UnreadableFolder { .. } => "unreadableFolder",
            Self::Download(e) => e.kind(),
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
