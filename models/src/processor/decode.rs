//! Video files through FFmpeg (`ffmpeg-next`): metadata, then a single sequential decode that
//! keeps only the sampled frames, each converted and resized as soon as it is decoded, so at most
//! one frame is ever held at full resolution. A time range starts with a seek to the keyframe
//! before its first sampled frame.

use std::path::Path;

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling::{Context as Scaler, Flags};
use ffmpeg_next as ffmpeg;

use super::config::VideoProcessorConfig;
use super::resize::RgbImage;
use super::video::{resize_frame, ProcessedVideo, VideoAssembler, VideoMetadata};
use super::video_plan::{
    plan_from_metadata, with_video_path, FrameTicker, VideoOptions, VideoPlan,
};
use super::PrepareHooks;
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

/// An opened file with a decoder for its best video stream.
struct Opened {
    ictx: ffmpeg::format::context::Input,
    index: usize,
    decoder: ffmpeg::decoder::Video,
    /// Seconds per stream timestamp tick.
    time_base: f64,
    /// The stream's first timestamp (0 when unknown).
    start_ts: i64,
    /// Frame rate of the stream; `None` when the container does not say.
    fps: Option<f64>,
}

fn open_stream(path: &Path) -> Result<Opened> {
    let ictx = open(path)?;
    let stream = ictx
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or_else(|| Error::NoVideoStream {
            path: path.to_path_buf(),
        })?;
    let index = stream.index();
    let rate = stream.avg_frame_rate();
    let fps = (rate.numerator() > 0 && rate.denominator() > 0).then(|| f64::from(rate));
    let time_base = f64::from(stream.time_base());
    let start_ts = match stream.start_time() {
        t if t == ffmpeg::ffi::AV_NOPTS_VALUE => 0,
        t => t,
    };
    let params = stream.parameters();
    let codec = params.id();
    let mut ctx =
        ffmpeg::codec::context::Context::from_parameters(params).map_err(|e| err(path, e))?;
    // Decoding dominates extraction (10-minute 1080p H.264 at 2 fps: 68 of 84 CPU seconds), and
    // libavcodec decodes on one thread unless asked; frame threads (count 0 = one per core) give
    // the same frames in the same order. Measured on 2 busy cores: the same CPU time, 11 % less
    // wall time (40 s of that file: 14.6 s vs 16.4 s, 16.4 s vs 18.5 s).
    ctx.set_threading(ffmpeg::codec::threading::Config::kind(
        ffmpeg::codec::threading::Type::Frame,
    ));
    let decoder = ctx.decoder().video().map_err(|e| Error::VideoCodec {
        path: path.to_path_buf(),
        reason: if codec == ffmpeg::codec::Id::None {
            "the codec is unknown to FFmpeg".into()
        } else {
            format!("no decoder for the {} codec ({e})", codec.name())
        },
    })?;
    Ok(Opened {
        ictx,
        index,
        decoder,
        time_base,
        start_ts,
        fps,
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

/// Frame count, fps, size and duration of the best video stream. The count comes from the
/// container (`nb_frames`, what PyAV reports); containers that do not store it (Matroska, WebM)
/// are counted by demuxing, without decoding.
pub fn probe_video(path: &Path) -> Result<VideoMetadata> {
    let Opened {
        mut ictx,
        index,
        decoder,
        time_base,
        fps,
        ..
    } = open_stream(path)?;
    let stream = ictx.stream(index).expect("index from best()");
    let (width, height) = (decoder.width() as usize, decoder.height() as usize);
    // What the container promises, to tell a truncated file from a short one.
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
                return Err(Error::VideoTruncated {
                    path: path.to_path_buf(),
                    reason: format!("{total} frames found, the header promises {expected}"),
                });
            }
        }
    }
    if total == 0 || width == 0 || height == 0 {
        return Err(Error::NoVideoFrames {
            path: path.to_path_buf(),
            reason: "the video stream is empty".into(),
        });
    }
    Ok(VideoMetadata::new(total, fps, width, height))
}

/// Copy a packed RGB24 frame out of FFmpeg's padded rows.
fn packed_rgb(frame: &ffmpeg::frame::Video) -> Vec<u8> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let stride = frame.stride(0);
    let src = frame.data(0);
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        data.extend_from_slice(&src[y * stride..y * stride + w * 3]);
    }
    data
}

/// How a decode pass ended.
struct Decoded {
    /// Frames that came out of the decoder (index of the last one + 1, counted from the seek).
    frames: usize,
    /// Packets the decoder refused.
    bad_packets: usize,
    /// The seek landed somewhere the frame positions cannot be told from: decode from the start.
    restart: bool,
}

/// Decode the stream in presentation order from the keyframe at or before frame `from`, calling
/// `on_frame(index, frame)` for every frame until it returns `false`. Indices count frames from the start of the stream,
/// as PyAV's sequential decode does; after a seek the first frame's index comes from its
/// timestamp and the rest are counted on from it.
fn decode_from(
    o: &mut Opened,
    from: usize,
    on_frame: &mut dyn FnMut(usize, &ffmpeg::frame::Video) -> Result<bool>,
) -> Result<Decoded> {
    let mut next_index: Option<usize> = Some(0);
    if from > 0 {
        if let Some(fps) = o.fps {
            // Seek (in AV_TIME_BASE) to the keyframe at or before the frame's time.
            let secs = o.start_ts as f64 * o.time_base + from as f64 / fps;
            let target = (secs * 1e6) as i64;
            if o.ictx.seek(target, ..target).is_ok() {
                next_index = None;
            }
        }
    }
    let mut out = Decoded {
        frames: 0,
        bad_packets: 0,
        restart: false,
    };
    let mut frame = ffmpeg::frame::Video::empty();
    let mut more = true;
    let mut eof_sent = false;
    while more {
        let packet = if eof_sent {
            None
        } else {
            next_packet(&mut o.ictx)
        };
        match packet {
            Some(p) if p.stream() != o.index => continue,
            Some(p) => {
                // A corrupt packet is skipped, as PyAV's decode loop would; what matters is
                // whether the sampled frames arrive.
                if o.decoder.send_packet(&p).is_err() {
                    out.bad_packets += 1;
                    continue;
                }
            }
            None if eof_sent => break,
            None => {
                let _ = o.decoder.send_eof();
                eof_sent = true;
            }
        }
        while more && o.decoder.receive_frame(&mut frame).is_ok() {
            let i = match next_index {
                Some(i) => i,
                None => {
                    let Some(ts) = frame.timestamp() else {
                        out.restart = true;
                        return Ok(out);
                    };
                    let fps = o.fps.expect("seeking needs fps");
                    let i = ((ts - o.start_ts) as f64 * o.time_base * fps).round();
                    if i < 0.0 || i as usize > from {
                        out.restart = true;
                        return Ok(out);
                    }
                    i as usize
                }
            };
            next_index = Some(i + 1);
            out.frames = i + 1;
            more = on_frame(i, &frame)?;
        }
    }
    Ok(out)
}

/// Decode with a seek to `from`, falling back to a decode from the start when the seek cannot be
/// trusted.
fn decode_with_fallback(
    path: &Path,
    from: usize,
    on_frame: &mut dyn FnMut(usize, &ffmpeg::frame::Video) -> Result<bool>,
) -> Result<Decoded> {
    let mut o = open_stream(path)?;
    let d = decode_from(&mut o, from, on_frame)?;
    if !d.restart {
        return Ok(d);
    }
    let mut o = open_stream(path)?;
    let mut d = decode_from(&mut o, 0, on_frame)?;
    d.restart = false;
    Ok(d)
}

/// A swscale context to packed RGB24 at `(w, h)`, made on the first frame (its pixel format is
/// only known then).
fn rgb_scaler<'s>(
    slot: &'s mut Option<Scaler>,
    frame: &ffmpeg::frame::Video,
    (w, h): (u32, u32),
    flags: Flags,
    path: &Path,
) -> Result<&'s mut Scaler> {
    match slot {
        Some(s) => Ok(s),
        None => Ok(slot.insert(
            Scaler::get(
                frame.format(),
                frame.width(),
                frame.height(),
                Pixel::RGB24,
                w,
                h,
                flags,
            )
            .map_err(|e| err(path, e))?,
        )),
    }
}

/// Decode the frames a plan sampled, resize and patchify them. Progress and cancellation go
/// through `ticker`.
pub(crate) fn extract_planned(
    path: &Path,
    plan: &VideoPlan,
    cfg: &VideoProcessorConfig,
    ticker: &mut FrameTicker,
) -> Result<ProcessedVideo> {
    let indices = &plan.frame_indices;
    let size = (plan.resized[0], plan.resized[1]);
    let Some(&first) = indices.first() else {
        return Err(Error::NoVideoFrames {
            path: path.to_path_buf(),
            reason: "no frame was sampled".into(),
        });
    };
    // PyAV's `to_ndarray(format="rgb24")` converts with swscale at the source size; the Qwen
    // resize happens afterwards, on uint8 RGB.
    let mut scaler: Option<Scaler> = None;
    let mut video = VideoAssembler::new(cfg, indices.len(), Some(size));
    let mut next = 0usize; // position in `indices`
    ticker.check()?;
    let decoded = decode_with_fallback(path, first, &mut |i, frame| {
        ticker.check()?;
        if i < indices[next] {
            return Ok(true);
        }
        let (w, h) = (frame.width(), frame.height());
        let sc = rgb_scaler(&mut scaler, frame, (w, h), Flags::BILINEAR, path)?;
        let mut rgb = ffmpeg::frame::Video::empty();
        sc.run(frame, &mut rgb).map_err(|e| err(path, e))?;
        let img = RgbImage::new(w as usize, h as usize, packed_rgb(&rgb))?;
        let img = resize_frame(img, size)?;
        // Duplicate indices (a video shorter than min_frames) reuse the same decoded frame.
        let mut img = Some(img);
        while next < indices.len() && indices[next] <= i {
            next += 1;
            let repeat = next < indices.len() && indices[next] <= i;
            let frame = if repeat {
                img.clone().expect("kept while repeated")
            } else {
                img.take().expect("pushed once")
            };
            video.push(frame)?;
            ticker.tick();
        }
        Ok(next < indices.len())
    })?;
    if next < indices.len() {
        if decoded.frames == 0 {
            return Err(Error::VideoCodec {
                path: path.to_path_buf(),
                reason: format!(
                    "none of its frames decode ({} packets refused)",
                    decoded.bad_packets
                ),
            });
        }
        return Err(Error::VideoTruncated {
            path: path.to_path_buf(),
            reason: format!(
                "decoded {} of {} frames, needed frame {}",
                decoded.frames, plan.metadata.total_num_frames, indices[next]
            ),
        });
    }
    let fps = plan.metadata.fps_or_default();
    video
        .finish(indices.clone(), fps)
        .map_err(|e| with_video_path(e, path))
}

/// Decode `path`, sample frames as `Qwen3VLVideoProcessor` does, resize and patchify them.
pub fn process_video_file(
    path: &Path,
    cfg: &VideoProcessorConfig,
    opts: &VideoOptions,
    hooks: &PrepareHooks,
) -> Result<ProcessedVideo> {
    let plan = plan_video_file(path, opts, cfg)?;
    let cfg = opts.apply(cfg)?;
    let mut ticker = FrameTicker::new(hooks, plan.frame_indices.len());
    extract_planned(path, &plan, &cfg, &mut ticker)
}

/// Probe and plan (no pixel decode).
pub fn plan_video_file(
    path: &Path,
    opts: &VideoOptions,
    cfg: &VideoProcessorConfig,
) -> Result<VideoPlan> {
    // Option errors first: they need no file.
    opts.apply(cfg)?;
    let meta = probe_video(path)?;
    plan_from_metadata(&meta, opts, cfg, path)
}

/// The frame shown at `seconds` (the last frame that starts at or before it; the last frame of
/// the video past its end), scaled so its longer side is at most `max_side` (never enlarged).
/// For previews: it seeks, so it costs one keyframe interval of decoding, not the whole file.
pub fn frame_at(path: &Path, seconds: f64, max_side: u32) -> Result<image::RgbImage> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(Error::BadVideoOptions {
            reason: format!("a frame time must be 0 seconds or more, got {seconds}"),
        });
    }
    if max_side == 0 {
        return Err(Error::BadVideoOptions {
            reason: "the preview size must be at least 1 pixel".into(),
        });
    }
    let fps = open_stream(path)?.fps.unwrap_or(24.0);
    let target = (seconds * fps + 1e-6).floor() as usize;
    let mut last: Option<ffmpeg::frame::Video> = None;
    // Past the end, the seek lands on the last keyframe and every frame up to the end is kept.
    decode_with_fallback(path, target, &mut |i, frame| {
        last = Some(frame.clone());
        Ok(i < target)
    })?;
    let frame = last.ok_or_else(|| Error::VideoCodec {
        path: path.to_path_buf(),
        reason: "no frame of the video decodes".into(),
    })?;
    let (w, h) = (frame.width(), frame.height());
    let scale = (f64::from(max_side) / f64::from(w.max(h))).min(1.0);
    let tw = ((f64::from(w) * scale).round() as u32).max(1);
    let th = ((f64::from(h) * scale).round() as u32).max(1);
    let mut scaler = None;
    let sc = rgb_scaler(&mut scaler, &frame, (tw, th), Flags::AREA, path)?;
    let mut rgb = ffmpeg::frame::Video::empty();
    sc.run(&frame, &mut rgb).map_err(|e| err(path, e))?;
    image::RgbImage::from_raw(tw, th, packed_rgb(&rgb))
        .ok_or_else(|| err(path, "the converted frame has the wrong size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/media")
            .join(name)
    }

    /// Frame index → RGB bytes for every frame a pass hands out.
    fn frames_from(path: &Path, from: usize) -> (Decoded, Vec<(usize, Vec<u8>)>) {
        let mut o = open_stream(path).unwrap();
        let mut out = vec![];
        let mut scaler = None;
        let d = decode_from(&mut o, from, &mut |i, f| {
            let sc = rgb_scaler(
                &mut scaler,
                f,
                (f.width(), f.height()),
                Flags::BILINEAR,
                path,
            )?;
            let mut rgb = ffmpeg::frame::Video::empty();
            sc.run(f, &mut rgb).unwrap();
            out.push((i, packed_rgb(&rgb)));
            Ok(true)
        })
        .unwrap();
        (d, out)
    }

    #[test]
    fn a_seek_lands_on_the_keyframe_before_and_counts_on_from_it() {
        // 12-frame GOPs with B-frames: frame 18 is reached from the keyframe at frame 12.
        let path = media("gop_64x48.mp4");
        let (full, all) = frames_from(&path, 0);
        assert_eq!(full.frames, 48);
        assert_eq!(all.len(), 48);
        let (d, tail) = frames_from(&path, 18);
        assert!(!d.restart);
        assert_eq!(
            tail[0].0, 12,
            "the seek should land on the keyframe at frame 12"
        );
        assert_eq!(tail.len(), 36);
        for (i, px) in &tail {
            assert!(*px == all[*i].1, "frame {i} differs after the seek");
        }
        // Intra-only FFV1: the seek lands on the frame itself.
        let (d, tail) = frames_from(&media("moving_104x72.mkv"), 7);
        assert!(!d.restart);
        assert_eq!(tail[0].0, 7);
    }
}
