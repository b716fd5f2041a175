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

    /// A token id is not in the model's vocabulary.
    #[error("token id {token} is outside the vocabulary ({vocab_size} entries)")]
    TokenOutOfRange { token: u32, vocab_size: usize },

    /// Inputs handed to the model do not fit together (pixel rows vs grids, a grid the merge size
    /// does not divide, ...). `what` names the input, `reason` says what was expected.
    #[error("bad input {what}: {reason}")]
    BadInput { what: String, reason: String },

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

    /// A media file opened but holds no video stream (an audio-only file, a subtitle track).
    #[error("{} has no video stream (is it an audio-only file?)", path.display())]
    NoVideoStream { path: PathBuf },

    /// The video ends before the frames its header promises (an interrupted download or copy).
    #[error("video {} is truncated or damaged: {reason}", path.display())]
    VideoTruncated { path: PathBuf, reason: String },

    /// The video stream's codec is unknown to this FFmpeg build, or none of its frames decode.
    #[error("cannot decode the video stream of {}: {reason}", path.display())]
    VideoCodec { path: PathBuf, reason: String },

    /// A requested time range does not lie inside the video.
    #[error("time range of {}: {reason}", path.display())]
    VideoRange { path: PathBuf, reason: String },

    /// Video sampling options that cannot work (fps ≤ 0, no frames allowed, an empty range).
    #[error("bad video options: {reason}")]
    BadVideoOptions { reason: String },

    /// Video support was compiled out (the `video` feature of glimpse-models).
    #[error("video support is not built in (enable the `video` feature)")]
    VideoUnsupported,

    /// The chat template failed to parse or to render.
    #[error("chat template: {reason}")]
    Template { reason: String },

    /// The tokenizer could not be loaded or failed to encode/decode.
    #[error("tokenizer: {reason}")]
    Tokenizer { reason: String },

    /// The prompt (plus the tokens asked for) does not fit the model's context.
    #[error("the prompt needs {tokens} tokens but the model's context holds {limit}")]
    ContextTooLong { tokens: usize, limit: usize },

    /// Generation was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,

    /// A CPU kernel library (oneDNN) refused or failed a product; callers that can fall back
    /// to candle's own kernels do so before this reaches a user.
    #[error("{library}: {reason}")]
    Kernel {
        library: &'static str,
        reason: String,
    },

    /// A tensor operation failed (shapes that cannot work together, a device error).
    #[error(transparent)]
    Candle(candle_core::Error),

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

impl From<candle_core::Error> for Error {
    /// Unwraps our own errors that travelled through candle (the weight loader's
    /// `MissingTensor`/`BadTensor` come back through `VarBuilder` as candle errors), so callers
    /// see the precise variant; anything else stays a `Candle` error.
    fn from(e: candle_core::Error) -> Self {
        match take_ours(e) {
            Ok(ours) => ours,
            Err(theirs) => Error::Candle(theirs),
        }
    }
}

fn take_ours(e: candle_core::Error) -> std::result::Result<Error, candle_core::Error> {
    use candle_core::Error as C;
    match e {
        C::WrappedContext { wrapped, context } => match wrapped.downcast::<Error>() {
            Ok(ours) => Ok(*ours),
            Err(wrapped) => Err(C::WrappedContext { wrapped, context }),
        },
        C::WithBacktrace { inner, backtrace } => {
            take_ours(*inner).map_err(|inner| C::WithBacktrace {
                inner: Box::new(inner),
                backtrace,
            })
        }
        C::Context { inner, context } => take_ours(*inner).map_err(|inner| C::Context {
            inner: Box::new(inner),
            context,
        }),
        C::WithPath { inner, path } => take_ours(*inner).map_err(|inner| C::WithPath {
            inner: Box::new(inner),
            path,
        }),
        other => Err(other),
    }
}
