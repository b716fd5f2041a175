//! Progress before the first token of an image answer, its cancel, and the time to first token.

use super::*;

fn depths(w: &World) -> (usize, usize) {
    let engine = w.engine.lock().unwrap();
    let config = &engine.as_ref().unwrap().engine.config;
    (config.vision.depth, config.text.num_hidden_layers)
}

fn progress_of(events: &[GenerationEvent]) -> Vec<(&'static str, usize, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            GenerationEvent::Progress { stage, done, total } => Some((*stage, *done, *total)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_image_answer_reports_the_vision_tower_and_the_prompt_before_its_first_token() {
    let w = World::new().with_grounding_model();
    let (depth, layers) = depths(&w);
    let c = w.conversation();
    let hash = w.red_square();
    let (sink, rx) = sink_with(|_| {});
    let turn = image_turn(c, hash);
    let ids = w.chat().start(turn, greedy(), sink).unwrap();
    let events = collect(&rx);
    assert!(matches!(events[0], GenerationEvent::Started { .. }));
    let mut want: Vec<_> = (1..=depth).map(|d| ("image", d, depth)).collect();
    want.extend((1..=layers).map(|d| ("prompt", d, layers)));
    assert_eq!(progress_of(&events), want);
    // All of it between `started` and the first token.
    let first_token = events
        .iter()
        .position(|e| matches!(e, GenerationEvent::Token { .. }))
        .unwrap();
    assert_eq!(first_token, 1 + want.len(), "{events:?}");

    let GenerationEvent::Done { stats } = events.last().unwrap() else {
        panic!("last event: {:?}", events.last());
    };
    let ttft = stats.first_token_ms.expect("time to first token");
    // It covers the prefill and more (decoding the image, the prompt's template).
    assert!(ttft >= stats.prefill_ms, "{ttft} < {}", stats.prefill_ms);
    std::thread::sleep(Duration::from_millis(50));
    let stored = w
        .history
        .lock()
        .unwrap()
        .message(MessageId(ids.assistant_message_id))
        .unwrap();
    let kept = stored.stats.unwrap()["firstTokenMs"].as_f64().unwrap();
    assert!((kept - ttft).abs() < 1e-6, "stored {kept}, sent {ttft}");
}

#[test]
fn stop_while_the_image_is_read_ends_at_the_next_block_with_an_interrupted_answer() {
    let w = World::new().with_grounding_model();
    let c = w.conversation();
    let hash = w.red_square();
    let slot = w.slot.clone();
    let (sink, rx) = sink_with(move |e| {
        if matches!(
            e,
            GenerationEvent::Progress {
                stage: "image",
                done: 1,
                ..
            }
        ) {
            slot.cancel();
        }
    });
    let turn = image_turn(c, hash);
    let ids = w.chat().start(turn, greedy(), sink).unwrap();
    let events = collect(&rx);
    let (depth, _) = depths(&w);
    assert_eq!(progress_of(&events), vec![("image", 1, depth)]);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, GenerationEvent::Token { .. })),
        "{events:?}"
    );
    let GenerationEvent::Done { stats } = events.last().unwrap() else {
        panic!("last event: {:?}", events.last());
    };
    assert_eq!(stats.finish_reason, FinishReason::Cancelled);
    assert_eq!(stats.first_token_ms, None);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!w.slot.is_busy());
    let answer = w
        .history
        .lock()
        .unwrap()
        .message(MessageId(ids.assistant_message_id))
        .unwrap();
    assert_eq!(answer.status, MessageStatus::Interrupted);
    assert_eq!(answer.content, "");
}

#[test]
fn a_video_answer_reports_frames_then_the_tower_over_them_then_the_prompt() {
    let w = World::new().with_grounding_model();
    let (depth, layers) = depths(&w);
    let c = w.conversation();
    let clip = ball_clip(&w);
    let (sink, rx) = sink_with(|_| {});
    let turn = ball_turn(c, clip, 2.0);
    let settings = Settings {
        max_new_tokens: Some(2),
        ..greedy()
    };
    w.chat().start(turn, settings, sink).unwrap();
    let events = collect(&rx);
    let started = events
        .iter()
        .position(|e| matches!(e, GenerationEvent::Started { .. }))
        .unwrap();
    let after: Vec<_> = progress_of(&events[started..]);
    let mut want: Vec<_> = (1..=depth).map(|d| ("videoFrames", d, depth)).collect();
    want.extend((1..=layers).map(|d| ("prompt", d, layers)));
    assert_eq!(after, want);
    assert!(progress_of(&events[..started])
        .iter()
        .all(|(stage, _, _)| *stage == "video"));
}
