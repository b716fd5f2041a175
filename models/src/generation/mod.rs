//! Generation: the decode loop that turns a prepared prompt into a stream of text.
//!
//! The loop is model-agnostic: anything that can prefill a prompt and then take one token at a
//! time ([`LanguageModel`]) can be driven by [`generate`]. Sampling follows the checkpoint's
//! `generation_config.json` unless the caller overrides it; text is detokenized incrementally so
//! that no event ever carries half a UTF-8 character; a [`CancelToken`] set from another thread
//! stops the loop before the next token is computed.

mod config;
mod detok;
mod prefill;
mod sampler;
mod think;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Tensor;

pub use config::{GenerationConfig, Overrides, SamplingParams};
pub use detok::{Decode, IncrementalDecoder};
pub use prefill::{PrefillHooks, PrefillProgress, PrefillStage};
pub use sampler::Sampler;
pub use think::{Segment, ThinkSplitter};

use crate::{Error, Result};

/// A causal language model as the decode loop sees it.
pub trait LanguageModel {
    /// Runs the whole prompt (with its images/videos, already bound by the implementor) and
    /// returns the logits of the last prompt position, shape `[vocab]`.
    fn prefill(&mut self) -> Result<Tensor>;
    /// Appends one token to the cache and returns the logits for the next one, shape `[vocab]`.
    fn step(&mut self, token: u32) -> Result<Tensor>;
}

/// Shared flag that stops a running generation. Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// One event of the stream, in order: one `Token` per generated token (its text may be empty
/// while a multi-byte character is incomplete), then exactly one of `Done` — or an `Err` from
/// [`generate`] itself.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Token {
        id: u32,
        /// New text this token completes, split into thinking and answer parts.
        segments: Vec<Segment>,
        /// Time spent computing this token (for the first, the whole prefill).
        elapsed: Duration,
    },
    /// Text held back until the end (a partial `<think>` tag that never completed).
    Flush {
        segments: Vec<Segment>,
    },
    Done(Box<GenerationStats>),
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An EOS id from the generation config.
    Eos,
    /// `max_new_tokens` reached.
    Length,
    /// The cancel token was set.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    /// Generated ids, without the prompt and without the final EOS.
    pub token_ids: Vec<u32>,
    pub text: String,
    pub thinking: String,
    pub answer: String,
    pub finish_reason: FinishReason,
    pub prefill_ms: f64,
    /// Tokens per second over the decode steps after the first token.
    pub decode_tokens_per_s: f64,
}

/// Runs the decode loop. `prompt_ids` seeds the repetition penalty and counts the prompt;
/// `think_open` says whether the prompt already opened a `<think>` block (Thinking templates do),
/// so that the first text is classified as thinking.
pub fn generate(
    model: &mut dyn LanguageModel,
    prompt_ids: &[u32],
    params: &SamplingParams,
    decoder: &dyn Decode,
    think_open: bool,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(StreamEvent),
) -> Result<GenerationStats> {
    let mut sampler = Sampler::new(params, prompt_ids);
    let mut detok = IncrementalDecoder::new(decoder);
    let mut splitter = ThinkSplitter::new(think_open);
    let mut token_ids = Vec::new();
    let (mut thinking, mut answer) = (String::new(), String::new());

    let finish = |cancelled: bool, eos: bool| match (cancelled, eos) {
        (true, _) => FinishReason::Cancelled,
        (_, true) => FinishReason::Eos,
        _ => FinishReason::Length,
    };

    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let start = Instant::now();
    let mut logits = model.prefill()?;
    let prefill = start.elapsed();
    let mut decode_start = None;
    let mut reason = FinishReason::Length;
    let mut step_start = start;

    for i in 0..params.max_new_tokens {
        let id = sampler.sample(&logits)?;
        if params.eos_token_ids.contains(&id) {
            reason = finish(false, true);
            break;
        }
        token_ids.push(id);
        let text = detok.push(id)?;
        let segments = splitter.push(&text);
        for s in &segments {
            match s {
                Segment::Thinking(t) => thinking.push_str(t),
                Segment::Answer(t) => answer.push_str(t),
            }
        }
        let now = Instant::now();
        on_event(StreamEvent::Token {
            id,
            segments,
            elapsed: now - step_start,
        });
        step_start = now;
        if i == 0 {
            decode_start = Some(now);
        }
        if cancel.is_cancelled() {
            reason = finish(true, false);
            break;
        }
        if i + 1 == params.max_new_tokens {
            break;
        }
        logits = model.step(id)?;
    }

    // Flush text held back at the end (an incomplete tag prefix, never a broken character).
    let tail = splitter.finish();
    if !tail.is_empty() {
        for s in &tail {
            match s {
                Segment::Thinking(t) => thinking.push_str(t),
                Segment::Answer(t) => answer.push_str(t),
            }
        }
        on_event(StreamEvent::Flush { segments: tail });
    }
    let decoded = token_ids.len().saturating_sub(1);
    let decode_tokens_per_s = match decode_start {
        Some(t0) if decoded > 0 => decoded as f64 / t0.elapsed().as_secs_f64().max(1e-9),
        _ => 0.0,
    };
    let stats = GenerationStats {
        prompt_tokens: prompt_ids.len(),
        text: detok.text().to_string(),
        token_ids,
        thinking,
        answer,
        finish_reason: reason,
        prefill_ms: prefill.as_secs_f64() * 1e3,
        decode_tokens_per_s,
    };
    on_event(StreamEvent::Done(Box::new(stats.clone())));
    Ok(stats)
}

#[cfg(test)]
mod tests;
