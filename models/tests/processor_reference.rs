//! The processor against the processor-only transformers 5.24 references
//! (tests/fixtures/reference/processor): images of every kind and budget, videos with several
//! sampling settings, and chat-template renders with their token ids.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use glimpse_models::processor::image::preprocess_images;
use glimpse_models::processor::prompt::{encode, expand_placeholders};
use glimpse_models::processor::resize::smart_resize;
use glimpse_models::processor::{
    load_image, AlphaMode, DecodeLimits, ImageProcessorConfig, Processor, RenderOptions, VideoInput,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn reference(rel: &str) -> PathBuf {
    fixtures().join("reference/processor").join(rel)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn usize_of(v: &serde_json::Value) -> usize {
    v.as_u64().unwrap() as usize
}

fn pairs(v: &serde_json::Value) -> Vec<(usize, usize)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (usize_of(&p[0]), usize_of(&p[1])))
        .collect()
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

/// Largest |Δ| in 8-bit levels.
fn max_level_diff(ours: &[f32], theirs: &Tensor, std: f64) -> f64 {
    let theirs = theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ours.len(), theirs.len(), "pixel value count");
    ours.iter()
        .zip(&theirs)
        .map(|(a, b)| (*a as f64 - *b as f64).abs() * std * 255.0)
        .fold(0.0, f64::max)
}

fn triple(v: &serde_json::Value) -> [f64; 3] {
    let a = v.as_array().unwrap();
    [0, 1, 2].map(|i| a[i].as_f64().unwrap())
}

fn image_config(case: &serde_json::Value) -> ImageProcessorConfig {
    let mut min = usize_of(&case["size"]["shortest_edge"]);
    let mut max = usize_of(&case["size"]["longest_edge"]);
    for (k, v) in case["call_kwargs"].as_object().unwrap() {
        match k.as_str() {
            "min_pixels" => min = usize_of(v),
            "max_pixels" => max = usize_of(v),
            other => panic!("call kwarg {other} not handled by the test"),
        }
    }
    ImageProcessorConfig {
        min_pixels: min,
        max_pixels: max,
        patch_size: usize_of(&case["patch_size"]),
        temporal_patch_size: usize_of(&case["temporal_patch_size"]),
        merge_size: usize_of(&case["merge_size"]),
        image_mean: triple(&case["image_mean"]),
        image_std: triple(&case["image_std"]),
        rescale_factor: 1.0 / 255.0,
        do_resize: true,
    }
}

#[test]
fn images_match_transformers() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(reference("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    for path in entries {
        let case = read_json(&path);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if case.get("images").is_none() {
            continue; // the size table, checked below
        }
        let cfg = image_config(&case);
        let images: Vec<_> = case["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                load_image(
                    &fixtures().join(p.as_str().unwrap()),
                    AlphaMode::default(),
                    DecodeLimits::default(),
                )
                .unwrap()
            })
            .collect();
        let batch = preprocess_images(&images, &cfg).unwrap();
        assert_eq!(
            batch.resized,
            pairs(&case["resized_hw"]),
            "{name}: resized size"
        );
        let want_grids: Vec<[usize; 3]> = case["image_grid_thw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| [usize_of(&g[0]), usize_of(&g[1]), usize_of(&g[2])])
            .collect();
        assert_eq!(batch.grid_thw, want_grids, "{name}: grid");
        if case["pixel_values_stored"].as_bool() == Some(true) {
            let t =
                candle_core::safetensors::load(path.with_extension("safetensors"), &Device::Cpu)
                    .unwrap();
            let max = max_level_diff(&batch.pixel_values, &t["pixel_values"], cfg.image_std[0]);
            println!("{name}: max |Δ| = {max:.4} levels");
            assert!(max <= 1.0 + 1e-3, "{name}: pixels off by {max} levels");
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} image cases found");
}

#[test]
fn hub_default_sizes() {
    let table = read_json(&reference("images/hub_defaults_sizes.json"));
    let (min, max) = (
        usize_of(&table["size"]["shortest_edge"]),
        usize_of(&table["size"]["longest_edge"]),
    );
    for c in table["cases"].as_array().unwrap() {
        let (h, w) = (
            usize_of(&c["original_hw"][0]),
            usize_of(&c["original_hw"][1]),
        );
        let want = (usize_of(&c["resized_hw"][0]), usize_of(&c["resized_hw"][1]));
        assert_eq!(smart_resize(h, w, 32, min, max).unwrap(), want, "{c}");
    }
}

#[test]
fn videos_match_transformers() {
    let moe = fixtures().join("models/moe-hub");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(reference("videos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    for path in entries {
        let case = read_json(&path);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if case["call_kwargs"].get("do_sample_frames").is_some() {
            // Pre-sampled frames with given indices: not an input form Glimpse offers for files.
            continue;
        }
        let mut p = Processor::from_dir(&moe).unwrap();
        let c = &case["constructor"];
        let v = &mut p.config.video;
        v.fps = c["fps"].as_f64();
        v.min_frames = usize_of(&c["min_frames"]);
        v.max_frames = usize_of(&c["max_frames"]);
        v.min_pixels = usize_of(&c["size"]["shortest_edge"]);
        v.max_pixels = usize_of(&c["size"]["longest_edge"]);
        for (k, val) in case["call_kwargs"].as_object().unwrap() {
            match k.as_str() {
                "fps" => v.fps = val.as_f64(),
                "num_frames" => {
                    v.num_frames = Some(usize_of(val));
                    v.fps = None;
                }
                other => panic!("call kwarg {other} not handled by the test"),
            }
        }
        let video = p
            .process_video(&VideoInput::file(
                fixtures().join(case["video"].as_str().unwrap()),
            ))
            .unwrap();
        let idx: Vec<usize> = case["frames_indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(usize_of)
            .collect();
        assert_eq!(video.frame_indices, idx, "{name}: frame indices");
        let ts: Vec<f64> = case["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect();
        // serde_json's float parsing is not always correctly rounded, so compare the values
        // to 1e-12 and the prompt strings exactly.
        assert_eq!(video.timestamps.len(), ts.len(), "{name}: timestamps");
        for (a, b) in video.timestamps.iter().zip(&ts) {
            assert!((a - b).abs() < 1e-12, "{name}: timestamp {a} vs {b}");
        }
        let strings: Vec<String> = video
            .timestamps
            .iter()
            .map(|&t| glimpse_models::processor::video::timestamp_text(t))
            .collect();
        let want: Vec<&str> = case["timestamp_strings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(strings, want, "{name}: timestamp strings");
        assert_eq!(
            video.resized,
            (
                usize_of(&case["resized_hw"][0]),
                usize_of(&case["resized_hw"][1])
            ),
            "{name}: resized"
        );
        let t = candle_core::safetensors::load(path.with_extension("safetensors"), &Device::Cpu)
            .unwrap();
        assert_eq!(
            vec![video.grid_thw],
            grids(&t["video_grid_thw"]),
            "{name}: grid"
        );
        let max = max_level_diff(
            &video.pixel_values,
            &t["pixel_values_videos"],
            p.config.video.image_std[0],
        );
        println!("{name}: max |Δ| = {max:.4} levels");
        assert!(max <= 1.0 + 1e-3, "{name}: pixels off by {max} levels");
        // Prompt expansion with timestamps, then token ids.
        let text = expand_placeholders(
            case["prompt_text"].as_str().unwrap(),
            &p.tokens,
            &[],
            p.config.image.merge_size,
            std::slice::from_ref(&video),
            p.config.video.merge_size,
        )
        .unwrap();
        if let Some(e) = case.get("expanded_prompt").and_then(|e| e.as_str()) {
            assert_eq!(text, e, "{name}: expanded prompt");
        }
        let ids: Vec<i64> = t["input_ids"].flatten_all().unwrap().to_vec1().unwrap();
        let ours: Vec<i64> = encode(&p.tokenizer, &text, None)
            .unwrap()
            .into_iter()
            .map(i64::from)
            .collect();
        assert_eq!(ours, ids, "{name}: input_ids");
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} video cases found");
}

#[test]
fn chat_template_renders_and_token_ids() {
    let refs = read_json(&reference("chat_template.json"));
    for model in ["moe-hub", "dense-v5"] {
        let p = Processor::from_dir(&fixtures().join("models").join(model)).unwrap();
        for (name, case) in refs["cases"].as_object().unwrap() {
            let mut opts = RenderOptions {
                add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(),
                tools: (!case["tools"].is_null()).then(|| case["tools"].clone()),
                ..Default::default()
            };
            for (k, v) in case["template_kwargs"].as_object().unwrap() {
                match k.as_str() {
                    "add_vision_id" => opts.add_vision_id = v.as_bool().unwrap(),
                    "enable_thinking" => opts.enable_thinking = v.as_bool(),
                    other => panic!("template kwarg {other} not handled by the test"),
                }
            }
            let text = p.template.render(&case["messages"], &opts).unwrap();
            assert_eq!(text, case["text"].as_str().unwrap(), "{model}/{name}: text");
            let ids: Vec<u32> = case["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(p.encode(&text).unwrap(), ids, "{model}/{name}: input_ids");
        }
    }
}

#[test]
fn bad_media_fail_cleanly() {
    let p = Processor::from_dir(&fixtures().join("models/dense-v5")).unwrap();
    let bad = fixtures().join("media/bad");
    for img in ["empty.png", "text.jpg", "truncated.png"] {
        let r = load_image(
            &bad.join(img),
            AlphaMode::default(),
            DecodeLimits::default(),
        );
        assert!(
            matches!(r, Err(glimpse_models::Error::ImageDecode { .. })),
            "{img}: {r:?}"
        );
    }
    use glimpse_models::Error as E;
    for vid in ["audio_only.mkv", "text.mp4", "truncated.mkv"] {
        let r = p.process_video(&VideoInput::file(bad.join(vid)));
        let e = r.expect_err(vid);
        let kind_ok = match vid {
            "audio_only.mkv" => matches!(e, E::NoVideoStream { .. }),
            "text.mp4" => matches!(e, E::VideoDecode { .. }),
            _ => matches!(e, E::VideoTruncated { .. } | E::NoVideoFrames { .. }),
        };
        assert!(kind_ok, "{vid}: {e}");
        assert!(e.to_string().contains(vid), "{vid}: {e}");
        println!("{vid}: {e}");
    }
}
