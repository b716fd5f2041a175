//! Answering: one generation at a time on its own thread, streamed to a sink (the IPC channel
//! in the app, a Vec in tests) and into the history through a [`StreamWriter`].

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use glimpse_models::engine::Engine;
use glimpse_models::generation::{
    CancelToken, FinishReason, PrefillProgress, PrefillStage, Segment, StreamEvent,
};
use glimpse_models::processor::{Message, PrepareHooks, VideoProgress};
use serde_json::Value;

use super::{
    engine_messages, AttachmentRef, ErrorView, GenerationEvent, Settings, StatsView, VisionBudget,
};
use crate::attachments::AttachmentStore;
use crate::error::{AppError, Result};
use crate::history::{ConversationId, History, MessageEnd, MessageId, Role, StreamWriter};

/// Where generation events go.
pub type Sink = Box<dyn FnMut(GenerationEvent) + Send>;

/// The loaded model and what was true when it loaded.
pub struct LoadedModel {
    pub engine: Engine,
    /// Shown in the UI and stored with each answer.
    pub name: String,
    /// The checkpoint's own image pixel budget, restored when a send does not set one.
    pub checkpoint_budget: (usize, usize),
}

impl LoadedModel {
    pub fn new(engine: Engine, name: String) -> Self {
        let image = &engine.processor.config.image;
        let checkpoint_budget = (image.min_pixels, image.max_pixels);
        Self {
            engine,
            name,
            checkpoint_budget,
        }
    }

    pub fn vision_budget(&self) -> VisionBudget {
        let image = &self.engine.processor.config.image;
        VisionBudget {
            patch_size: image.patch_size,
            merge_size: image.merge_size,
            min_pixels: image.min_pixels,
            max_pixels: image.max_pixels,
        }
    }
}

pub type SharedEngine = Arc<Mutex<Option<LoadedModel>>>;

/// Locks, recovering from a poisoned lock: a panic elsewhere must not brick the app.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The one generation slot: holds the running answer's cancel token.
#[derive(Debug, Clone, Default)]
pub struct GenerationSlot(Arc<Mutex<Option<CancelToken>>>);

impl GenerationSlot {
    /// Claims the slot, or fails with [`AppError::Busy`] while an answer runs.
    pub fn begin(&self) -> Result<BusyGuard> {
        let mut slot = lock(&self.0);
        if slot.is_some() {
            return Err(AppError::Busy);
        }
        let token = CancelToken::new();
        *slot = Some(token.clone());
        Ok(BusyGuard {
            slot: self.clone(),
            token,
        })
    }

    pub fn is_busy(&self) -> bool {
        lock(&self.0).is_some()
    }

    /// Stops the running answer within one token; `false` when none runs.
    pub fn cancel(&self) -> bool {
        match lock(&self.0).as_ref() {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// Frees the slot when dropped (the worker ends, or starting it failed).
pub struct BusyGuard {
    slot: GenerationSlot,
    token: CancelToken,
}

impl BusyGuard {
    pub fn token(&self) -> &CancelToken {
        &self.token
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        *lock(&self.slot.0) = None;
    }
}

/// What is sent: a new question, the last question again, or an edited question.
#[derive(Debug, Clone)]
pub enum Turn {
    New {
        conversation: ConversationId,
        text: String,
        attachments: Vec<AttachmentRef>,
    },
    Regenerate {
        conversation: ConversationId,
    },
    Edit {
        message: MessageId,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendIds {
    pub user_message_id: i64,
    pub assistant_message_id: i64,
}

/// Everything a send touches.
pub struct Chat<'a> {
    pub history: &'a Mutex<History>,
    pub store: &'a AttachmentStore,
    pub engine: &'a SharedEngine,
    pub slot: &'a GenerationSlot,
}

impl Chat<'_> {
    /// Records the turn, starts the answer on a worker thread and returns both message ids.
    /// Fails before touching the history if an answer is running or no model is loaded.
    pub fn start(&self, turn: Turn, settings: Settings, sink: Sink) -> Result<SendIds> {
        let guard = self.slot.begin()?;
        // The slot is ours, so no worker holds the engine: this lock does not wait.
        let model_name = match lock(self.engine).as_ref() {
            Some(m) => m.name.clone(),
            None => return Err(AppError::NoModel),
        };
        let settings_json = serde_json::to_value(&settings).unwrap_or(Value::Null);
        let (user_id, assistant_id, messages, writer) = {
            let mut history = lock(self.history);
            let (conversation, user_id) = record_turn(&mut history, turn)?;
            let stored = history.messages(conversation)?;
            let messages = engine_messages(&stored, self.store, &settings);
            let assistant_id =
                history.begin_assistant_message(conversation, &model_name, &settings_json)?;
            history.set_conversation_model(conversation, Some(&model_name), &settings_json)?;
            let writer = history.stream_writer(assistant_id)?;
            (user_id, assistant_id, messages, writer)
        };
        let job = Job {
            engine: Arc::clone(self.engine),
            messages,
            settings,
            writer,
            message_id: assistant_id,
            guard,
        };
        std::thread::Builder::new()
            .name("generation".into())
            .spawn(move || job.run(sink))
            .map_err(AppError::Thread)?;
        Ok(SendIds {
            user_message_id: user_id.0,
            assistant_message_id: assistant_id.0,
        })
    }
}

/// Writes the turn's question into the history; returns its conversation and id.
fn record_turn(history: &mut History, turn: Turn) -> Result<(ConversationId, MessageId)> {
    match turn {
        Turn::New {
            conversation,
            text,
            attachments,
        } => {
            let refs: Vec<_> = attachments.iter().map(|a| (a.hash(), a.video())).collect();
            let id = history.add_user_message_with(conversation, &text, &refs)?;
            Ok((conversation, id))
        }
        Turn::Regenerate { conversation } => {
            let last_user = history
                .messages(conversation)?
                .into_iter()
                .rev()
                .find(|m| m.role == Role::User)
                .ok_or_else(|| {
                    AppError::NothingToAnswer("this conversation has no question yet".into())
                })?;
            history.truncate_after(last_user.id)?;
            Ok((conversation, last_user.id))
        }
        Turn::Edit { message, text } => {
            let old = history.message(message)?;
            if old.role != Role::User {
                return Err(AppError::NothingToAnswer(format!(
                    "message {} is not a question, so it cannot be edited and resent",
                    message.0
                )));
            }
            // The edited question sends its videos as the original did.
            let refs: Vec<_> = old
                .attachments
                .iter()
                .map(|a| (a.hash.as_str(), a.video.as_ref()))
                .collect();
            history.truncate_from(message)?;
            let id = history.add_user_message_with(old.conversation_id, &text, &refs)?;
            Ok((old.conversation_id, id))
        }
    }
}

struct Job {
    engine: SharedEngine,
    messages: Vec<Message>,
    settings: Settings,
    writer: StreamWriter,
    message_id: MessageId,
    /// Held until the answer is written, so a new send cannot start before.
    guard: BusyGuard,
}

impl Job {
    fn run(self, mut sink: Sink) {
        let Job {
            engine,
            messages,
            settings,
            mut writer,
            message_id,
            guard,
        } = self;
        let cancel = guard.token().clone();
        let mut engine = lock(&engine);
        let mut write_error = None;
        let result = match engine.as_mut() {
            None => Err(AppError::NoModel),
            Some(loaded) => answer(
                loaded,
                &messages,
                &settings,
                &cancel,
                message_id,
                &mut writer,
                &mut write_error,
                &mut sink,
            ),
        };
        drop(engine);
        let result = match write_error {
            Some(e) => Err(e),
            None => result,
        };
        match result {
            Ok(stats) => {
                let end = if stats.finish_reason == FinishReason::Cancelled {
                    MessageEnd::Interrupted
                } else {
                    MessageEnd::Complete
                };
                let stored = serde_json::to_value(&stats).ok();
                match writer.finish(end, stored.as_ref()) {
                    Ok(()) => sink(GenerationEvent::Done { stats }),
                    Err(e) => sink(GenerationEvent::Error {
                        error: ErrorView::from(&e),
                    }),
                }
            }
            Err(e) => {
                let _ = writer.finish(MessageEnd::Error(e.to_string()), None);
                sink(GenerationEvent::Error {
                    error: ErrorView::from(&e),
                });
            }
        }
        drop(guard);
    }
}

/// Prepares and generates with the loaded model, streaming into `writer` and `sink`.
#[allow(clippy::too_many_arguments)]
fn answer(
    loaded: &mut LoadedModel,
    messages: &[Message],
    settings: &Settings,
    cancel: &CancelToken,
    message_id: MessageId,
    writer: &mut StreamWriter,
    write_error: &mut Option<AppError>,
    sink: &mut Sink,
) -> Result<StatsView> {
    // Time to first token as the user waits for it: media decoding and resizing, the vision
    // tower and the decoder's prefill, up to the first token's event.
    let asked = Instant::now();
    let (min, max) = settings.pixel_budget(loaded.checkpoint_budget);
    loaded.engine.processor.set_image_pixel_budget(min, max)?;
    // Frame extraction reports through the same sink as the tokens; the hook may be called from
    // the engine's worker threads, hence the lock.
    let progress_sink = Mutex::new(&mut *sink);
    let progress = |p: VideoProgress| {
        (lock(&progress_sink))(GenerationEvent::Progress {
            stage: "video",
            done: p.done,
            total: p.total,
        })
    };
    let hooks = PrepareHooks {
        progress: Some(&progress),
        cancel: Some(cancel),
    };
    let prepared = match loaded
        .engine
        .prepare_with(messages, &settings.render_options(), &hooks)
    {
        Ok(p) => p,
        // Cancelled while extracting frames: an empty, interrupted answer.
        Err(glimpse_models::Error::Cancelled) => {
            return Ok(StatsView {
                prompt_tokens: 0,
                generated_tokens: 0,
                prefill_ms: 0.0,
                decode_tokens_per_s: 0.0,
                finish_reason: FinishReason::Cancelled,
                first_token_ms: None,
            })
        }
        Err(e) => return Err(e.into()),
    };
    let prompt_tokens = prepared.input_ids().len();
    sink(GenerationEvent::Started {
        message_id: message_id.0,
        prompt_tokens,
    });
    let params = loaded.engine.sampling_params(&settings.overrides());
    // Prefill progress and tokens both go to the sink, from this thread, one at a time.
    let sink = RefCell::new(sink);
    let mut on_progress = |p: PrefillProgress| {
        (sink.borrow_mut())(GenerationEvent::Progress {
            stage: prefill_stage_name(p.stage),
            done: p.done,
            total: p.total,
        })
    };
    let mut first_token_ms = None;
    let mut on_event = |event: StreamEvent| {
        let (segments, elapsed) = match event {
            StreamEvent::Token {
                segments, elapsed, ..
            } => (segments, elapsed),
            StreamEvent::Flush { segments } => (segments, Duration::ZERO),
            StreamEvent::Done(_) => return,
        };
        let (mut text, mut thinking) = (String::new(), String::new());
        for s in segments {
            match s {
                Segment::Answer(t) => text.push_str(&t),
                Segment::Thinking(t) => thinking.push_str(&t),
            }
        }
        if write_error.is_none() {
            if let Err(e) = writer.append(&text, &thinking) {
                // The answer can no longer be kept (e.g. its conversation was deleted): stop.
                *write_error = Some(e);
                cancel.cancel();
            }
        }
        if first_token_ms.is_none() {
            first_token_ms = Some(asked.elapsed().as_secs_f64() * 1000.0);
        }
        (sink.borrow_mut())(GenerationEvent::Token {
            text,
            thinking,
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
        });
    };
    let result =
        loaded
            .engine
            .generate_with(&prepared, &params, cancel, &mut on_progress, &mut on_event);
    match result {
        Ok(stats) => Ok(StatsView {
            first_token_ms,
            ..StatsView::from(&stats)
        }),
        // Cancelled before the first token: an empty, interrupted answer.
        Err(glimpse_models::Error::Cancelled) => Ok(StatsView {
            prompt_tokens,
            generated_tokens: 0,
            prefill_ms: 0.0,
            decode_tokens_per_s: 0.0,
            finish_reason: FinishReason::Cancelled,
            first_token_ms: None,
        }),
        Err(e) => Err(e.into()),
    }
}

/// The `stage` of a [`GenerationEvent::Progress`] for each part of the prefill (`video` is
/// frame extraction, before it).
fn prefill_stage_name(stage: PrefillStage) -> &'static str {
    match stage {
        PrefillStage::Images => "image",
        PrefillStage::Videos => "videoFrames",
        PrefillStage::Prompt => "prompt",
    }
}
