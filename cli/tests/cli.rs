//! `glimpse generate` end to end on the fixture checkpoints: the real engine, the real binary.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn glimpse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(args)
        .current_dir(fixtures())
        .output()
        .expect("the glimpse binary runs")
}

/// Fails the test with the command's own error output when it did not succeed.
fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn last_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {stdout}"))
}

fn stderr_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(
        !out.status.success(),
        "expected a failure, got success: {err}"
    );
    assert_eq!(err.lines().count(), 1, "errors are one line: {err}");
    err
}

#[test]
fn trained_grounding_model_gives_its_trained_answer() {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("reference/grounding/answer.json")).unwrap(),
    )
    .unwrap();
    let out = glimpse(&[
        "generate",
        "--model",
        "models/grounding",
        "--image",
        "media/redsquare_128x96.png",
        "--prompt",
        reference["prompt"].as_str().unwrap(),
        "--temperature",
        "0",
        "--json",
    ]);
    assert_success(&out);
    let j = last_json(&out);
    assert_eq!(j["text"], reference["answer"]);
    assert_eq!(j["token_ids"], reference["answer_token_ids"]);
    assert_eq!(
        j["generated_tokens"].as_u64().unwrap() as usize,
        reference["answer_token_ids"].as_array().unwrap().len()
    );
    assert!(j["prompt_tokens"].as_u64().unwrap() > 10);
    assert!(j["prefill_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn streams_the_answer_without_json() {
    let out = glimpse(&[
        "generate",
        "--model",
        "models/grounding",
        "--image",
        "media/redsquare_128x96.png",
        "--prompt",
        "Locate the red square, output its bbox coordinates using JSON format.",
        "--temperature",
        "0",
    ]);
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"bbox_2d\": [250, 312, 484, 625]"));
}

#[test]
fn dump_writes_inputs_and_logits() {
    let dir = std::env::temp_dir().join(format!("glimpse-dump-{}", std::process::id()));
    let out = glimpse(&[
        "generate",
        "--model",
        "models/moe-hub",
        "--image",
        "media/smooth_96x64.png",
        "--video",
        "media/moving_104x72.mkv",
        "--prompt",
        "What moves?",
        "--max-new-tokens",
        "2",
        "--temperature",
        "0",
        "--json",
        "--dump",
        dir.to_str().unwrap(),
    ]);
    assert_success(&out);
    let inputs =
        candle_core::safetensors::load(dir.join("inputs.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let l = inputs["input_ids"].dims()[1];
    assert_eq!(inputs["position_ids"].dims(), &[3, 1, l]);
    for key in [
        "pixel_values",
        "image_grid_thw",
        "pixel_values_videos",
        "video_grid_thw",
    ] {
        assert!(inputs.contains_key(key), "{key} missing");
    }
    assert_eq!(inputs["input_ids"].dtype(), candle_core::DType::I64);
    let logits =
        candle_core::safetensors::load(dir.join("logits.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(logits["logits"].rank(), 1);
    let j = last_json(&out);
    assert_eq!(j["prompt_tokens"].as_u64().unwrap() as usize, l);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let prompt = ["--prompt", "What is this?"];
    let base = ["generate", "--model", "models/dense-v5"];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        args.extend_from_slice(&prompt);
        glimpse(&args)
    };
    let e = stderr_line(&run(&["--image", "media/bad/truncated.png"]));
    assert!(e.contains("truncated.png"), "{e}");
    let e = stderr_line(&run(&["--image", "media/bad/text.jpg"]));
    assert!(e.contains("text.jpg"), "{e}");
    let e = stderr_line(&run(&["--video", "media/bad/audio_only.mkv"]));
    assert!(e.contains("audio_only.mkv"), "{e}");
    let e = stderr_line(&run(&["--image", "media/does-not-exist.png"]));
    assert!(e.contains("does-not-exist.png"), "{e}");
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let long: String = (0..6000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let out = glimpse(&["generate", "--model", "models/dense-v5", "--prompt", &long]);
    let e = stderr_line(&out);
    assert!(e.contains("context"), "{e}");
}

#[test]
fn missing_tokenizer_or_template_is_named() {
    let tmp = std::env::temp_dir().join(format!("glimpse-missing-{}", std::process::id()));
    for missing in ["tokenizer.json", "chat_template.jinja"] {
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        for entry in std::fs::read_dir(fixtures().join("models/dense-v5")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != missing {
                std::fs::copy(entry.path(), tmp.join(entry.file_name())).unwrap();
            }
        }
        let out = glimpse(&[
            "generate",
            "--model",
            tmp.to_str().unwrap(),
            "--prompt",
            "hi",
        ]);
        let e = stderr_line(&out);
        let stem = missing.split('.').next().unwrap();
        assert!(e.contains(stem) || e.contains("template"), "{missing}: {e}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn unknown_device_and_dtype_are_refused() {
    let e = stderr_line(&glimpse(&[
        "generate",
        "--model",
        "models/dense-v5",
        "--prompt",
        "x",
        "--dtype",
        "int3",
    ]));
    assert!(e.contains("int3"), "{e}");
    let e = stderr_line(&glimpse(&[
        "generate",
        "--model",
        "models/dense-v5",
        "--prompt",
        "x",
        "--device",
        "tpu",
    ]));
    assert!(e.contains("tpu"), "{e}");
}

#[test]
fn video_plan_prints_the_cost_as_json() {
    let out = glimpse(&[
        "video-plan",
        "--model",
        "models/video-ball",
        "media/ball_128x96.mkv",
    ]);
    assert_success(&out);
    let plan = last_json(&out);
    // 8 s at 4 fps, sampled at the checkpoint's 2 fps: 16 frames, 8 temporal groups of 6×8 patches.
    assert_eq!(plan["metadata"]["total_num_frames"], 32);
    assert_eq!(plan["metadata"]["duration"], 8.0);
    assert_eq!(plan["frame_indices"].as_array().unwrap().len(), 16);
    assert_eq!(plan["grid_thw"], serde_json::json!([8, 6, 8]));
    assert_eq!(plan["vision_tokens"], 96);

    // A time range: frames and timestamps are absolute, and `--extract` decodes them.
    let out = glimpse(&[
        "video-plan",
        "--model",
        "models/video-ball",
        "media/ball_128x96.mkv",
        "--fps",
        "1",
        "--start",
        "0:02",
        "--end",
        "6",
        "--extract",
    ]);
    assert_success(&out);
    let plan = last_json(&out);
    assert_eq!(plan["frame_indices"], serde_json::json!([8, 13, 18, 23]));
    assert_eq!(
        plan["frame_times"],
        serde_json::json!([2.0, 3.25, 4.5, 5.75])
    );
    assert_eq!(plan["range"], serde_json::json!([2.0, 6.0]));
    assert!(plan["extract_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(plan["pixel_values_len"], 2 * 6 * 8 * 3 * 2 * 16 * 16);
}

#[test]
fn trained_video_model_answers_through_the_cli() {
    let out = glimpse(&[
        "generate",
        "--model",
        "models/video-ball",
        "--video",
        "media/ball_128x96.mkv",
        "--prompt",
        "When does the ball appear?",
        "--temperature",
        "0",
        "--json",
    ]);
    assert_success(&out);
    assert_eq!(last_json(&out)["text"], "The ball appears at 3.5 seconds.");
}

#[test]
fn bad_videos_and_video_options_fail_with_one_line() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            "models/video-ball",
            "--prompt",
            "When?",
        ];
        args.extend_from_slice(extra);
        stderr_line(&glimpse(&args))
    };
    let e = run(&["--video", "media/bad/audio_only.mkv"]);
    assert!(e.contains("no video stream"), "{e}");
    let e = run(&["--video", "media/bad/unknown_codec.mkv"]);
    assert!(e.contains("codec is unknown"), "{e}");
    let e = run(&["--video", "media/bad/truncated.mp4"]);
    assert!(e.contains("truncated"), "{e}");
    let e = run(&["--video", "media/ball_128x96.mkv", "--fps", "0"]);
    assert!(
        e.contains("frames per second must be a positive number"),
        "{e}"
    );
    let e = run(&["--video", "media/ball_128x96.mkv", "--start", "9"]);
    assert!(e.contains("8.000 s long"), "{e}");
    let out = glimpse(&[
        "video-plan",
        "--model",
        "models/video-ball",
        "x.mkv",
        "--start",
        "1:99",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a time"));
}
