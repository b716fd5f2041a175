//! The processor against transformers 5.24 references (tests/fixtures/reference/<model>/<case>):
//! rendered and expanded prompt text, input_ids, pixel values (within one 8-bit level), grids,
//! sampled frame indices and timestamps.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use glimpse_models::processor::{
    Content, ImageInput, Message, Processor, RenderOptions, VideoInput,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn load_case(
    model: &str,
    case: &str,
) -> (serde_json::Value, std::collections::HashMap<String, Tensor>) {
    let dir = fixtures().join("reference").join(model);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{case}.json"))).unwrap())
            .unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join(format!("{case}.safetensors")), &Device::Cpu)
            .unwrap();
    (json, tensors)
}

/// transformers' message JSON (with media paths relative to tests/fixtures) to `Message`s.
fn messages(json: &serde_json::Value) -> Vec<Message> {
    json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let role = m["role"].as_str().unwrap();
            let content = match &m["content"] {
                serde_json::Value::String(s) => vec![Content::Text(s.clone())],
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|it| match it["type"].as_str().unwrap() {
                        "text" => Content::Text(it["text"].as_str().unwrap().into()),
                        "image" => Content::Image(ImageInput::File(
                            fixtures().join(it["image"].as_str().unwrap()),
                        )),
                        "video" => Content::Video(VideoInput::file(
                            fixtures().join(it["video"].as_str().unwrap()),
                        )),
                        other => panic!("unknown content type {other}"),
                    })
                    .collect(),
                other => panic!("bad content {other}"),
            };
            Message::new(role, content)
        })
        .collect()
}

fn processor_for(json: &serde_json::Value) -> Processor {
    let model = json["model"].as_str().unwrap();
    let mut p = Processor::from_dir(&fixtures().join(model)).unwrap();
    if let Some(kw) = json.get("processor_kwargs").and_then(|k| k.as_object()) {
        for (k, v) in kw {
            match k.as_str() {
                "fps" => p.config.video.fps = Some(v.as_f64().unwrap()),
                "num_frames" => {
                    p.config.video.num_frames = Some(v.as_u64().unwrap() as usize);
                    p.config.video.fps = None;
                }
                "min_pixels" => p.config.image.min_pixels = v.as_u64().unwrap() as usize,
                "max_pixels" => p.config.image.max_pixels = v.as_u64().unwrap() as usize,
                other => panic!("processor kwarg {other} not handled by the test"),
            }
        }
    }
    p
}

fn grids(t: &Tensor) -> Vec<[usize; 3]> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|r| [r[0] as usize, r[1] as usize, r[2] as usize])
        .collect()
}

/// Largest difference in 8-bit levels (|Δ|·std·255) and the number of differing values.
fn level_diff(ours: &[f32], theirs: &Tensor, std: f64) -> (f64, usize) {
    let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ours.len(), theirs.len(), "pixel value count");
    let mut max = 0f64;
    let mut n = 0;
    for (a, b) in ours.iter().zip(&theirs) {
        let d = (*a as f64 - *b as f64).abs() * std * 255.0;
        if d > 1e-4 {
            n += 1;
        }
        max = max.max(d);
    }
    (max, n)
}

fn check_case(model: &str, case: &str) {
    let (json, t) = load_case(model, case);
    let p = processor_for(&json);
    let msgs = messages(&json);
    let opts = RenderOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    // 1. Template text, before and after expansion.
    let rendered = p.render(&msgs, &opts).unwrap();
    assert_eq!(
        rendered,
        json["prompt"].as_str().unwrap(),
        "{model}/{case}: rendered prompt"
    );
    let out = p.process(&msgs, &opts).unwrap();
    if let Some(expanded) = json.get("expanded_prompt").and_then(|e| e.as_str()) {
        assert_eq!(out.text, expanded, "{model}/{case}: expanded prompt");
    }
    // 2. Token ids.
    let ids: Vec<i64> = t["input_ids"].flatten_all().unwrap().to_vec1().unwrap();
    let ours: Vec<i64> = out.input_ids.iter().map(|&i| i as i64).collect();
    assert_eq!(ours, ids, "{model}/{case}: input_ids");
    // 3. Images: grids exact, pixels within one level.
    if let Some(pv) = t.get("pixel_values") {
        assert_eq!(out.image_grid_thw(), grids(&t["image_grid_thw"]).as_slice());
        let (max, n) = level_diff(&out.images.pixel_values, pv, p.config.image.image_std[0]);
        println!("{model}/{case}: images max diff {max:.4} levels, {n} values differ");
        assert!(
            max <= 1.0 + 1e-3,
            "{model}/{case}: image pixels off by {max} levels"
        );
    } else {
        assert!(out.images.grid_thw.is_empty());
    }
    // 4. Videos: grids, frame indices, timestamps, pixels.
    if let Some(pv) = t.get("pixel_values_videos") {
        assert_eq!(out.video_grid_thw(), grids(&t["video_grid_thw"]));
        let (max, n) = level_diff(&out.pixel_values_videos(), pv, p.config.video.image_std[0]);
        println!("{model}/{case}: videos max diff {max:.4} levels, {n} values differ");
        assert!(
            max <= 1.0 + 1e-3,
            "{model}/{case}: video pixels off by {max} levels"
        );
        for (v, info) in out.videos.iter().zip(json["video"].as_array().unwrap()) {
            let idx: Vec<usize> = info["frames_indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(v.frame_indices, idx, "{model}/{case}: frame indices");
            assert_eq!(v.fps, info["source_fps"].as_f64().unwrap());
            let ts: Vec<f64> = info["timestamps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(v.timestamps, ts, "{model}/{case}: timestamps");
        }
    } else {
        assert!(out.videos.is_empty());
    }
}

#[test]
fn dense_v5_text() {
    check_case("dense-v5", "text");
}

#[test]
fn dense_v5_image() {
    check_case("dense-v5", "image");
}

#[test]
fn dense_v5_multi_image() {
    check_case("dense-v5", "multi_image");
}

#[test]
fn dense_v5_video() {
    check_case("dense-v5", "video");
}

#[test]
fn dense_v5_image_video() {
    check_case("dense-v5", "image_video");
}

#[test]
fn moe_hub_text() {
    check_case("moe-hub", "text");
}

#[test]
fn moe_hub_image() {
    check_case("moe-hub", "image");
}

#[test]
fn moe_hub_multi_image() {
    check_case("moe-hub", "multi_image");
}

#[test]
fn moe_hub_video() {
    check_case("moe-hub", "video");
}
