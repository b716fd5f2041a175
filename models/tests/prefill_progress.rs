//! Progress and cancellation before the first token, through the real engine on a tiny
//! checkpoint: every vision block and decoder layer is reported, in order, before any token;
//! reporting changes no number; a cancel during the vision tower is honoured at the next block.

use std::path::{Path, PathBuf};

use glimpse_models::engine::{Engine, LoadOptions, Prepared};
use glimpse_models::generation::{
    CancelToken, Overrides, PrefillProgress, PrefillStage, StreamEvent,
};
use glimpse_models::processor::{Content, ImageInput, Message, RenderOptions};
use glimpse_models::Error;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn config_depths(model: &str) -> (usize, usize) {
    let c: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("models").join(model).join("config.json"))
            .unwrap(),
    )
    .unwrap();
    let n = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
    (
        n(&c["vision_config"]["depth"]),
        n(&c["text_config"]["num_hidden_layers"]),
    )
}

fn image_prompt(engine: &Engine, images: &[&str]) -> Prepared {
    let mut content: Vec<Content> = images
        .iter()
        .map(|f| Content::Image(ImageInput::File(fixtures().join("media").join(f))))
        .collect();
    content.push(Content::Text("What is in the picture?".into()));
    engine
        .prepare(
            &[Message::new("user", content)],
            &RenderOptions {
                add_generation_prompt: true,
                ..Default::default()
            },
        )
        .unwrap()
}

#[derive(Debug, PartialEq)]
enum Seen {
    Progress(PrefillProgress),
    Token,
    Done,
}

fn steps(stage: PrefillStage, total: usize) -> Vec<Seen> {
    (1..=total)
        .map(|done| Seen::Progress(PrefillProgress { stage, done, total }))
        .collect()
}

#[test]
fn every_vision_block_and_decoder_layer_is_reported_before_the_first_token() {
    let model = "dense-v5";
    let (depth, layers) = config_depths(model);
    let mut engine = Engine::load(
        &fixtures().join("models").join(model),
        &LoadOptions::default(),
    )
    .unwrap();
    // Two images of different sizes: one tower call, so one pass over the blocks.
    let prepared = image_prompt(&engine, &["noise_200x130.png", "gray_77x51.png"]);
    let params = engine.sampling_params(&Overrides {
        temperature: Some(0.0),
        max_new_tokens: Some(3),
        ..Default::default()
    });
    let seen = std::cell::RefCell::new(Vec::new());
    let stats = engine
        .generate_with(
            &prepared,
            &params,
            &CancelToken::new(),
            &mut |p| seen.borrow_mut().push(Seen::Progress(p)),
            &mut |e| {
                seen.borrow_mut().push(match e {
                    StreamEvent::Done(_) => Seen::Done,
                    _ => Seen::Token,
                })
            },
        )
        .unwrap();
    let seen = seen.into_inner();
    let mut want = steps(PrefillStage::Images, depth);
    want.extend(steps(PrefillStage::Prompt, layers));
    let n_progress = want.len();
    assert_eq!(&seen[..n_progress], &want[..]);
    assert!(seen[n_progress..]
        .iter()
        .all(|s| !matches!(s, Seen::Progress(_))));
    assert_eq!(seen.last(), Some(&Seen::Done));
    assert!(!stats.token_ids.is_empty());

    // Reporting is observation only: the same tokens without it.
    let plain = engine
        .generate(&prepared, &params, &CancelToken::new(), &mut |_| {})
        .unwrap();
    assert_eq!(plain.token_ids, stats.token_ids);
}

#[test]
fn a_cancel_during_the_vision_tower_stops_at_the_next_block() {
    let model = "dense-v5";
    let (depth, _) = config_depths(model);
    assert!(depth >= 3, "the fixture needs blocks left after the cancel");
    let mut engine = Engine::load(
        &fixtures().join("models").join(model),
        &LoadOptions::default(),
    )
    .unwrap();
    let prepared = image_prompt(&engine, &["noise_200x130.png"]);
    let params = engine.sampling_params(&Overrides {
        temperature: Some(0.0),
        max_new_tokens: Some(3),
        ..Default::default()
    });
    let cancel = CancelToken::new();
    let mut progress = Vec::new();
    let mut tokens = 0;
    let err = engine
        .generate_with(
            &prepared,
            &params,
            &cancel,
            &mut |p| {
                progress.push(p);
                if p.done == 1 {
                    cancel.cancel();
                }
            },
            &mut |_| tokens += 1,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    // Block 2 ran (it had started), then the check after it stopped the rest.
    assert_eq!(
        progress,
        vec![PrefillProgress {
            stage: PrefillStage::Images,
            done: 1,
            total: depth
        }]
    );
    assert_eq!(tokens, 0);

    // The engine is usable afterwards: a fresh token answers normally.
    let stats = engine
        .generate(&prepared, &params, &CancelToken::new(), &mut |_| {})
        .unwrap();
    assert!(!stats.token_ids.is_empty());
}
