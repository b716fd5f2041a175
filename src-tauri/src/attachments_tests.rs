use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;

fn png(seed: u8, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([seed, (x % 256) as u8, (y % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Every file under `dir`, recursively, relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out.sort();
    out
}

fn store() -> (tempfile::TempDir, AttachmentStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = AttachmentStore::new(dir.path()).unwrap();
    (dir, store)
}

/// PNG chunk with its CRC (ISO 3309 CRC-32 over type and data).
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in kind.iter().chain(data) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&(!crc).to_be_bytes());
    out
}

/// A PNG whose header claims `w`×`h` RGB pixels, followed by `idat` and IEND.
fn png_header(w: u32, h: u32, idat: &[u8]) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    if !idat.is_empty() {
        out.extend(chunk(b"IDAT", idat));
    }
    out.extend(chunk(b"IEND", &[]));
    out
}

#[test]
fn an_image_is_stored_under_its_hash_with_a_thumbnail() {
    let (dir, store) = store();
    let bytes = png(1, 640, 360);
    let a = store.import_bytes(&bytes, Some("screen.png")).unwrap();

    let hash = sha256_hex(&bytes);
    assert_eq!(a.hash, hash);
    assert_eq!(
        a.stored_path,
        format!("attachments/{}/{hash}.png", &hash[..2])
    );
    assert_eq!(
        a.thumbnail_path,
        Some(format!("thumbs/{}/{hash}.png", &hash[..2]))
    );
    assert_eq!(
        (a.kind, a.mime.as_str()),
        (AttachmentKind::Image, "image/png")
    );
    assert_eq!(
        (a.width, a.height, a.byte_size),
        (Some(640), Some(360), bytes.len() as u64)
    );
    assert_eq!(a.original_name.as_deref(), Some("screen.png"));
    assert_eq!(std::fs::read(store.resolve(&a.stored_path)).unwrap(), bytes);

    let thumb = image::open(store.resolve(a.thumbnail_path.as_ref().unwrap())).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (256, 144));
    assert_eq!(
        files(dir.path()),
        vec![a.stored_path.clone(), a.thumbnail_path.clone().unwrap()]
    );
}

#[test]
fn small_images_are_not_enlarged_for_their_thumbnail() {
    let (_dir, store) = store();
    let a = store.import_bytes(&png(1, 30, 20), None).unwrap();
    let thumb = image::open(store.resolve(a.thumbnail_path.as_ref().unwrap())).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (30, 20));
    assert_eq!(a.original_name, None);
}

#[test]
fn the_same_content_is_stored_and_thumbnailed_once() {
    let (dir, store) = store();
    let bytes = png(2, 400, 300);
    let first = store.import_bytes(&bytes, Some("clipboard")).unwrap();
    let thumb = store.resolve(first.thumbnail_path.as_ref().unwrap());
    // Mark the thumbnail: if a second import rebuilt it, the mark would be gone.
    std::fs::write(&thumb, b"marker").unwrap();

    let on_disk = dir.path().join("renamed copy.png");
    std::fs::write(&on_disk, &bytes).unwrap();
    let second = store.import_path(&on_disk).unwrap();
    assert_eq!(second.hash, first.hash);
    assert_eq!(second.stored_path, first.stored_path);
    assert_eq!(second.original_name.as_deref(), Some("renamed copy.png"));
    assert_eq!((second.width, second.height), (Some(400), Some(300)));
    assert_eq!(std::fs::read(&thumb).unwrap(), b"marker");
    std::fs::remove_file(&on_disk).unwrap();
    assert_eq!(files(dir.path()).len(), 2, "{:?}", files(dir.path()));
}

#[test]
fn a_missing_thumbnail_is_made_again() {
    let (_dir, store) = store();
    let bytes = png(3, 300, 300);
    let a = store.import_bytes(&bytes, None).unwrap();
    let thumb = store.resolve(a.thumbnail_path.as_ref().unwrap());
    std::fs::remove_file(&thumb).unwrap();
    store.import_bytes(&bytes, None).unwrap();
    assert!(image::open(&thumb).is_ok());
}

/// Errors must leave no file behind: no half-written attachment, thumbnail or temp file.
fn assert_nothing_written(dir: &Path) {
    assert_eq!(files(dir), Vec::<String>::new());
}

#[test]
fn a_corrupt_image_is_a_clear_error_and_leaves_nothing() {
    let (dir, store) = store();
    // A valid header, then image data that is not zlib.
    let bad = png_header(64, 64, b"this is not deflate data at all");
    match store.import_bytes(&bad, Some("broken.png")) {
        Err(AppError::AttachmentDecode { name, .. }) => assert_eq!(name, "broken.png"),
        other => panic!("expected AttachmentDecode, got {other:?}"),
    }
    // A real image cut in half.
    let good = png(4, 200, 200);
    let cut = dir.path().join("cut.png");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let err = store.import_path(&cut).unwrap_err();
    assert!(matches!(err, AppError::AttachmentDecode { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cut.png looks like an image but cannot be read"),
        "{err}"
    );
    std::fs::remove_file(&cut).unwrap();
    assert_nothing_written(dir.path());
}

#[test]
fn a_huge_image_header_is_refused_before_decoding() {
    let (dir, store) = store();
    // Claims 20000×20000 RGB (1.2 GB decoded) but carries 8 bytes of image data (zlib of
    // nothing): the size check must fire on the header, before any pixel buffer exists.
    let huge = png_header(
        20_000,
        20_000,
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    let err = store.import_bytes(&huge, Some("huge.png")).unwrap_err();
    match &err {
        AppError::ImageTooLarge {
            width,
            height,
            needed_mib,
            limit_mib,
            ..
        } => {
            assert_eq!((*width, *height), (20_000, 20_000));
            assert_eq!(*needed_mib, 1145);
            assert_eq!(*limit_mib, 512);
        }
        other => panic!("expected ImageTooLarge, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "huge.png is too large to open (20000×20000 pixels, 1145 MiB decoded; the limit is 512 MiB)"
    );

    // With no image data at all the PNG reader stops at the header: a decode error.
    let bare = png_header(20_000, 20_000, &[]);
    assert!(matches!(
        store.import_bytes(&bare, Some("bare.png")),
        Err(AppError::AttachmentDecode { .. })
    ));
    assert_nothing_written(dir.path());
}

/// Within a budget that allows it, the same lying header is still only a decode error (the
/// data is missing), never an abort: the pixel buffer is allocated zeroed and never filled.
#[test]
fn a_lying_header_within_budget_is_a_decode_error() {
    let (dir, store) = store();
    let store = store.with_max_decode_bytes(64 << 20);
    // 4000×4000 RGB = 46 MiB claimed, 8 bytes present.
    let liar = png_header(
        4000,
        4000,
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    assert!(matches!(
        store.import_bytes(&liar, Some("liar.png")),
        Err(AppError::AttachmentDecode { .. })
    ));
    assert_nothing_written(dir.path());
}

#[test]
fn the_decode_budget_is_configurable() {
    let (dir, store) = store();
    let store = store.with_max_decode_bytes(100 * 100 * 3 - 1);
    assert!(matches!(
        store.import_bytes(&png(5, 100, 100), None),
        Err(AppError::ImageTooLarge {
            width: 100,
            height: 100,
            ..
        })
    ));
    assert_nothing_written(dir.path());
    let store = store.with_max_decode_bytes(100 * 100 * 3);
    store.import_bytes(&png(5, 100, 100), None).unwrap();
}

#[test]
fn unsupported_files_are_refused_by_content_not_name() {
    let (dir, store) = store();
    let cases: [(&[u8], &str, &str); 5] = [
        (
            b"hello, world\n",
            "notes.png",
            "not a known image or video format",
        ),
        (
            b"%PDF-1.7\n%\xe2\xe3",
            "paper.pdf",
            "not a known image or video format",
        ),
        (
            b"\0\0\0\x18ftypheic\0\0\0\0mif1heic",
            "photo.heic",
            "brand \"heic\"",
        ),
        (
            b"\0\0\x01\0\x01\0\x10\x10\0\0\x01\0\x20\0",
            "icon.ico",
            "Ico images are not supported",
        ),
        (b"", "empty.jpg", "the file is empty"),
    ];
    for (bytes, name, reason_part) in cases {
        match store.import_bytes(bytes, Some(name)) {
            Err(AppError::UnsupportedAttachment { name: n, reason }) => {
                assert_eq!(n, name);
                assert!(reason.contains(reason_part), "{name}: {reason}");
            }
            other => panic!("{name}: expected UnsupportedAttachment, got {other:?}"),
        }
    }
    assert_nothing_written(dir.path());
}

#[test]
fn videos_are_recognised_by_content_probed_and_thumbnailed() {
    let (dir, store) = store();
    let src = tempfile::tempdir().unwrap();
    let make = crate::video::tests::make_video;
    let cases = [
        (
            make(
                src.path(),
                "a.mp4",
                &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
            ),
            "video/mp4",
            "mp4",
        ),
        (
            make(src.path(), "a.mov", &["-c:v", "mpeg4"]),
            "video/quicktime",
            "mov",
        ),
        (
            make(src.path(), "a.mkv", &["-c:v", "ffv1"]),
            "video/x-matroska",
            "mkv",
        ),
        (
            make(src.path(), "a.webm", &["-c:v", "libvpx"]),
            "video/webm",
            "webm",
        ),
        (
            make(src.path(), "a.avi", &["-c:v", "mpeg4"]),
            "video/x-msvideo",
            "avi",
        ),
    ];
    for (path, mime, ext) in cases {
        // The name says nothing: the bytes decide.
        let bytes = std::fs::read(&path).unwrap();
        let a = store.import_bytes(&bytes, Some("clip")).unwrap();
        assert_eq!((a.kind, a.mime.as_str()), (AttachmentKind::Video, mime));
        assert!(
            a.stored_path.ends_with(&format!("{}.{ext}", a.hash)),
            "{}",
            a.stored_path
        );
        assert_eq!((a.width, a.height), (Some(64), Some(48)), "{mime}");
        assert_eq!(a.fps, Some(10.0), "{mime}");
        let ms = a.duration_ms.unwrap();
        assert!((900..=1100).contains(&ms), "{mime}: {ms} ms");
        let thumb = image::open(store.resolve(a.thumbnail_path.as_ref().unwrap())).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (64, 48));
        assert_eq!(std::fs::read(store.resolve(&a.stored_path)).unwrap(), bytes);
    }
    // Each video and its thumbnail.
    assert_eq!(files(dir.path()).len(), 10);
}

#[test]
fn a_video_signature_without_a_usable_video_is_refused_and_leaves_nothing() {
    let (dir, store) = store();
    let mut mkv = vec![
        0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0x82, 0x88,
    ];
    mkv.extend_from_slice(b"matroska");
    mkv.extend_from_slice(&[7u8; 100]);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/media/bad");
    let cases = [
        (mkv, "only a header"),
        (
            std::fs::read(fixtures.join("audio_only.mkv")).unwrap(),
            "audio",
        ),
        (
            std::fs::read(fixtures.join("truncated.mkv")).unwrap(),
            "truncated",
        ),
    ];
    for (bytes, what) in cases {
        match store.import_bytes(&bytes, Some("clip.mkv")) {
            Err(AppError::VideoUnreadable { name, .. }) => assert_eq!(name, "clip.mkv", "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_nothing_written(dir.path());
}

#[test]
fn other_image_formats_keep_their_type() {
    let (_dir, store) = store();
    let img = image::RgbImage::from_fn(50, 40, |x, _| image::Rgb([x as u8, 0, 0]));
    for (format, mime, ext) in [
        (ImageFormat::Jpeg, "image/jpeg", "jpg"),
        (ImageFormat::Bmp, "image/bmp", "bmp"),
        (ImageFormat::Gif, "image/gif", "gif"),
        (ImageFormat::Tiff, "image/tiff", "tiff"),
        (ImageFormat::WebP, "image/webp", "webp"),
    ] {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        let a = store.import_bytes(out.get_ref(), None).unwrap();
        assert_eq!(a.mime, mime);
        assert!(a.stored_path.ends_with(ext));
        assert_eq!((a.width, a.height), (Some(50), Some(40)));
        assert!(store.resolve(a.thumbnail_path.as_ref().unwrap()).exists());
    }
}

#[test]
fn a_missing_source_file_names_the_path() {
    let (dir, store) = store();
    let missing = dir.path().join("gone.png");
    match store.import_path(&missing) {
        Err(AppError::AttachmentIo { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected AttachmentIo, got {other:?}"),
    }
}

/// A 100-megapixel image is accepted; how long and how much memory it takes is measured here:
/// `cargo test -p glimpse-app measure_100mp -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check (builds a 100 MP PNG)"]
fn measure_100mp_import() {
    let (_dir, store) = store();
    let img = image::RgbImage::from_fn(10_000, 10_000, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    drop(img);
    let bytes = out.into_inner();
    let t = std::time::Instant::now();
    let a = store.import_bytes(&bytes, Some("100mp.png")).unwrap();
    println!(
        "100 MP PNG ({} MB): imported with thumbnail in {:?}",
        bytes.len() >> 20,
        t.elapsed()
    );
    let t = std::time::Instant::now();
    store.import_bytes(&bytes, Some("again.png")).unwrap();
    println!("re-import (dedup, header only): {:?}", t.elapsed());
    assert_eq!((a.width, a.height), (Some(10_000), Some(10_000)));
}
