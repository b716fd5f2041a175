//! Progress and cancellation for the work before the first token: the vision tower over the
//! prompt's images and videos, then the decoder over the whole prompt. On a CPU a screenshot
//! takes seconds to minutes here, so callers show a bar and honour "stop" between blocks.

use super::CancelToken;
use crate::{Error, Result};

/// Which part of the prefill a [`PrefillProgress`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefillStage {
    /// The vision tower over every image of the prompt (one call), counted in ViT blocks.
    Images,
    /// The vision tower over every video of the prompt (one call), counted in ViT blocks.
    Videos,
    /// The text decoder over the whole prompt, counted in decoder layers.
    Prompt,
}

/// `done` of `total` steps of `stage` are finished. Within a stage `done` rises by one from 1
/// to `total`; stages come in the order images, videos, prompt (those the prompt has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PrefillProgress {
    pub stage: PrefillStage,
    pub done: usize,
    pub total: usize,
}

/// What the prefill tells and obeys. The default reports nothing and cannot be stopped, which
/// is what callers that only want logits (tests, the CLI without a terminal) pass.
#[derive(Default)]
pub struct PrefillHooks<'a> {
    pub progress: Option<&'a mut dyn FnMut(PrefillProgress)>,
    /// Checked after every vision block and before the decoder starts: a set token ends the
    /// prefill with [`Error::Cancelled`].
    pub cancel: Option<&'a CancelToken>,
}

impl PrefillHooks<'_> {
    pub(crate) fn report(&mut self, stage: PrefillStage, done: usize, total: usize) {
        if let Some(p) = self.progress.as_mut() {
            p(PrefillProgress { stage, done, total });
        }
    }

    pub(crate) fn check_cancel(&self) -> Result<()> {
        match self.cancel {
            Some(c) if c.is_cancelled() => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    pub(crate) fn reports(&self) -> bool {
        self.progress.is_some()
    }
}
