use std::path::{Path, PathBuf};
use std::process::Command;

use glimpse_models::processor::config::ProcessorConfig;

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// FFV1 in Matroska, 20 frames at 10 fps, 104×72 (tests/fixtures/media/media.json).
fn clip() -> PathBuf {
    fixtures().join("media/moving_104x72.mkv")
}

fn video_config() -> VideoProcessorConfig {
    ProcessorConfig::from_dir(&fixtures().join("models/dense-v5"))
        .unwrap()
        .video
}

/// The fixture clip with its codec's FourCC replaced: a stream no FFmpeg decoder knows.
fn unknown_codec(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(clip()).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"FFV1")
        .expect("the clip names its codec");
    bytes[at..at + 4].copy_from_slice(b"QQQQ");
    let path = dir.join("unknown.mkv");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn here_is_a_window_around_the_position_inside_the_video() {
    let w = HERE_HALF_WINDOW_S;
    assert_eq!(here_range(30.0, Some(60.0)), (30.0 - w, 30.0 + w));
    // Near either end the window slides in, keeping its width.
    assert_eq!(here_range(1.0, Some(60.0)), (0.0, 2.0 * w));
    assert_eq!(here_range(59.0, Some(60.0)), (60.0 - 2.0 * w, 60.0));
    // Past the end (a stale position): the last window.
    assert_eq!(here_range(75.0, Some(60.0)), (60.0 - 2.0 * w, 60.0));
    // A video shorter than the window is sent whole.
    assert_eq!(here_range(1.0, Some(2.0)), (0.0, 2.0));
    // Unknown length: only the start is clamped.
    assert_eq!(here_range(1.0, None), (0.0, 2.0 * w));
    assert_eq!(here_range(10.0, None), (10.0 - w, 10.0 + w));
    assert_eq!(here_range(f64::NAN, Some(60.0)), (0.0, 2.0 * w));
    assert_eq!(here_range(-4.0, Some(60.0)), (0.0, 2.0 * w));
}

#[test]
fn here_replaces_the_range_and_keeps_the_sampling() {
    let r = VideoRequest {
        fps: Some(4.0),
        max_frames: Some(8),
        start: Some(1.0),
        end: Some(2.0),
        here: Some(30.0),
    };
    assert_eq!(
        r.options(Some(100.0)),
        VideoOptions {
            fps: Some(4.0),
            max_frames: Some(8),
            start: Some(30.0 - HERE_HALF_WINDOW_S),
            end: Some(30.0 + HERE_HALF_WINDOW_S),
        }
    );
    let plain = VideoRequest {
        start: Some(80.0),
        end: Some(125.0),
        ..VideoRequest::default()
    };
    assert_eq!(
        plain.options(Some(600.0)),
        VideoOptions {
            start: Some(80.0),
            end: Some(125.0),
            ..VideoOptions::default()
        }
    );
    assert!(VideoRequest::default().is_empty());
    assert_eq!(
        VideoRequest::default().options(None),
        VideoOptions::default()
    );
}

#[test]
fn requests_cross_ipc_in_camel_case() {
    let r: VideoRequest =
        serde_json::from_value(serde_json::json!({"fps": 1, "maxFrames": 4, "here": 2.5})).unwrap();
    assert_eq!(
        r,
        VideoRequest {
            fps: Some(1.0),
            max_frames: Some(4),
            here: Some(2.5),
            ..VideoRequest::default()
        }
    );
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        serde_json::json!({"fps": 1.0, "maxFrames": 4, "here": 2.5})
    );
    use crate::chat::AttachmentRef;
    let refs: Vec<AttachmentRef> = serde_json::from_value(serde_json::json!(
        ["aa", {"hash": "bb"}, {"hash": "cc", "video": {"start": 1}}]
    ))
    .unwrap();
    assert_eq!(
        refs.iter()
            .map(|r| (r.hash(), r.video().cloned()))
            .collect::<Vec<_>>(),
        [
            ("aa", None),
            ("bb", None),
            (
                "cc",
                Some(VideoRequest {
                    start: Some(1.0),
                    ..VideoRequest::default()
                })
            )
        ]
    );
}

#[test]
fn a_video_is_probed_and_its_first_frame_becomes_the_thumbnail() {
    let dir = tempfile::tempdir().unwrap();
    let thumb = dir.path().join("t/thumb.png");
    let info = inspect(&clip(), "clip.mkv", Some(&thumb)).unwrap();
    assert_eq!(
        info,
        VideoInfo {
            width: 104,
            height: 72,
            duration_ms: 2000,
            fps: Some(10.0),
        }
    );
    let img = image::open(&thumb).unwrap().to_rgb8();
    // Smaller than a thumbnail already: kept at its size.
    assert_eq!(img.dimensions(), (104, 72));
    // It is the first frame: FFmpeg's own decode of frame 0 (lossless FFV1), not a later one.
    let diff = |n: u32| {
        let reference = ffmpeg_frame(&clip(), n, dir.path());
        let total: u64 = img
            .as_raw()
            .iter()
            .zip(reference.as_raw())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        total as f64 / img.as_raw().len() as f64
    };
    let (first, last) = (diff(0), diff(19));
    assert!(
        first < 2.0 && last > 10.0,
        "mean difference to frame 0: {first}, to frame 19: {last}"
    );
    // Without a thumbnail path, nothing is written.
    let again = inspect(&clip(), "clip.mkv", None).unwrap();
    assert_eq!(again, info);
}

#[test]
fn unusable_videos_are_clear_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            fixtures().join("media/bad/audio_only.mkv"),
            "no video stream",
        ),
        (fixtures().join("media/bad/truncated.mkv"), ""),
        (unknown_codec(dir.path()), ""),
    ];
    for (path, words) in cases {
        let thumb = dir.path().join("thumb.png");
        match inspect(&path, "holiday.mkv", Some(&thumb)) {
            Err(AppError::VideoUnreadable { name, reason }) => {
                assert_eq!(name, "holiday.mkv");
                assert!(reason.contains(words), "{}: {reason}", path.display());
                assert!(
                    !reason.contains(&*path.to_string_lossy()),
                    "the message names the stored copy: {reason}"
                );
                let shown = AppError::VideoUnreadable { name, reason }.to_string();
                assert!(shown.starts_with("holiday.mkv cannot be used as a video: "));
            }
            other => panic!("{}: {other:?}", path.display()),
        }
        assert!(
            !thumb.exists(),
            "a thumbnail was written for {}",
            path.display()
        );
    }
}

#[test]
fn the_plan_gives_frame_times_and_cost_for_the_options() {
    let cfg = video_config();
    let whole = plan(&clip(), &VideoRequest::default(), Some(2.0), &cfg).unwrap();
    assert_eq!(
        (whole.width, whole.height, whole.frame_count),
        (104, 72, 20)
    );
    assert_eq!((whole.duration, whole.fps), (2.0, 10.0));
    assert_eq!((whole.start, whole.end), (0.0, 2.0));
    // fps 2 over 2 s is 4 frames (also the checkpoint's minimum): linspace(0, 19, 4) → 0 6 13 19.
    assert_eq!(whole.frame_times, [0.0, 0.6, 1.3, 1.9]);
    assert!(whole.vision_tokens > 0);

    // A range keeps every sampled frame inside it, at absolute times.
    let late = plan(
        &clip(),
        &VideoRequest {
            start: Some(1.0),
            end: Some(2.0),
            ..VideoRequest::default()
        },
        Some(2.0),
        &cfg,
    )
    .unwrap();
    assert_eq!((late.start, late.end), (1.0, 2.0));
    assert!(
        late.frame_times.iter().all(|t| (1.0..2.0).contains(t)),
        "{:?}",
        late.frame_times
    );

    // More frames cost more tokens.
    let dense = plan(
        &clip(),
        &VideoRequest {
            fps: Some(10.0),
            ..VideoRequest::default()
        },
        Some(2.0),
        &cfg,
    )
    .unwrap();
    assert_eq!(dense.frame_times.len(), 20);
    // The cost is the engine's own count for those options (the budget spans all frames, so
    // more frames can cost fewer tokens: 10 for these 20, 12 for the 4 above).
    let engine = plan_video_file(
        &clip(),
        &VideoOptions {
            fps: Some(10.0),
            ..VideoOptions::default()
        },
        &cfg,
    )
    .unwrap();
    assert_eq!(dense.vision_tokens, engine.vision_tokens);
    assert_eq!(dense.frame_times, engine.frame_times);

    // "here" on a video shorter than the window: the whole video.
    let here = plan(
        &clip(),
        &VideoRequest {
            here: Some(1.0),
            ..VideoRequest::default()
        },
        Some(2.0),
        &cfg,
    )
    .unwrap();
    assert_eq!((here.start, here.end), (0.0, 2.0));
}

#[test]
fn impossible_plans_are_errors() {
    let cfg = video_config();
    let bad = [
        VideoRequest {
            fps: Some(0.0),
            ..VideoRequest::default()
        },
        VideoRequest {
            start: Some(5.0),
            ..VideoRequest::default()
        },
        VideoRequest {
            start: Some(1.5),
            end: Some(1.0),
            ..VideoRequest::default()
        },
    ];
    for r in bad {
        let e = plan(&clip(), &r, Some(2.0), &cfg).unwrap_err();
        assert!(matches!(e, AppError::Engine(_)), "{r:?}: {e:?}");
    }
}

#[test]
fn previews_are_small_jpegs_cached_per_tenth_of_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let thumbs = dir.path().join("thumbs");
    let hash = "ab12";
    let at = preview_path(&thumbs, hash, 1.04);
    assert_eq!(at, thumbs.join("ab/ab12-t1000.jpg"));
    assert_eq!(
        preview_path(&thumbs, hash, 1.06),
        thumbs.join("ab/ab12-t1100.jpg")
    );
    assert_eq!(
        preview_path(&thumbs, hash, -3.0),
        thumbs.join("ab/ab12-t0.jpg")
    );

    preview(&clip(), &at, 1.04).unwrap();
    let img = image::open(&at).unwrap();
    assert_eq!((img.width(), img.height()), (104, 72));
    assert_eq!(
        &std::fs::read(&at).unwrap()[..3],
        b"\xFF\xD8\xFF",
        "not a JPEG"
    );
    // A second request is served from the cache: the file is not decoded or written again.
    std::fs::write(&at, b"cached").unwrap();
    preview(&clip(), &at, 1.04).unwrap();
    assert_eq!(std::fs::read(&at).unwrap(), b"cached");

    let e = preview(&clip(), &thumbs.join("x.jpg"), f64::NAN).unwrap_err();
    assert!(e.to_string().contains("0 seconds or more"), "{e}");
}

/// Frame `n` of `video` as FFmpeg's command line decodes it, in RGB.
fn ffmpeg_frame(video: &Path, n: u32, dir: &Path) -> image::RgbImage {
    let out = dir.join(format!("frame{n}.png"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(video)
        .args(["-vf", &format!("select=eq(n\\,{n})"), "-vframes", "1"])
        .arg(&out)
        .status()
        .expect("the ffmpeg command line (scripts/bootstrap installs it)");
    assert!(status.success());
    image::open(&out).unwrap().to_rgb8()
}

/// Makes a real video of each container the store accepts, with the ffmpeg CLI (a bootstrap
/// dependency), so import can probe them.
pub(crate) fn make_video(dir: &Path, name: &str, codec: &[&str]) -> PathBuf {
    make_video_from(dir, name, "testsrc=size=64x48:rate=10:duration=1", codec)
}

/// [`make_video`] from any lavfi `source`.
fn make_video_from(dir: &Path, name: &str, source: &str, codec: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", source])
        .args(codec)
        .arg(&path)
        .output()
        .expect("the ffmpeg command line (scripts/bootstrap installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Import (probe + first-frame thumbnail) and hover previews of a 60 s 1080p H.264 clip (keyframe
/// every 2 s), made with the ffmpeg CLI. `cargo test -p glimpse-app measure_1080p -- --ignored
/// --nocapture`.
#[test]
#[ignore = "a measurement, not a check (encodes a 60 s 1080p clip)"]
fn measure_1080p_import_and_previews() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_video_from(
        dir.path(),
        "long.mp4",
        "testsrc2=size=1920x1080:rate=30:duration=60",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let store = crate::attachments::AttachmentStore::new(dir.path().join("data")).unwrap();
    let t = std::time::Instant::now();
    let a = store.import_path(&clip).unwrap();
    let import = t.elapsed();
    assert_eq!((a.width, a.height), (Some(1920), Some(1080)));
    let video = store.resolve(&a.stored_path);
    let mut times = Vec::new();
    for s in [0.0, 13.3, 29.9, 45.0, 59.9] {
        let dest = preview_path(&dir.path().join("thumbs"), &a.hash, s);
        let t = std::time::Instant::now();
        preview(&video, &dest, s).unwrap();
        times.push((s, t.elapsed().as_millis()));
    }
    let t = std::time::Instant::now();
    let cfg = video_config();
    let p = plan(&video, &VideoRequest::default(), Some(60.0), &cfg).unwrap();
    let planned = t.elapsed();
    println!(
        "import {} ms ({} MB); previews (s, ms): {times:?}; plan {} ms ({} frames, {} tokens)",
        import.as_millis(),
        a.byte_size >> 20,
        planned.as_millis(),
        p.frame_times.len(),
        p.vision_tokens
    );
}
