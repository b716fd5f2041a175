//! Video options and plans: frame sampling (with and without a time range) against transformers,
//! plans that agree with what extraction produces, progress and cancellation, frame previews,
//! and a named error for every kind of bad video or option.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use glimpse_models::generation::CancelToken;
use glimpse_models::processor::video::timestamp_text;
use glimpse_models::processor::video_plan::plan_from_metadata;
use glimpse_models::processor::{
    frame_at, Content, Message, PrepareHooks, Processor, RenderOptions, VideoInput, VideoMetadata,
    VideoOptions, VideoProgress,
};
use glimpse_models::Error;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn media(name: &str) -> PathBuf {
    fixtures().join("media").join(name)
}

fn processor() -> Processor {
    Processor::from_dir(&fixtures().join("models/dense-v5")).unwrap()
}

fn file(path: PathBuf, options: VideoOptions) -> VideoInput {
    VideoInput::File { path, options }
}

fn range(start: f64, end: f64) -> VideoOptions {
    VideoOptions {
        start: Some(start),
        end: Some(end),
        ..Default::default()
    }
}

#[test]
fn sampling_matches_transformers() {
    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("reference/processor/sampling.json")).unwrap(),
    )
    .unwrap();
    let base = processor().config.video;
    let cases = refs["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let mut cfg = base.clone();
        cfg.fps = Some(2.0);
        cfg.num_frames = None;
        cfg.min_frames = 4;
        cfg.max_frames = 768;
        for (k, v) in c["constructor"].as_object().unwrap() {
            match k.as_str() {
                "fps" => cfg.fps = v.as_f64(),
                "num_frames" => cfg.num_frames = v.as_u64().map(|n| n as usize),
                "min_frames" => cfg.min_frames = v.as_u64().unwrap() as usize,
                "max_frames" => cfg.max_frames = v.as_u64().unwrap() as usize,
                other => panic!("{name}: constructor kwarg {other}"),
            }
        }
        let mut opts = VideoOptions::default();
        for (k, v) in c["call_kwargs"].as_object().unwrap() {
            match k.as_str() {
                "fps" => opts.fps = v.as_f64(),
                other => panic!("{name}: call kwarg {other}"),
            }
        }
        if let Some(r) = c["range"].as_array() {
            opts.start = r[0].as_f64();
            opts.end = r[1].as_f64();
        }
        let meta = VideoMetadata::new(
            c["total_num_frames"].as_u64().unwrap() as usize,
            c["fps"].as_f64(),
            64,
            64,
        );
        let plan = plan_from_metadata(&meta, &opts, &cfg, Path::new(name)).unwrap();
        let want: Vec<usize> = c["frames_indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(plan.frame_indices, want, "{name}: indices");
        let strings: Vec<String> = plan.timestamps.iter().map(|&t| timestamp_text(t)).collect();
        let want: Vec<&str> = c["timestamp_strings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(strings, want, "{name}: timestamps");
        for (a, b) in plan
            .timestamps
            .iter()
            .zip(c["timestamps"].as_array().unwrap())
        {
            assert!((a - b.as_f64().unwrap()).abs() < 1e-9, "{name}: {a} vs {b}");
        }
        let fps = meta.fps_or_default();
        for (t, i) in plan.frame_times.iter().zip(&plan.frame_indices) {
            assert_eq!(*t, *i as f64 / fps, "{name}: frame time");
        }
        let first = c["clip_first"].as_u64().unwrap() as f64;
        let count = c["clip_frames"].as_u64().unwrap() as f64;
        assert_eq!(plan.range, [first / fps, (first + count) / fps], "{name}");
    }
}

/// The plan (header only) and the extraction agree on frames, timestamps, grid and token count.
#[test]
fn plan_matches_what_prepare_produces() {
    let p = processor();
    let cases = [
        (media("moving_104x72.mkv"), VideoOptions::default()),
        (media("ball_128x96.mkv"), VideoOptions::default()),
        (
            media("ball_128x96.mkv"),
            VideoOptions {
                fps: Some(4.0),
                max_frames: Some(10),
                ..Default::default()
            },
        ),
        (media("gop_64x48.mp4"), range(1.4, 3.2)),
        (
            media("gop_64x48.mp4"),
            VideoOptions {
                fps: Some(1.5),
                start: Some(2.0),
                ..Default::default()
            },
        ),
    ];
    for (path, opts) in cases {
        let plan = p.plan_video(&path, &opts).unwrap();
        let input = file(path.clone(), opts.clone());
        let video = p.process_video(&input).unwrap();
        let what = format!("{} {opts:?}", path.display());
        assert_eq!(video.frame_indices, plan.frame_indices, "{what}");
        assert_eq!(video.timestamps, plan.timestamps, "{what}");
        assert_eq!(video.grid_thw, plan.grid_thw, "{what}");
        assert_eq!([video.resized.0, video.resized.1], plan.resized, "{what}");
        let msgs = [Message::new(
            "user",
            vec![Content::Video(input), Content::Text("Describe.".into())],
        )];
        let inputs = p
            .process(
                &msgs,
                &RenderOptions {
                    add_generation_prompt: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let pad = p.tokens.video_token_id;
        let pads = inputs.input_ids.iter().filter(|&&t| t == pad).count();
        assert_eq!(pads, plan.vision_tokens, "{what}: vision tokens");
        if let Some(s) = opts.start {
            assert!(plan.frame_times[0] >= s, "{what}");
            assert!(plan.timestamps[0] >= s, "{what}: timestamps are absolute");
        }
    }
}

/// A range's frames are the same pixels whether reached by seeking (range) or by decoding from
/// the start (the whole video sampled at every frame): H.264 with B-frames and 12-frame GOPs.
#[test]
fn seeking_into_a_range_gives_the_frames_of_a_full_decode() {
    let mut p = processor();
    p.config.video.max_pixels = 1 << 30;
    let path = media("gop_64x48.mp4");
    // Every frame of [1.5, 2.5) s at 12 fps = frames 18..30, sampled all (fps 12 = source fps).
    let opts = VideoOptions {
        fps: Some(12.0),
        ..range(1.5, 2.5)
    };
    let ranged = p.process_video(&file(path.clone(), opts)).unwrap();
    assert_eq!(ranged.frame_indices, (18..30).collect::<Vec<_>>());
    // The same 12 frames from a sequential decode of the whole file: frames listed as files would
    // need a second decoder, so compare against the whole video at 12 fps and max 48 frames,
    // whose resize is the same (64×48 needs none within the budget).
    let all = p
        .process_video(&file(
            path,
            VideoOptions {
                fps: Some(12.0),
                ..Default::default()
            },
        ))
        .unwrap();
    assert_eq!(all.frame_indices, (0..48).collect::<Vec<_>>());
    assert_eq!(all.resized, ranged.resized);
    let row = ranged.pixel_values.len() / ranged.grid_thw.iter().product::<usize>();
    let per_group = ranged.grid_thw[1] * ranged.grid_thw[2] * row;
    // Temporal groups of 2: range group g is full-video group 9 + g.
    for g in 0..ranged.grid_thw[0] {
        let a = &ranged.pixel_values[g * per_group..(g + 1) * per_group];
        let b = &all.pixel_values[(9 + g) * per_group..(10 + g) * per_group];
        assert!(a == b, "group {g} differs");
    }
    assert_eq!(timestamp_text(ranged.timestamps[0]), "<1.5 seconds>");
}

#[test]
fn progress_counts_every_sampled_frame_and_cancel_stops() {
    let p = processor();
    let seen = Mutex::new(Vec::<VideoProgress>::new());
    let record = |v: VideoProgress| seen.lock().unwrap().push(v);
    let hooks = PrepareHooks {
        progress: Some(&record),
        cancel: None,
    };
    let msgs = [Message::new(
        "user",
        vec![
            Content::Video(VideoInput::file(media("moving_104x72.mkv"))),
            Content::Video(file(media("gop_64x48.mp4"), range(1.0, 3.0))),
            Content::Text("Compare.".into()),
        ],
    )];
    let opts = RenderOptions::default();
    p.process_with(&msgs, &opts, &hooks).unwrap();
    let seen = seen.into_inner().unwrap();
    let n1 = p
        .plan_video(&media("moving_104x72.mkv"), &VideoOptions::default())
        .unwrap()
        .frame_indices
        .len();
    let n2 = p
        .plan_video(&media("gop_64x48.mp4"), &range(1.0, 3.0))
        .unwrap()
        .frame_indices
        .len();
    let total = n1 + n2;
    let want: Vec<VideoProgress> = (1..=total)
        .map(|done| VideoProgress { done, total })
        .collect();
    assert_eq!(seen, want);

    // Cancelled before it starts.
    let cancel = CancelToken::new();
    cancel.cancel();
    let hooks = PrepareHooks {
        progress: None,
        cancel: Some(&cancel),
    };
    let err = p.process_with(&msgs, &opts, &hooks).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");

    // Cancelled from the progress callback after the third frame: no fourth frame is reported.
    let cancel = CancelToken::new();
    let count = Mutex::new(0usize);
    let cancel_at_three = |v: VideoProgress| {
        *count.lock().unwrap() = v.done;
        if v.done == 3 {
            cancel.cancel();
        }
    };
    let hooks = PrepareHooks {
        progress: Some(&cancel_at_three),
        cancel: Some(&cancel),
    };
    let err = p.process_with(&msgs, &opts, &hooks).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(*count.lock().unwrap(), 3);
}

#[test]
fn frame_at_shows_the_frame_of_that_time() {
    // moving_104x72.mkv: 10 fps, the red square's left edge at x = 4 + 4·frame, rows 20..40.
    let path = media("moving_104x72.mkv");
    let red = |img: &image::RgbImage, x: u32| img.get_pixel(x, 30).0 == [220, 30, 30];
    let f = frame_at(&path, 1.25, 200).unwrap();
    assert_eq!(f.dimensions(), (104, 72));
    assert!(red(&f, 4 + 4 * 12) && red(&f, 4 + 4 * 12 + 19));
    assert!(!red(&f, 4 + 4 * 12 - 1) && !red(&f, 4 + 4 * 13 + 19));
    // Past the end: the last frame.
    let last = frame_at(&path, 99.0, 200).unwrap();
    assert!(red(&last, 4 + 4 * 19) && !red(&last, 4 + 4 * 19 - 1));
    // Scaled down, aspect kept.
    let small = frame_at(&path, 0.0, 52).unwrap();
    assert_eq!(small.dimensions(), (52, 36));
    // H.264 with B-frames: a time in the middle of a GOP decodes (seek + decode on).
    let g = frame_at(&media("gop_64x48.mp4"), 2.9, 64).unwrap();
    assert_eq!(g.dimensions(), (64, 48));
    assert!(matches!(
        frame_at(&path, -1.0, 64),
        Err(Error::BadVideoOptions { .. })
    ));
    assert!(matches!(
        frame_at(&media("bad/audio_only.mkv"), 0.0, 64),
        Err(Error::NoVideoStream { .. })
    ));
}

#[test]
fn bad_videos_have_named_errors() {
    let p = processor();
    let bad = |name: &str| media(&format!("bad/{name}"));
    let all = VideoOptions::default();
    let check = |path: PathBuf, opts: &VideoOptions, ok: fn(&Error) -> bool, words: &str| {
        // The plan (probe only) or the extraction must fail, with the same kind of error.
        let err = match p.plan_video(&path, opts) {
            Err(e) => e,
            Ok(_) => p
                .process_video(&file(path.clone(), opts.clone()))
                .unwrap_err(),
        };
        assert!(ok(&err), "{}: {err:?}", path.display());
        let text = err.to_string();
        assert!(text.contains(words), "{}: {text}", path.display());
        println!("{text}");
    };
    check(
        bad("audio_only.mkv"),
        &all,
        |e| matches!(e, Error::NoVideoStream { .. }),
        "no video stream",
    );
    check(
        bad("truncated.mkv"),
        &all,
        |e| matches!(e, Error::VideoTruncated { .. }),
        "truncated",
    );
    check(
        bad("truncated.mp4"),
        &all,
        |e| matches!(e, Error::VideoTruncated { .. }),
        "truncated",
    );
    check(
        bad("unknown_codec.mkv"),
        &all,
        |e| matches!(e, Error::VideoCodec { .. }),
        "unknown",
    );
    check(
        bad("undecodable.mp4"),
        &all,
        |e| matches!(e, Error::VideoCodec { .. }),
        "none of its frames decode",
    );
    check(
        bad("text.mp4"),
        &all,
        |e| matches!(e, Error::VideoDecode { .. }),
        "not a readable video",
    );
    let moving = media("moving_104x72.mkv"); // 2 s
    check(
        moving.clone(),
        &range(5.0, 8.0),
        |e| matches!(e, Error::VideoRange { .. }),
        "video is 2.000 s long",
    );
    check(
        moving.clone(),
        &range(1.01, 1.05),
        |e| matches!(e, Error::VideoRange { .. }),
        "holds no frame",
    );
    check(
        moving.clone(),
        &range(1.0, 1.05),
        |e| matches!(e, Error::VideoRange { .. }),
        "the range holds 1 frame(s); Qwen3-VL needs at least 2",
    );
    for (opts, words) in [
        (
            VideoOptions {
                fps: Some(0.0),
                ..Default::default()
            },
            "positive",
        ),
        (
            VideoOptions {
                fps: Some(-2.0),
                ..Default::default()
            },
            "positive",
        ),
        (
            VideoOptions {
                fps: Some(f64::NAN),
                ..Default::default()
            },
            "positive",
        ),
        (
            VideoOptions {
                max_frames: Some(1),
                ..Default::default()
            },
            "at least 2, got 1",
        ),
        (range(3.0, 2.0), "before it starts"),
        (
            VideoOptions {
                start: Some(-1.0),
                ..Default::default()
            },
            "0 seconds or more",
        ),
    ] {
        check(
            moving.clone(),
            &opts,
            |e| matches!(e, Error::BadVideoOptions { .. }),
            words,
        );
    }
    // Options are checked before the file is touched.
    assert!(matches!(
        p.plan_video(
            Path::new("/no/such.mp4"),
            &VideoOptions {
                fps: Some(0.0),
                ..Default::default()
            }
        ),
        Err(Error::BadVideoOptions { .. })
    ));
}
