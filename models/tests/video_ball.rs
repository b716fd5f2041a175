//! The trained video fixture through the real engine: for the clip where a ball appears at 3.5 s
//! it answers "The ball appears at 3.5 seconds.", for the clip without a ball "No ball appears."
//! (so the answer depends on the decoded pixels), with the checkpoint's default 2 fps sampling.

use std::path::{Path, PathBuf};

use candle_core::Device;
use glimpse_models::engine::{Engine, LoadOptions};
use glimpse_models::generation::{CancelToken, Overrides};
use glimpse_models::processor::{
    Content, Message, PrepareHooks, RenderOptions, VideoInput, VideoProgress,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

#[test]
fn trained_video_model_says_when_the_ball_appears() {
    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("reference/video-ball/answers.json")).unwrap(),
    )
    .unwrap();
    let mut engine = Engine::load(
        &fixtures().join("models/video-ball"),
        &LoadOptions::default(),
    )
    .unwrap();
    let prompt = refs["prompt"].as_str().unwrap();
    let cases = refs["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let video = fixtures().join(case["video"].as_str().unwrap());
        let msgs = [Message::new(
            "user",
            vec![
                Content::Video(VideoInput::file(&video)),
                Content::Text(prompt.into()),
            ],
        )];
        let last = std::sync::Mutex::new(None::<VideoProgress>);
        let on_progress = |p: VideoProgress| *last.lock().unwrap() = Some(p);
        let prepared = engine
            .prepare_with(
                &msgs,
                &RenderOptions {
                    add_generation_prompt: true,
                    ..Default::default()
                },
                &PrepareHooks {
                    progress: Some(&on_progress),
                    cancel: None,
                },
            )
            .unwrap();
        // 8 s at the default 2 fps: 16 frames, reported one by one.
        assert_eq!(
            *last.lock().unwrap(),
            Some(VideoProgress {
                done: 16,
                total: 16
            })
        );
        // The prompt (timestamps, placeholder count) is transformers' own.
        let t = candle_core::safetensors::load(
            fixtures().join(case["reference"].as_str().unwrap()),
            &Device::Cpu,
        )
        .unwrap();
        let ids: Vec<i64> = t["input_ids"].flatten_all().unwrap().to_vec1().unwrap();
        let ours: Vec<i64> = prepared.input_ids().iter().map(|&i| i64::from(i)).collect();
        assert_eq!(ours, ids, "{}: input ids", video.display());
        let params = engine.sampling_params(&Overrides {
            temperature: Some(0.0),
            max_new_tokens: Some(40),
            ..Default::default()
        });
        let stats = engine
            .generate(&prepared, &params, &CancelToken::new(), &mut |_| {})
            .unwrap();
        assert_eq!(
            stats.text,
            case["answer"].as_str().unwrap(),
            "{}",
            video.display()
        );
    }
}
