//! Bad inputs give named errors, never panics: corrupt/unsupported/huge images, videos without
//! frames or truncated, and model folders missing the tokenizer or the template.

use std::path::{Path, PathBuf};

use glimpse_models::processor::{load_image, AlphaMode, DecodeLimits, Processor, VideoInput};
use glimpse_models::Error;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("glimpse-errors-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_model_without(model: &str, skip: &[&str], name: &str) -> PathBuf {
    let dst = scratch(name);
    for e in std::fs::read_dir(fixtures().join("models").join(model)).unwrap() {
        let e = e.unwrap();
        let file = e.file_name();
        if skip.iter().any(|s| file == *s) || file.to_string_lossy().ends_with(".safetensors") {
            continue;
        }
        std::fs::copy(e.path(), dst.join(&file)).unwrap();
    }
    dst
}

fn load(path: &Path) -> glimpse_models::Result<glimpse_models::processor::RgbImage> {
    load_image(path, AlphaMode::default(), DecodeLimits::default())
}

#[test]
fn corrupt_image_is_image_decode() {
    let d = scratch("corrupt");
    // A PNG signature followed by garbage.
    let p = d.join("broken.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..500u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(&p, bytes).unwrap();
    assert!(matches!(load(&p), Err(Error::ImageDecode { .. })));
    // A real PNG cut in half.
    let full = std::fs::read(fixtures().join("media/noise_200x130.png")).unwrap();
    let cut = d.join("cut.png");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let err = load(&cut).unwrap_err();
    assert!(matches!(err, Error::ImageDecode { .. }), "{err}");
}

#[test]
fn unsupported_file_is_image_decode() {
    let d = scratch("unsupported");
    let p = d.join("notes.txt");
    std::fs::write(&p, "just some text, not an image").unwrap();
    let err = load(&p).unwrap_err();
    assert!(matches!(err, Error::ImageDecode { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"));
}

#[test]
fn missing_image_is_missing_file() {
    assert!(matches!(
        load(Path::new("/definitely/not/here.png")),
        Err(Error::MissingFile { .. })
    ));
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn huge_dimensions_are_refused_from_the_header() {
    // A valid PNG header claiming 100000 x 100000 (10 gigapixels) and no pixel data: the size
    // check must fire before any allocation.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    // The PNG reader reports the header once it reaches the first IDAT; give it a short one.
    let idat = b"IDAT\x78\x9c\x03\x00".to_vec();
    png.extend(((idat.len() - 4) as u32).to_be_bytes());
    png.extend(&idat);
    png.extend(crc32(&idat).to_be_bytes());
    let d = scratch("huge");
    let p = d.join("huge.png");
    std::fs::write(&p, png).unwrap();
    let err = load(&p).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ImageTooLarge {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn video_errors() {
    let p = Processor::from_dir(&fixtures().join("models/dense-v5")).unwrap();
    let d = scratch("video");
    // Not a video at all.
    let text = d.join("clip.mkv");
    std::fs::write(&text, "not a video").unwrap();
    let err = p.process_video(&VideoInput::file(text)).unwrap_err();
    assert!(
        matches!(err, Error::VideoDecode { .. } | Error::NoVideoFrames { .. }),
        "{err}"
    );
    // An image is a container FFmpeg can open, but a PNG has one frame; with min_frames 4 the
    // sampler repeats it, so use an empty frame folder for the no-frames case instead.
    let empty = scratch("empty-frames");
    let err = p
        .process_video(&VideoInput::Folder {
            dir: empty,
            fps: Some(2.0),
        })
        .unwrap_err();
    assert!(matches!(err, Error::NoVideoFrames { .. }), "{err}");
    // A missing file.
    let err = p
        .process_video(&VideoInput::file(d.join("absent.mp4")))
        .unwrap_err();
    assert!(matches!(err, Error::MissingFile { .. }), "{err}");
}

#[test]
fn truncated_video_is_an_error() {
    let p = Processor::from_dir(&fixtures().join("models/dense-v5")).unwrap();
    let full = std::fs::read(fixtures().join("media/moving_104x72.mkv")).unwrap();
    let d = scratch("truncated");
    let cut = d.join("cut.mkv");
    std::fs::write(&cut, &full[..full.len() / 3]).unwrap();
    let err = p.process_video(&VideoInput::file(cut)).unwrap_err();
    assert!(matches!(err, Error::VideoTruncated { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn missing_tokenizer_or_template() {
    let no_tok = copy_model_without("dense-v5", &["tokenizer.json"], "no-tok");
    let err = Processor::from_dir(&no_tok).err().expect("must fail");
    assert!(
        matches!(&err, Error::MissingFile { path, .. } if path.ends_with("tokenizer.json")),
        "{err}"
    );

    let no_tmpl = copy_model_without("dense-v5", &["chat_template.jinja"], "no-tmpl");
    let err = Processor::from_dir(&no_tmpl).err().expect("must fail");
    assert!(matches!(err, Error::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("chat template"), "{err}");

    let no_proc = copy_model_without("moe-hub", &["preprocessor_config.json"], "no-proc");
    let err = Processor::from_dir(&no_proc).err().expect("must fail");
    assert!(matches!(err, Error::MissingFile { .. }), "{err}");
}

#[test]
fn template_falls_back_to_tokenizer_config() {
    // chat_template.json removed, template moved into tokenizer_config.json: still renders the same.
    let src = fixtures().join("models/moe-hub");
    let d = copy_model_without(
        "moe-hub",
        &["chat_template.json", "tokenizer_config.json"],
        "tmpl-in-tok",
    );
    let tmpl: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("chat_template.json")).unwrap())
            .unwrap();
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer_config.json")).unwrap())
            .unwrap();
    tok["chat_template"] = tmpl["chat_template"].clone();
    std::fs::write(d.join("tokenizer_config.json"), tok.to_string()).unwrap();
    let a = Processor::from_dir(&src).unwrap();
    let b = Processor::from_dir(&d).unwrap();
    let msgs = [glimpse_models::processor::Message::text("user", "hi")];
    let opts = glimpse_models::processor::RenderOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    assert_eq!(
        a.render(&msgs, &opts).unwrap(),
        b.render(&msgs, &opts).unwrap()
    );
}

#[test]
fn truncated_and_corrupt_jpeg() {
    let full = std::fs::read(fixtures().join("media/photo_160x120.jpg")).unwrap();
    let d = scratch("jpeg");
    let cut = d.join("cut.jpg");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let err = load(&cut).unwrap_err();
    assert!(matches!(err, Error::ImageDecode { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    // Header intact, entropy-coded data replaced by garbage after the first few hundred bytes.
    let mut bad = full.clone();
    let n = bad.len();
    for (i, b) in bad[n / 3..n - 2].iter_mut().enumerate() {
        *b = (i * 131 % 256) as u8;
    }
    let garbage = d.join("garbage.jpg");
    std::fs::write(&garbage, &bad).unwrap();
    // libjpeg may or may not recover from garbage; either way no panic, and an error is named.
    if let Err(e) = load(&garbage) {
        assert!(matches!(e, Error::ImageDecode { .. }), "{e}");
    }
    // A JPEG signature and nothing else.
    let stub = d.join("stub.jpg");
    std::fs::write(&stub, b"\xff\xd8\xff").unwrap();
    assert!(matches!(load(&stub), Err(Error::ImageDecode { .. })));
}
