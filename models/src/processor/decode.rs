//! Video files through FFmpeg (`ffmpeg-next`): metadata, then a single sequential decode that
//! keeps only the sampled frames, each resized as soon as it is decoded, so at most one frame is
//! ever held at full resolution.

use std::path::{Path, PathBuf};

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling::{Context as Scaler, Flags};
use ffmpeg_next as ffmpeg;

use super::config::VideoProcessorConfig;
use super::resize::RgbImage;
use super::video::{
    finish_video, resize_frame, sample_frame_indices, video_target_size, ProcessedVideo,
    VideoMetadata,
};
use crate::{Error, Result};

/// Consecutive demuxer errors after which a file counts as broken rather than glitchy.
const MAX_READ_ERRORS: usize = 64;

fn err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::VideoDecode {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn open(path: &Path) -> Result<ffmpeg::format::context::Input> {
    ffmpeg::init().map_err(|e| err(path, e))?;
    // Failures come back as `Error`s; FFmpeg's own stderr chatter would only duplicate them.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    if !path.is_file() {
        return Err(Error::MissingFile {
            path: path.to_path_buf(),
            reason: "no such video file".into(),
        });
    }
    ffmpeg::format::input(&path).map_err(|e| err(path, format!("not a readable video: {e}")))
}

fn video_stream_index(path: &Path, ictx: &ffmpeg::format::context::Input) -> Result<usize> {
    ictx.streams()
        .best(ffmpeg::media::Type::Video)
        .map(|s| s.index())
        .ok_or_else(|| Error::NoVideoFrames {
            path: path.to_path_buf(),
            reason: "the file has no video stream".into(),
        })
}

/// Read the next packet of any stream; `None` at the end. A run of read errors ends the file too
/// (ffmpeg-next's `packets()` iterator would retry forever on a truncated file).
fn next_packet(ictx: &mut ffmpeg::format::context::Input) -> Option<ffmpeg::Packet> {
    let mut errors = 0;
    loop {
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(ictx) {
            Ok(()) => return Some(packet),
            Err(ffmpeg::Error::Eof) => return None,
            Err(_) if errors < MAX_READ_ERRORS => errors += 1,
            Err(_) => return None,
        }
    }
}

/// Frame count, fps and size of the best video stream. The count comes from the container
/// (`nb_frames`, what PyAV reports); containers that do not store it (Matroska, WebM) are
/// counted by demuxing, without decoding.
pub fn probe_video(path: &Path) -> Result<VideoMetadata> {
    let mut ictx = open(path)?;
    let index = video_stream_index(path, &ictx)?;
    let stream = ictx.stream(index).expect("index from best()");
    let rate = stream.avg_frame_rate();
    let fps = (rate.numerator() > 0 && rate.denominator() > 0).then(|| f64::from(rate));
    let params = stream.parameters();
    let ctx = ffmpeg::codec::context::Context::from_parameters(params).map_err(|e| err(path, e))?;
    let decoder = ctx.decoder().video().map_err(|e| err(path, e))?;
    let (width, height) = (decoder.width() as usize, decoder.height() as usize);
    // What the container promises, to tell a truncated file from a short one.
    let time_base = f64::from(stream.time_base());
    let stream_secs = (stream.duration() > 0).then(|| stream.duration() as f64 * time_base);
    let container_secs = (ictx.duration() > 0)
        .then(|| ictx.duration() as f64 * f64::from(ffmpeg::rescale::TIME_BASE));
    let mut total = stream.frames().max(0) as usize;
    if total == 0 {
        while let Some(p) = next_packet(&mut ictx) {
            if p.stream() == index {
                total += 1;
            }
        }
        if let (Some(secs), Some(fps)) = (stream_secs.or(container_secs), fps) {
            let expected = (secs * fps).round() as usize;
            // Allow a frame of slack for rounding of the container duration.
            if total + 1 < expected {
                return Err(err(
                    path,
                    format!(
                        "the file is truncated: {total} frames found, the header promises {expected}"
                    ),
                ));
            }
        }
    }
    if total == 0 || width == 0 || height == 0 {
        return Err(Error::NoVideoFrames {
            path: path.to_path_buf(),
            reason: "the video stream is empty".into(),
        });
    }
    Ok(VideoMetadata {
        total_num_frames: total,
        fps,
        width,
        height,
    })
}

/// Copy a packed RGB24 frame out of FFmpeg's padded rows.
fn rgb_from_frame(frame: &ffmpeg::frame::Video) -> Result<RgbImage> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let stride = frame.stride(0);
    let src = frame.data(0);
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        data.extend_from_slice(&src[y * stride..y * stride + w * 3]);
    }
    RgbImage::new(w, h, data)
}

/// Decode `path`, sample frames as `Qwen3VLVideoProcessor` does, resize and patchify them.
pub fn process_video_file(path: &Path, cfg: &VideoProcessorConfig) -> Result<ProcessedVideo> {
    let meta = probe_video(path)?;
    let indices = sample_frame_indices(&meta, cfg).map_err(|e| with_path(e, path))?;
    let size = video_target_size(indices.len(), meta.height, meta.width, cfg)?;

    let mut ictx = open(path)?;
    let index = video_stream_index(path, &ictx)?;
    let params = ictx.stream(index).expect("index from best()").parameters();
    let mut decoder = ffmpeg::codec::context::Context::from_parameters(params)
        .and_then(|c| c.decoder().video())
        .map_err(|e| err(path, e))?;
    // PyAV's `to_ndarray(format="rgb24")` converts with swscale at the source size; the Qwen resize
    // happens afterwards, on uint8 RGB.
    let mut scaler: Option<Scaler> = None;
    let mut frames: Vec<RgbImage> = Vec::with_capacity(indices.len());
    let mut next = 0usize; // position in `indices`
    let mut decoded = 0usize; // frames decoded so far
    let last = *indices.last().expect("sampling returns at least one index");

    let mut handle = |decoder: &mut ffmpeg::decoder::Video,
                      frames: &mut Vec<RgbImage>,
                      next: &mut usize,
                      decoded: &mut usize|
     -> Result<()> {
        let mut frame = ffmpeg::frame::Video::empty();
        while decoder.receive_frame(&mut frame).is_ok() {
            let i = *decoded;
            *decoded += 1;
            if *next >= indices.len() || indices[*next] != i {
                continue;
            }
            let sc = match &mut scaler {
                Some(s) => s,
                None => scaler.insert(
                    Scaler::get(
                        frame.format(),
                        frame.width(),
                        frame.height(),
                        Pixel::RGB24,
                        frame.width(),
                        frame.height(),
                        Flags::BILINEAR,
                    )
                    .map_err(|e| err(path, e))?,
                ),
            };
            let mut rgb = ffmpeg::frame::Video::empty();
            sc.run(&frame, &mut rgb).map_err(|e| err(path, e))?;
            let img = rgb_from_frame(&rgb)?;
            let img = resize_frame(img, size)?;
            // Duplicate indices (a video shorter than min_frames) reuse the same decoded frame.
            while *next < indices.len() && indices[*next] == i {
                frames.push(img.clone());
                *next += 1;
            }
        }
        Ok(())
    };

    while let Some(packet) = next_packet(&mut ictx) {
        if packet.stream() != index {
            continue;
        }
        // A corrupt packet is skipped, as PyAV's decode loop would surface it; what matters is
        // whether the sampled frames arrive.
        if decoder.send_packet(&packet).is_err() {
            continue;
        }
        handle(&mut decoder, &mut frames, &mut next, &mut decoded)?;
        if decoded > last {
            break;
        }
    }
    if decoded <= last {
        let _ = decoder.send_eof();
        handle(&mut decoder, &mut frames, &mut next, &mut decoded)?;
    }
    if frames.is_empty() {
        return Err(Error::NoVideoFrames {
            path: path.to_path_buf(),
            reason: "no frame could be decoded".into(),
        });
    }
    if next < indices.len() {
        return Err(err(
            path,
            format!(
                "the file is truncated or damaged: decoded {decoded} of {} frames, needed frame {}",
                meta.total_num_frames, indices[next]
            ),
        ));
    }
    finish_video(frames, indices, meta.fps_or_default(), cfg).map_err(|e| with_path(e, path))
}

fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::NoVideoFrames { path: p, reason } if p == PathBuf::new() => Error::NoVideoFrames {
            path: path.to_path_buf(),
            reason,
        },
        e => e,
    }
}
