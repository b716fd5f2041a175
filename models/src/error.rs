//! The engine's one error type. Each variant names what failed, so callers (the CLI, the app's
//! IPC layer) can branch on the kind and show a sentence, not a debug dump.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file is present but a key is missing, has the wrong type, or an impossible value.
    #[error("bad config: `{key}` {reason}")]
    BadConfig { key: String, reason: String },

    /// A file the model needs is not there.
    #[error("missing file {}: {reason}", path.display())]
    MissingFile { path: PathBuf, reason: String },

    /// A file could not be read or parsed.
    #[error("cannot read {}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },

    /// A tensor the model needs is not in any weight file.
    #[error("missing tensor `{name}` (looked in {file})")]
    MissingTensor { name: String, file: String },

    /// A tensor is present but has the wrong shape or cannot be read (truncated file, bad dtype).
    #[error("tensor `{name}` in {file}: {reason}")]
    BadTensor {
        name: String,
        file: String,
        reason: String,
    },

    /// The number of vision placeholder tokens does not match the grids that were passed.
    #[error("{what}: expected {expected}, got {got}")]
    TokenCountMismatch {
        what: String,
        expected: usize,
        got: usize,
    },

    /// An image file could not be decoded (corrupt, truncated, or not an image format we read).
    #[error("cannot decode image {}: {reason}", path.display())]
    ImageDecode { path: PathBuf, reason: String },

    /// An image is larger than the decoder is allowed to allocate; checked from the header.
    #[error("image {} is {width}x{height}, more than the {max_pixels} pixels Glimpse decodes", path.display())]
    ImageTooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        max_pixels: u64,
    },

    /// A video file could not be opened or decoded.
    #[error("cannot decode video {}: {reason}", path.display())]
    VideoDecode { path: PathBuf, reason: String },

    /// A video (file, folder or frame list) yields no frames to sample.
    #[error("no video frames in {}: {reason}", path.display())]
    NoVideoFrames { path: PathBuf, reason: String },

    /// Video support was compiled out (the `video` feature of glimpse-models).
    #[error("video support is not built in (enable the `video` feature)")]
    VideoUnsupported,

    /// The chat template failed to parse or to render.
    #[error("chat template: {reason}")]
    Template { reason: String },

    /// The tokenizer could not be loaded or failed to encode/decode.
    #[error("tokenizer: {reason}")]
    Tokenizer { reason: String },

    /// Generation was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,

    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn bad_config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::BadConfig {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
