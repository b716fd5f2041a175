//! Attachments: images and videos copied into the app's data folder under their content hash.
//!
//! A conversation must keep working when the original file moves or the clipboard changes, so
//! every attachment is copied to `<data>/attachments/<h0h1>/<sha256>.<ext>` and every image gets
//! a thumbnail at `<data>/thumbs/<h0h1>/<sha256>.png` (at most [`THUMBNAIL_SIZE`] px a side).
//! Identical content is stored once and thumbnailed once.
//!
//! What is accepted is decided by the file's bytes, never its name: PNG, JPEG, WebP, GIF, BMP and
//! TIFF images (what the engine decodes), MP4, MOV, MKV, WebM and AVI videos. An image is decoded
//! once at import (making the thumbnail), so a corrupt one is refused before it reaches a
//! message; decoding is bounded by [`AttachmentStore::max_decode_bytes`], checked against the
//! header's dimensions before any pixel is read. A video is probed at import (size, length,
//! frame rate) and its first frame becomes its thumbnail, so one with no video stream, a
//! truncated one or an unknown codec is refused before it reaches a message (see
//! [`crate::video`]).
//!
//! Writes are atomic: data goes to a temporary file on the same file system, is fsynced, then
//! renamed into place, so a crash or an error never leaves a half-written attachment under its
//! final name. The copy is staged in `attachments/.incoming/` because its name (the hash) is only
//! known once the whole file has been read.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::error::{AppError, Result};

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 256;

/// Decoded-pixel budget for one image: a 100-megapixel RGBA photo (400 MiB) fits, a
/// 20000×20000 one (1.2 GB as RGB) does not.
pub const DEFAULT_MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

const ATTACHMENTS_DIR: &str = "attachments";
const THUMBS_DIR: &str = "thumbs";
const INCOMING_DIR: &str = ".incoming";
/// Enough bytes to tell every accepted format apart (Matroska's DocType can sit ~40 bytes in).
const HEAD_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttachmentKind {
    Image,
    Video,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "image" => Ok(Self::Image),
            "video" => Ok(Self::Video),
            other => Err(crate::history::corrupt("attachments.kind", other)),
        }
    }
}

/// A stored attachment. Paths are relative to the data folder, with `/` separators; turn them
/// into real paths with [`AttachmentStore::resolve`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Lower-case hex SHA-256 of the file's bytes: its identity.
    pub hash: String,
    pub kind: AttachmentKind,
    pub mime: String,
    pub byte_size: u64,
    /// Image size as displayed (EXIF rotation applied), or the video's frame size.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Videos: length, and frame rate (`None` when the container gives none).
    pub duration_ms: Option<u64>,
    pub fps: Option<f64>,
    /// The file name it was imported under, for display.
    pub original_name: Option<String>,
    pub stored_path: String,
    /// An image's reduced copy, or a video's first frame.
    pub thumbnail_path: Option<String>,
    /// How a message sends this video (options stored with the message's link to it); `None`
    /// in the store itself and for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<crate::video::VideoRequest>,
}

/// The attachment folders under one data folder. Cheap to share: `&self` methods only, and
/// safe to call from several threads at once (the same content imported twice at the same
/// time ends as one file).
#[derive(Debug, Clone)]
pub struct AttachmentStore {
    data_dir: PathBuf,
    max_decode_bytes: u64,
}

struct Detected {
    kind: AttachmentKind,
    mime: &'static str,
    ext: &'static str,
}

impl AttachmentStore {
    /// Uses (creating if needed) `attachments/` and `thumbs/` under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Result<Self> {
        let store = Self {
            data_dir: data_dir.into(),
            max_decode_bytes: DEFAULT_MAX_DECODE_BYTES,
        };
        for dir in [store.incoming_dir(), store.data_dir.join(THUMBS_DIR)] {
            std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        }
        Ok(store)
    }

    /// Sets the decoded-pixel budget for one image (see [`DEFAULT_MAX_DECODE_BYTES`]).
    pub fn with_max_decode_bytes(mut self, bytes: u64) -> Self {
        self.max_decode_bytes = bytes;
        self
    }

    pub fn max_decode_bytes(&self) -> u64 {
        self.max_decode_bytes
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The absolute path of a stored path from an [`Attachment`].
    pub fn resolve(&self, relative: &str) -> PathBuf {
        relative
            .split('/')
            .fold(self.data_dir.clone(), |p, part| p.join(part))
    }

    /// Copies the file at `path` into the store (drag-and-drop, file picker). The file is read
    /// once, streaming, so a large video is never held in memory.
    pub fn import_path(&self, path: impl AsRef<Path>) -> Result<Attachment> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        self.ingest(file, path, &name, Some(name.clone()))
    }

    /// Stores bytes from the clipboard. `suggested_name` (if the source gave one) is kept for
    /// display and error messages.
    pub fn import_bytes(&self, bytes: &[u8], suggested_name: Option<&str>) -> Result<Attachment> {
        let name = suggested_name.unwrap_or("the pasted data");
        self.ingest(
            bytes,
            Path::new(name),
            name,
            suggested_name.map(str::to_owned),
        )
    }

    fn ingest(
        &self,
        mut source: impl Read,
        source_path: &Path,
        name: &str,
        original_name: Option<String>,
    ) -> Result<Attachment> {
        // 1. Copy to a temp file, hashing and keeping the head for sniffing.
        let incoming = self.incoming_dir();
        let mut staged = tempfile::Builder::new()
            .prefix("import-")
            .tempfile_in(&incoming)
            .map_err(|e| io_err(&incoming, e))?;
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(HEAD_LEN);
        let mut byte_size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(source_path, e)),
            };
            let chunk = &buf[..n];
            hasher.update(chunk);
            let take = (HEAD_LEN - head.len()).min(n);
            head.extend_from_slice(&chunk[..take]);
            staged
                .write_all(chunk)
                .map_err(|e| io_err(staged.path(), e))?;
            byte_size += n as u64;
        }
        if byte_size == 0 {
            return Err(unsupported(name, "the file is empty"));
        }
        let hash = hex(&hasher.finalize());

        // 2. Decide what it is from its bytes.
        let detected = detect(&head).map_err(|reason| unsupported(name, &reason))?;
        let shard = &hash[..2];
        let stored_path = format!("{ATTACHMENTS_DIR}/{shard}/{hash}.{}", detected.ext);
        let dest = self.resolve(&stored_path);

        // 3. Images: dimensions from the header; decode and thumbnail unless done before.
        //    Videos: probe, and the first frame as thumbnail unless done before.
        let thumb_rel = format!("{THUMBS_DIR}/{shard}/{hash}.png");
        let thumb = self.resolve(&thumb_rel);
        let new_thumb = (!thumb.exists()).then_some(thumb.as_path());
        let (mut duration_ms, mut fps) = (None, None);
        let (w, h) = match detected.kind {
            AttachmentKind::Image => self.read_image(staged.path(), name, new_thumb)?,
            AttachmentKind::Video => {
                let info = crate::video::inspect(staged.path(), name, new_thumb)?;
                duration_ms = Some(info.duration_ms);
                fps = info.fps;
                (info.width, info.height)
            }
        };
        let (width, height, thumbnail_path) = (Some(w), Some(h), Some(thumb_rel));

        // 4. Move into place, unless this content is already stored.
        if dest.exists() {
            // Refresh the time garbage collection judges unreferenced files by.
            let touched = File::options()
                .write(true)
                .open(&dest)
                .and_then(|f| f.set_modified(SystemTime::now()));
            touched.map_err(|e| io_err(&dest, e))?;
        } else {
            persist(staged, &dest)?;
        }

        Ok(Attachment {
            hash,
            kind: detected.kind,
            mime: detected.mime.to_owned(),
            byte_size,
            width,
            height,
            duration_ms,
            fps,
            original_name,
            stored_path,
            thumbnail_path,
            video: None,
        })
    }

    /// Reads the image's displayed size; with `thumbnail`, also decodes it (bounded by the
    /// decode budget) and writes the thumbnail there.
    fn read_image(&self, path: &Path, name: &str, thumbnail: Option<&Path>) -> Result<(u32, u32)> {
        // `size` is (width, height, decoded bytes) once the header has been read.
        let decode_err = |e: ImageError, size: Option<(u32, u32, u64)>| match (e, size) {
            (ImageError::IoError(e), _) if e.kind() != ErrorKind::UnexpectedEof => io_err(path, e),
            (ImageError::Limits(_), Some((width, height, needed))) => AppError::ImageTooLarge {
                name: name.to_owned(),
                width,
                height,
                needed_mib: needed.div_ceil(1 << 20),
                limit_mib: self.max_decode_bytes >> 20,
            },
            (e, _) => AppError::AttachmentDecode {
                name: name.to_owned(),
                reason: e.to_string(),
            },
        };
        let mut reader = ImageReader::open(path)
            .map_err(|e| io_err(path, e))?
            .with_guessed_format()
            .map_err(|e| io_err(path, e))?;
        let mut limits = Limits::default();
        limits.max_alloc = Some(self.max_decode_bytes);
        reader.limits(limits);
        let mut decoder = reader.into_decoder().map_err(|e| decode_err(e, None))?;

        let (w, h) = decoder.dimensions();
        if w == 0 || h == 0 {
            return Err(AppError::AttachmentDecode {
                name: name.to_owned(),
                reason: format!("its header says it is {w}×{h} pixels"),
            });
        }
        // Checked here, before decoding, so the message can give the numbers.
        let needed = decoder.total_bytes();
        let size = Some((w, h, needed));
        if needed > self.max_decode_bytes {
            return Err(decode_err(
                ImageError::Limits(image::error::LimitError::from_kind(
                    image::error::LimitErrorKind::InsufficientMemory,
                )),
                size,
            ));
        }
        let orientation = decoder.orientation().map_err(|e| decode_err(e, size))?;
        let displayed = match orientation {
            Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH => (h, w),
            _ => (w, h),
        };
        let Some(thumb_path) = thumbnail else {
            return Ok(displayed);
        };

        let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_err(e, size))?;
        // Shrink first, rotate the small copy: rotating the full image would double the peak.
        let mut small = if image.width() > THUMBNAIL_SIZE || image.height() > THUMBNAIL_SIZE {
            image.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
        } else {
            image
        };
        small.apply_orientation(orientation);
        let small = if small.color().has_alpha() {
            DynamicImage::ImageRgba8(small.to_rgba8())
        } else {
            DynamicImage::ImageRgb8(small.to_rgb8())
        };
        write_image_atomically(&small, thumb_path, ImageFormat::Png)?;
        Ok(displayed)
    }

    /// Every file under `attachments/` and `thumbs/`, with the hash its name claims and its
    /// modification time, plus staged imports (hash `None`).
    pub(crate) fn files_on_disk(&self) -> Result<Vec<(PathBuf, Option<String>, SystemTime)>> {
        let mut out = Vec::new();
        for top in [ATTACHMENTS_DIR, THUMBS_DIR] {
            let top = self.data_dir.join(top);
            for shard in read_dir(&top)? {
                if shard.file_name() == INCOMING_DIR {
                    for f in read_dir(&shard.path())? {
                        out.push((f.path(), None, modified(&f)?));
                    }
                    continue;
                }
                if !shard.path().is_dir() {
                    continue;
                }
                for f in read_dir(&shard.path())? {
                    let path = f.path();
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    // Interrupted thumbnail writes are `.thumb-*` temp files: no hash. Video
                    // frame previews (`<hash>-t<ms>`) belong to their video.
                    let hash = (!stem.starts_with('.'))
                        .then(|| stem.split('-').next().unwrap_or_default().to_owned());
                    out.push((path, hash, modified(&f)?));
                }
            }
        }
        Ok(out)
    }

    fn incoming_dir(&self) -> PathBuf {
        self.data_dir.join(ATTACHMENTS_DIR).join(INCOMING_DIR)
    }
}

/// Encodes `image` as `format` into a temp file beside `dest`, then renames it into place.
pub(crate) fn write_image_atomically(
    image: &DynamicImage,
    dest: &Path,
    format: ImageFormat,
) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".thumb-")
        .tempfile_in(dir)
        .map_err(|e| io_err(dir, e))?;
    {
        let mut out = BufWriter::new(tmp.as_file_mut());
        image.write_to(&mut out, format).map_err(|e| match e {
            ImageError::IoError(e) => io_err(dest, e),
            e => io_err(dest, std::io::Error::other(e)),
        })?;
        out.flush().map_err(|e| io_err(dest, e))?;
    }
    persist(tmp, dest)
}

/// What the first bytes say the file is.
fn detect(head: &[u8]) -> std::result::Result<Detected, String> {
    const IMAGES: [(ImageFormat, &str, &str); 6] = [
        (ImageFormat::Png, "image/png", "png"),
        (ImageFormat::Jpeg, "image/jpeg", "jpg"),
        (ImageFormat::WebP, "image/webp", "webp"),
        (ImageFormat::Gif, "image/gif", "gif"),
        (ImageFormat::Bmp, "image/bmp", "bmp"),
        (ImageFormat::Tiff, "image/tiff", "tiff"),
    ];
    const EXPECTED: &str = "Glimpse takes PNG, JPEG, WebP, GIF, BMP or TIFF images and MP4, MOV, \
                            MKV, WebM or AVI videos";
    let image = |kind_mime: &'static str, ext: &'static str| Detected {
        kind: AttachmentKind::Image,
        mime: kind_mime,
        ext,
    };
    let video = |mime: &'static str, ext: &'static str| Detected {
        kind: AttachmentKind::Video,
        mime,
        ext,
    };

    if let Ok(format) = image::guess_format(head) {
        return match IMAGES.iter().find(|(f, ..)| *f == format) {
            Some((f, mime, ext)) if f.reading_enabled() => Ok(image(mime, ext)),
            _ => Err(format!("{format:?} images are not supported; {EXPECTED}")),
        };
    }
    // ISO base media (MP4, MOV, and also HEIC/AVIF photos and M4A audio): `size "ftyp" brand`.
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        return match brand {
            b"qt  " => Ok(video("video/quicktime", "mov")),
            b"isom" | b"iso2" | b"iso4" | b"iso5" | b"iso6" | b"mp41" | b"mp42" | b"avc1"
            | b"M4V " | b"M4VH" | b"M4VP" | b"dash" | b"mmp4" | b"MSNV" | b"3gp4" | b"3gp5" => {
                Ok(video("video/mp4", "mp4"))
            }
            _ => Err(format!(
                "it is an ISO media file of brand {:?} (such as HEIC, AVIF or audio); {EXPECTED}",
                String::from_utf8_lossy(brand)
            )),
        };
    }
    // Matroska and WebM share the EBML header; its DocType tells them apart.
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        if contains(head, b"webm") {
            return Ok(video("video/webm", "webm"));
        }
        if contains(head, b"matroska") {
            return Ok(video("video/x-matroska", "mkv"));
        }
        return Err(format!(
            "it is an EBML file that is neither Matroska nor WebM; {EXPECTED}"
        ));
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"AVI " {
        return Ok(video("video/x-msvideo", "avi"));
    }
    Err(format!(
        "its contents are not a known image or video format; {EXPECTED}"
    ))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// fsyncs the temp file, renames it to `dest`, and fsyncs the folder so the rename itself
/// survives a power cut. An existing `dest` is replaced (it holds the same bytes: same hash).
fn persist(tmp: NamedTempFile, dest: &Path) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| io_err(tmp.path(), e))?;
    // On failure the PersistError owns the temp file and deletes it when dropped.
    tmp.persist(dest).map_err(|e| io_err(dest, e.error))?;
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Windows cannot open a folder as a file; NTFS journals the rename itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| io_err(dir, e)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(dir, e)),
    }
}

fn modified(entry: &std::fs::DirEntry) -> Result<SystemTime> {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|e| io_err(&entry.path(), e))
}

/// Deletes a file; `Ok(None)` if it was already gone, else its size.
pub(crate) fn remove_if_present(path: &Path) -> Result<Option<u64>> {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    };
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Some(size)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, e)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn io_err(path: &Path, source: std::io::Error) -> AppError {
    AppError::AttachmentIo {
        path: path.to_path_buf(),
        source,
    }
}

fn unsupported(name: &str, reason: &str) -> AppError {
    AppError::UnsupportedAttachment {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
#[path = "attachments_tests.rs"]
mod tests;
