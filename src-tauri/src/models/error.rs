//! What can go wrong while fetching a model from the Hub. Each message is a sentence a user can
//! act on; `kind()` is the stable name the UI branches on (it crosses IPC inside `AppError`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No TCP connection, DNS failure, TLS failure or a timeout: the hub cannot be reached.
    #[error(
        "cannot reach the model hub at {endpoint} ({detail}). Check the internet connection; \
         models already downloaded keep working offline."
    )]
    Offline { endpoint: String, detail: String },

    /// 401/403: a gated or private repository, or a bad token.
    #[error(
        "the hub refused access to {repo} (HTTP {status}). {}",
        if *has_token {
            "The access token was rejected, or it has not been granted access: accept the model's \
             licence on its Hugging Face page with the same account."
        } else {
            "It may be gated: accept its licence on Hugging Face, then put an access token in \
             HF_TOKEN or ~/.cache/huggingface/token."
        }
    )]
    Unauthorized {
        repo: String,
        status: u16,
        has_token: bool,
    },

    /// 404 for the repository, revision or a file in it.
    #[error("{what} does not exist on the hub (HTTP 404)")]
    NotFound { what: String },

    /// Any other unexpected HTTP status.
    #[error("the hub answered HTTP {status} for {url}")]
    Http { status: u16, url: String },

    /// A body we could not parse, or headers that contradict the listing.
    #[error("the hub's answer for {url} is not what Glimpse expected: {detail}")]
    BadResponse { url: String, detail: String },

    /// The repository lacks a file every Qwen3-VL checkpoint must have.
    #[error("{repo} has no {file}, so it is not a complete checkpoint")]
    MissingFile { repo: String, file: String },

    /// The pre-flight check: not enough free space for what is left to download.
    #[error(
        "not enough disk space in {}: the download needs {} more, but only {} is free",
        dir.display(), human_bytes(*needed), human_bytes(*available)
    )]
    NotEnoughSpace {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },

    /// The disk filled up while writing (ENOSPC). The partial file is kept for a resume.
    #[error(
        "the disk filled up while writing {}; free some space and resume the download",
        path.display()
    )]
    DiskFull { path: PathBuf },

    /// The bytes received do not hash to the sha256 the Hub published. The blob was deleted.
    #[error(
        "{file} is corrupt: its sha256 is {actual} but the hub says {expected}; the bad copy was \
         deleted, so downloading again will fetch it afresh"
    )]
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },

    /// The server sent more or fewer bytes than the listing announced.
    #[error("{file}: the hub announced {expected} bytes but sent {actual}")]
    SizeMismatch {
        file: String,
        expected: u64,
        actual: u64,
    },

    /// A local file or folder could not be read or written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DownloadError {
    /// The stable name the UI branches on.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Offline { .. } => "offline",
            Self::Unauthorized { .. } => "unauthorized",
            Self::NotFound { .. } => "notFound",
            Self::Http { .. } => "http",
            Self::BadResponse { .. } => "badResponse",
            Self::MissingFile { .. } => "missingFile",
            Self::NotEnoughSpace { .. } => "notEnoughSpace",
            Self::DiskFull { .. } => "diskFull",
            Self::ChecksumMismatch { .. } => "checksumMismatch",
            Self::SizeMismatch { .. } => "sizeMismatch",
            Self::Io { .. } => "io",
        }
    }

    /// An I/O error on `path`, with ENOSPC turned into [`DownloadError::DiskFull`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            Self::DiskFull { path }
        } else {
            Self::Io { path, source }
        }
    }
}

pub type Result<T> = std::result::Result<T, DownloadError>;

/// `1.5 GB`-style sizes (decimal units, like the Hub's web pages).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_the_hub() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(4_256_000_000), "4.3 GB");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }

    #[test]
    fn enospc_becomes_disk_full() {
        let err = DownloadError::io("/x", std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert_eq!(err.kind(), "diskFull");
        assert!(err.to_string().contains("disk filled up"), "{err}");
        let err = DownloadError::io("/x", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(err.kind(), "io");
    }
}
