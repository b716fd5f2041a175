use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glimpse_models::engine::{Engine, LoadOptions};
use glimpse_models::generation::FinishReason;
use glimpse_models::processor::{Content, ImageInput, VideoInput};
use serde_json::json;

use super::run::{Chat, GenerationSlot, LoadedModel, SharedEngine, Turn};
use super::*;
use crate::error::AppError;
use crate::history::{ConversationId, History, MessageEnd, MessageId, MessageStatus};
use crate::video::VideoRequest;

const PROMPT: &str = "Locate the red square, output its bbox coordinates using JSON format.";
const ANSWER: &str = r#"[{"bbox_2d": [250, 312, 484, 625], "label": "red square"}]"#;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

struct World {
    _dir: tempfile::TempDir,
    history: Mutex<History>,
    store: AttachmentStore,
    engine: SharedEngine,
    slot: GenerationSlot,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            history: Mutex::new(History::open(dir.path().join("history.sqlite3")).unwrap()),
            store: AttachmentStore::new(dir.path()).unwrap(),
            engine: Arc::new(Mutex::new(None)),
            slot: GenerationSlot::default(),
            _dir: dir,
        }
    }

    fn with_grounding_model(self) -> Self {
        let dir = fixtures().join("models/grounding");
        let engine = Engine::load(&dir, &LoadOptions::default()).unwrap();
        *self.engine.lock().unwrap() = Some(LoadedModel::new(engine, "grounding".into()));
        self
    }

    fn chat(&self) -> Chat<'_> {
        Chat {
            history: &self.history,
            store: &self.store,
            engine: &self.engine,
            slot: &self.slot,
        }
    }

    fn conversation(&self) -> ConversationId {
        self.history
            .lock()
            .unwrap()
            .create_conversation("test", None, &json!({}))
            .unwrap()
            .id
    }

    fn red_square(&self) -> String {
        let a = self
            .store
            .import_path(fixtures().join("media/redsquare_128x96.png"))
            .unwrap();
        self.history.lock().unwrap().record_attachment(&a).unwrap();
        a.hash
    }

    fn message_count(&self, c: ConversationId) -> usize {
        self.history.lock().unwrap().messages(c).unwrap().len()
    }
}

fn greedy() -> Settings {
    Settings {
        temperature: Some(0.0),
        ..Settings::default()
    }
}

/// A sink that forwards to a channel the test reads, with a hook run on every event.
fn sink_with(
    mut hook: impl FnMut(&GenerationEvent) + Send + 'static,
) -> (run::Sink, mpsc::Receiver<GenerationEvent>) {
    let (tx, rx) = mpsc::channel();
    let sink: run::Sink = Box::new(move |e| {
        hook(&e);
        let _ = tx.send(e);
    });
    (sink, rx)
}

/// Events until the terminal one (`done` or `error`).
fn collect(rx: &mpsc::Receiver<GenerationEvent>) -> Vec<GenerationEvent> {
    let mut out = vec![];
    loop {
        let e = rx.recv_timeout(Duration::from_secs(120)).expect("no event");
        let last = matches!(
            e,
            GenerationEvent::Done { .. } | GenerationEvent::Error { .. }
        );
        out.push(e);
        if last {
            return out;
        }
    }
}

#[test]
fn settings_map_onto_engine_options() {
    let s: Settings = serde_json::from_value(json!({
        "systemPrompt": "Be brief.", "temperature": 0.3, "topP": 0.9, "topK": 5,
        "maxNewTokens": 64, "seed": 7, "maxPixels": 200000, "thinking": false
    }))
    .unwrap();
    let o = s.overrides();
    assert_eq!(o.temperature, Some(0.3));
    assert_eq!(o.top_p, Some(0.9));
    assert_eq!(o.top_k, Some(5));
    assert_eq!(o.max_new_tokens, Some(64));
    assert_eq!(o.seed, Some(7));
    let r = s.render_options();
    assert!(r.add_generation_prompt);
    assert_eq!(r.enable_thinking, Some(false));
    // Only the bound the user set replaces the checkpoint's.
    assert_eq!(s.pixel_budget((1000, 9999)), (1000, 200000));
    assert_eq!(Settings::default().pixel_budget((1, 2)), (1, 2));
    assert_eq!(Settings::default().render_options().enable_thinking, None);
}

#[test]
fn history_becomes_engine_messages_with_stored_paths() {
    let w = World::new();
    let c = w.conversation();
    let hash = w.red_square();
    let mut h = w.history.lock().unwrap();
    h.add_user_message(c, "what is this?", &[hash.as_str()])
        .unwrap();
    let a1 = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    let mut writer = h.stream_writer(a1).unwrap();
    writer.append("a red square", "").unwrap();
    writer.finish(MessageEnd::Complete, None).unwrap();
    let failed = h.begin_assistant_message(c, "m", &json!({})).unwrap();
    h.finish_assistant_message(failed, MessageEnd::Error("boom".into()), None)
        .unwrap();
    h.add_user_message::<&str>(c, "and now?", &[]).unwrap();
    let stored = h.messages(c).unwrap();
    drop(h);

    let settings = Settings {
        system_prompt: Some("  Be brief. ".into()),
        ..Settings::default()
    };
    let m = engine_messages(&stored, &w.store, &settings);
    let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
    // The failed answer is left out; the system prompt comes first, trimmed.
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert!(matches!(&m[0].content[..], [Content::Text(t)] if t == "Be brief."));
    match &m[1].content[..] {
        [Content::Image(ImageInput::File(p)), Content::Text(t)] => {
            assert!(p.is_absolute() && p.exists(), "{}", p.display());
            assert!(p.starts_with(w.store.data_dir()));
            assert_eq!(t, "what is this?");
        }
        other => panic!("user message content: {other:?}"),
    }
    assert!(matches!(&m[2].content[..], [Content::Text(t)] if t == "a red square"));
    assert!(matches!(&m[3].content[..], [Content::Text(t)] if t == "and now?"));
    // Without a system prompt in the settings, none is made up.
    assert_eq!(
        engine_messages(&stored, &w.store, &Settings::default()).len(),
        3
    );
}

#[test]
fn second_generation_is_refused_while_one_runs() {
    let slot = GenerationSlot::default();
    let first = slot.begin().unwrap();
    assert!(matches!(slot.begin(), Err(AppError::Busy)));
    assert!(slot.cancel());
    assert!(first.token().is_cancelled());
    drop(first);
    assert!(!slot.is_busy());
    assert!(!slot.cancel());
    assert!(slot.begin().is_ok());
}

#[test]
fn busy_or_modelless_sends_leave_history_untouched() {
    let w = World::new();
    let c = w.conversation();
    let (sink, _rx) = sink_with(|_| {});
    let turn = |text: &str| Turn::New {
        conversation: c,
        text: text.into(),
        attachments: vec![],
    };
    let err = w.chat().start(turn("hi"), greedy(), sink).unwrap_err();
    assert!(matches!(err, AppError::NoModel), "{err}");
    let held = w.slot.begin().unwrap();
    let (sink, _rx) = sink_with(|_| {});
    let err = w.chat().start(turn("hi"), greedy(), sink).unwrap_err();
    assert_eq!(err.kind(), "busy");
    drop(held);
    assert_eq!(w.message_count(c), 0);
}

#[test]
fn grounding_answer_streams_into_history() {
    let w = World::new().with_grounding_model();
    let c = w.conversation();
    let hash = w.red_square();
    let (sink, rx) = sink_with(|_| {});
    let turn = image_turn(c, hash);
    let ids = w.chat().start(turn, greedy(), sink).unwrap();
    let events = collect(&rx);
    let GenerationEvent::Started {
        message_id,
        prompt_tokens,
    } = &events[0]
    else {
        panic!("first event: {:?}", events[0]);
    };
    assert_eq!(*message_id, ids.assistant_message_id);
    assert!(*prompt_tokens > 10);
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            GenerationEvent::Token { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, ANSWER);
    let GenerationEvent::Done { stats } = events.last().unwrap() else {
        panic!("last event: {:?}", events.last());
    };
    assert_eq!(stats.finish_reason, FinishReason::Eos);
    assert_eq!(stats.prompt_tokens, *prompt_tokens);

    // The worker frees the slot only after the answer is written.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!w.slot.is_busy());
    let h = w.history.lock().unwrap();
    let answer = h.message(MessageId(ids.assistant_message_id)).unwrap();
    assert_eq!(answer.content, ANSWER);
    assert_eq!(answer.status, MessageStatus::Complete);
    assert_eq!(answer.stats.as_ref().unwrap()["finishReason"], "eos");
    assert_eq!(
        h.message(MessageId(ids.user_message_id))
            .unwrap()
            .attachments
            .len(),
        1
    );
}

#[test]
fn cancel_mid_answer_keeps_the_partial_text() {
    let w = World::new().with_grounding_model();
    let c = w.conversation();
    let hash = w.red_square();
    let slot = w.slot.clone();
    let mut tokens = 0;
    let (sink, rx) = sink_with(move |e| {
        if matches!(e, GenerationEvent::Token { .. }) {
            tokens += 1;
            if tokens == 4 {
                slot.cancel();
            }
        }
    });
    let turn = image_turn(c, hash);
    let ids = w.chat().start(turn, greedy(), sink).unwrap();
    let events = collect(&rx);
    let n_tokens = events
        .iter()
        .filter(|e| matches!(e, GenerationEvent::Token { .. }))
        .count();
    // Stopped within one token of the cancel.
    assert_eq!(n_tokens, 4, "{events:?}");
    let GenerationEvent::Done { stats } = events.last().unwrap() else {
        panic!("last event: {:?}", events.last());
    };
    assert_eq!(stats.finish_reason, FinishReason::Cancelled);
    std::thread::sleep(Duration::from_millis(50));
    let answer = w
        .history
        .lock()
        .unwrap()
        .message(MessageId(ids.assistant_message_id))
        .unwrap();
    assert_eq!(answer.status, MessageStatus::Interrupted);
    assert!(!answer.content.is_empty());
    assert!(ANSWER.starts_with(&answer.content), "{}", answer.content);
    assert!(answer.content.len() < ANSWER.len());

    // A regenerate answers the same question again, replacing the partial answer.
    let (sink, rx) = sink_with(|_| {});
    let again = w
        .chat()
        .start(Turn::Regenerate { conversation: c }, greedy(), sink)
        .unwrap();
    collect(&rx);
    assert_eq!(again.user_message_id, ids.user_message_id);
    std::thread::sleep(Duration::from_millis(50));
    let messages = w.history.lock().unwrap().messages(c).unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].content, ANSWER);
}

#[test]
fn vision_tokens_follow_smart_resize() {
    let b = VisionBudget {
        patch_size: 16,
        merge_size: 2,
        min_pixels: 32 * 32,
        max_pixels: 1 << 20,
    };
    // 128×96 is already a multiple of 32: (96/16)·(128/16)/4 = 12 tokens.
    assert_eq!(b.image_tokens(128, 96), Some(12));
    let small = VisionBudget {
        max_pixels: 64 * 64,
        ..b
    };
    assert!(small.image_tokens(1920, 1080).unwrap() <= 64 * 64 / (32 * 32));
}

#[test]
fn ipc_shapes() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
    assert_eq!(
        asset_url(Path::new("/a b/é.png")),
        if cfg!(windows) {
            "http://asset.localhost/%2Fa%20b%2F%C3%A9.png"
        } else {
            "asset://localhost/%2Fa%20b%2F%C3%A9.png"
        }
    );
    let e = GenerationEvent::Token {
        text: "a".into(),
        thinking: String::new(),
        elapsed_ms: 1.5,
    };
    assert_eq!(
        serde_json::to_value(e).unwrap(),
        json!({"type": "token", "text": "a", "thinking": "", "elapsedMs": 1.5})
    );
    let e = GenerationEvent::Started {
        message_id: 3,
        prompt_tokens: 9,
    };
    assert_eq!(
        serde_json::to_value(e).unwrap(),
        json!({"type": "started", "messageId": 3, "promptTokens": 9})
    );
    let e = GenerationEvent::Error {
        error: ErrorView::from(&AppError::Busy),
    };
    assert_eq!(serde_json::to_value(e).unwrap()["error"]["kind"], "busy");
}

/// A new turn asking `PROMPT` about the image `hash`.
fn image_turn(conversation: ConversationId, hash: String) -> Turn {
    Turn::New {
        conversation,
        text: PROMPT.into(),
        attachments: vec![AttachmentRef::Hash(hash)],
    }
}

/// A new turn asking when the ball appears in `clip`, sampled at `fps`.
fn ball_turn(conversation: ConversationId, clip: String, fps: f64) -> Turn {
    Turn::New {
        conversation,
        text: "When does the ball appear?".into(),
        attachments: vec![AttachmentRef::With {
            hash: clip,
            video: Some(VideoRequest {
                fps: Some(fps),
                ..VideoRequest::default()
            }),
        }],
    }
}

/// The fixture clip (20 frames at 10 fps, 2 s) imported and recorded; its hash.
fn ball_clip(w: &World) -> String {
    let a = w
        .store
        .import_path(fixtures().join("media/moving_104x72.mkv"))
        .unwrap();
    w.history.lock().unwrap().record_attachment(&a).unwrap();
    a.hash
}

#[test]
fn a_video_is_sent_with_its_stored_options_and_here_becomes_a_range() {
    let w = World::new();
    let c = w.conversation();
    let clip = ball_clip(&w);
    let sampled = VideoRequest {
        fps: Some(4.0),
        start: Some(0.5),
        end: Some(1.5),
        ..VideoRequest::default()
    };
    let here = VideoRequest {
        here: Some(1.0),
        max_frames: Some(6),
        ..VideoRequest::default()
    };
    let mut h = w.history.lock().unwrap();
    h.add_user_message_with(c, "when?", &[(clip.as_str(), Some(&sampled))])
        .unwrap();
    h.add_user_message_with(c, "and here?", &[(clip.as_str(), Some(&here))])
        .unwrap();
    let stored = h.messages(c).unwrap();
    drop(h);
    assert_eq!(stored[0].attachments[0].video.as_ref(), Some(&sampled));
    assert_eq!(stored[0].attachments[0].duration_ms, Some(2000));
    assert_eq!(stored[0].attachments[0].fps, Some(10.0));

    let m = engine_messages(&stored, &w.store, &Settings::default());
    let options = |i: usize| match &m[i].content[0] {
        Content::Video(VideoInput::File { path, options }) => {
            assert!(path.starts_with(w.store.data_dir()) && path.exists());
            options.clone()
        }
        other => panic!("message {i}: {other:?}"),
    };
    assert_eq!(
        options(0),
        glimpse_models::processor::VideoOptions {
            fps: Some(4.0),
            max_frames: None,
            start: Some(0.5),
            end: Some(1.5),
        }
    );
    // "here" on a 2 s clip (shorter than the window): the whole clip, with the frame cap kept.
    assert_eq!(
        options(1),
        glimpse_models::processor::VideoOptions {
            fps: None,
            max_frames: Some(6),
            start: Some(0.0),
            end: Some(2.0),
        }
    );
    // The IPC view carries the options back to the player.
    let view = AttachmentView::new(&stored[1].attachments[0], &w.store, None);
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["video"], json!({"maxFrames": 6, "here": 1.0}));
    assert_eq!(
        (json["durationMs"].clone(), json["fps"].clone()),
        (json!(2000), json!(10.0))
    );
    assert!(json["thumbnailUrl"]
        .as_str()
        .unwrap()
        .starts_with("asset://"));
}

#[test]
fn frame_extraction_streams_progress_before_the_answer() {
    let w = World::new().with_grounding_model();
    let c = w.conversation();
    let clip = ball_clip(&w);
    let (sink, rx) = sink_with(|_| {});
    let turn = ball_turn(c, clip, 5.0);
    let settings = Settings {
        max_new_tokens: Some(2),
        ..greedy()
    };
    let ids = w.chat().start(turn, settings, sink).unwrap();
    let events = collect(&rx);
    let progress: Vec<(usize, usize)> = events
        .iter()
        .map_while(|e| match e {
            GenerationEvent::Progress { stage, done, total } => {
                assert_eq!(*stage, "video");
                Some((*done, *total))
            }
            _ => None,
        })
        .collect();
    // 5 fps over 2 s: 10 frames, each reported once, in order, before the answer starts.
    assert_eq!(progress, (1..=10).map(|d| (d, 10)).collect::<Vec<_>>());
    assert!(
        matches!(events[progress.len()], GenerationEvent::Started { .. }),
        "{:?}",
        events[progress.len()]
    );
    assert!(matches!(events.last(), Some(GenerationEvent::Done { .. })));
    // Regenerate sends the same frames: the options are stored with the question.
    let stored = w
        .history
        .lock()
        .unwrap()
        .message(MessageId(ids.user_message_id))
        .unwrap();
    assert_eq!(stored.attachments[0].video.as_ref().unwrap().fps, Some(5.0));
}

#[test]
fn cancel_during_frame_extraction_stops_it_and_keeps_an_interrupted_answer() {
    let w = World::new().with_grounding_model();
    let c = w.conversation();
    let clip = ball_clip(&w);
    let slot = w.slot.clone();
    let (sink, rx) = sink_with(move |e| {
        if matches!(e, GenerationEvent::Progress { done: 1, .. }) {
            slot.cancel();
        }
    });
    let turn = ball_turn(c, clip, 10.0);
    let ids = w.chat().start(turn, greedy(), sink).unwrap();
    let events = collect(&rx);
    let extracted = events
        .iter()
        .filter(|e| matches!(e, GenerationEvent::Progress { .. }))
        .count();
    // Stopped at the next frame after the cancel, of 20.
    assert!(extracted <= 2, "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(
            e,
            GenerationEvent::Started { .. } | GenerationEvent::Token { .. }
        )),
        "{events:?}"
    );
    let GenerationEvent::Done { stats } = events.last().unwrap() else {
        panic!("last event: {:?}", events.last());
    };
    assert_eq!(stats.finish_reason, FinishReason::Cancelled);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!w.slot.is_busy());
    let answer = w
        .history
        .lock()
        .unwrap()
        .message(MessageId(ids.assistant_message_id))
        .unwrap();
    assert_eq!(answer.status, MessageStatus::Interrupted);
}

#[test]
fn a_here_reference_to_an_unknown_video_is_refused_before_anything_is_stored() {
    let w = World::new().with_grounding_model();
    let c = w.conversation();
    let (sink, _rx) = sink_with(|_| {});
    let turn = Turn::New {
        conversation: c,
        text: "what happens here?".into(),
        attachments: vec![AttachmentRef::With {
            hash: "00".repeat(32),
            video: Some(VideoRequest {
                here: Some(3.0),
                ..VideoRequest::default()
            }),
        }],
    };
    let err = w.chat().start(turn, greedy(), sink).unwrap_err();
    assert_eq!(err.kind(), "unknownAttachment");
    assert_eq!(w.message_count(c), 0);
    assert!(!w.slot.is_busy());
}

mod prefill;
