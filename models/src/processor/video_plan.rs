//! What a user sets per video (sampling rate, frame cap, time range) and what it will cost before
//! any pixel is decoded: the sampled frames, their times, the grid and the vision tokens.
//!
//! Time ranges. Frame `i` of a constant-rate video shows at `i / fps` seconds (fps from the
//! container, 24 when it gives none, as transformers assumes). A range `[start, end)` selects the
//! frames whose time lies in it: `first = ⌈start·fps⌉`, `last = ⌈end·fps⌉ − 1` (times are taken 1e-6
//! frame early so `0.1 s · 30 fps` is frame 3, not 4). `end` past the video's end is clamped to it;
//! a range that starts at or after the end, ends at or before its start, or holds no frame is a
//! [`Error::VideoRange`]. Within the range, frames are sampled exactly as transformers samples a
//! clip cut to those frames (`Qwen3VLVideoProcessor.sample_frames` on a video of `last − first + 1`
//! frames at the same fps), then shifted by `first`; the prompt's timestamps come from the shifted
//! (absolute) indices, so `<80.5 seconds>` means 80.5 s into the file and the model's answer maps
//! straight onto the player. Without a range, `first = 0` and the whole video is the clip: the
//! result is transformers' own, bit for bit.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::VideoProcessorConfig;
use super::video::{group_timestamps, sample_frame_indices, video_target_size, VideoMetadata};
use crate::generation::CancelToken;
use crate::{Error, Result};

/// Per-video sampling choices; `None` keeps the checkpoint's setting (fps, max_frames) or the
/// whole video (start, end). Seconds for `start`/`end`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoOptions {
    /// Frames sampled per second of video (overrides the config's `fps` and any `num_frames`).
    pub fps: Option<f64>,
    /// At most this many sampled frames (the config's `max_frames` otherwise).
    pub max_frames: Option<usize>,
    pub start: Option<f64>,
    pub end: Option<f64>,
}

impl VideoOptions {
    /// The video-processor settings with these options applied. Fails on values that cannot work.
    pub fn apply(&self, cfg: &VideoProcessorConfig) -> Result<VideoProcessorConfig> {
        let bad = |reason: String| Error::BadVideoOptions { reason };
        let mut c = cfg.clone();
        if let Some(fps) = self.fps {
            if !fps.is_finite() || fps <= 0.0 {
                return Err(bad(format!(
                    "frames per second must be a positive number, got {fps}"
                )));
            }
            c.fps = Some(fps);
            c.num_frames = None;
        }
        if let Some(n) = self.max_frames {
            // Frames go to the model in pairs (the temporal patch); one frame cannot be processed.
            if n < cfg.temporal_patch_size {
                return Err(bad(format!(
                    "the maximum frame count must be at least {}, got {n}",
                    cfg.temporal_patch_size
                )));
            }
            c.max_frames = n;
        }
        for (name, v) in [("start", self.start), ("end", self.end)] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Err(bad(format!(
                        "the range {name} must be a time of 0 seconds or more, got {v}"
                    )));
                }
            }
        }
        if let (Some(s), Some(e)) = (self.start, self.end) {
            if e <= s {
                return Err(bad(format!(
                    "the range ends ({e} s) before it starts ({s} s)"
                )));
            }
        }
        Ok(c)
    }

    pub fn has_range(&self) -> bool {
        self.start.is_some() || self.end.is_some()
    }
}

/// Source frames `first .. first + count` (a clip of the video).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpan {
    pub first: usize,
    pub count: usize,
}

/// The frames of `meta` inside the options' time range (module docs).
pub fn frame_span(meta: &VideoMetadata, opts: &VideoOptions, path: &Path) -> Result<FrameSpan> {
    let total = meta.total_num_frames;
    if !opts.has_range() {
        return Ok(FrameSpan {
            first: 0,
            count: total,
        });
    }
    let fps = meta.fps_or_default();
    let duration = meta.duration;
    let range_err = |reason: String| Error::VideoRange {
        path: path.to_path_buf(),
        reason,
    };
    let start = opts.start.unwrap_or(0.0);
    let end = opts.end.unwrap_or(duration).min(duration);
    if start >= duration {
        return Err(range_err(format!(
            "it starts at {start} s but the video is {duration:.3} s long"
        )));
    }
    let frame_at = |t: f64| (t * fps - 1e-6).ceil().max(0.0) as usize;
    let first = frame_at(start).min(total);
    let stop = frame_at(end).min(total);
    if stop <= first {
        return Err(range_err(format!(
            "{start}–{end} s holds no frame (the video has one frame every {:.3} s)",
            1.0 / fps
        )));
    }
    Ok(FrameSpan {
        first,
        count: stop - first,
    })
}

/// What processing a video will produce, known from its header alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoPlan {
    pub metadata: VideoMetadata,
    /// Sampled source frames (absolute indices, before temporal padding).
    pub frame_indices: Vec<usize>,
    /// Time of each sampled frame, seconds from the start of the file.
    pub frame_times: Vec<f64>,
    /// One per temporal group: the times the prompt shows the model (`<t seconds>`).
    pub timestamps: Vec<f64>,
    /// `[t, h, w]` in patches, as `video_grid_thw`.
    pub grid_thw: [usize; 3],
    /// Size every sampled frame is resized to, `[height, width]`.
    pub resized: [usize; 2],
    /// `<|video_pad|>` tokens the video adds to the prompt (`t·h·w / merge²`).
    pub vision_tokens: usize,
    /// The analysed range in seconds, `[start, end)` (the whole video without a range).
    pub range: [f64; 2],
}

/// Plan a video from its metadata: the pure part of [`super::Processor::plan_video`].
pub fn plan_from_metadata(
    meta: &VideoMetadata,
    opts: &VideoOptions,
    cfg: &VideoProcessorConfig,
    path: &Path,
) -> Result<VideoPlan> {
    let cfg = opts.apply(cfg)?;
    let span = frame_span(meta, opts, path)?;
    let clip = VideoMetadata {
        total_num_frames: span.count,
        ..meta.clone()
    };
    let frame_indices: Vec<usize> = sample_frame_indices(&clip, &cfg)
        .map_err(|e| with_video_path(e, path))?
        .into_iter()
        .map(|i| i + span.first)
        .collect();
    let tp = cfg.temporal_patch_size;
    if frame_indices.len() < tp {
        let reason = format!(
            "holds {} frame(s); Qwen3-VL needs at least {tp}",
            span.count
        );
        return Err(if opts.has_range() {
            Error::VideoRange {
                path: path.to_path_buf(),
                reason: format!("the range {reason}"),
            }
        } else {
            Error::NoVideoFrames {
                path: path.to_path_buf(),
                reason: format!("the video {reason}"),
            }
        });
    }
    let fps = meta.fps_or_default();
    let (h, w) = video_target_size(frame_indices.len(), meta.height, meta.width, &cfg)?;
    let t = frame_indices.len().div_ceil(cfg.temporal_patch_size);
    let grid_thw = [t, h / cfg.patch_size, w / cfg.patch_size];
    let vision_tokens = grid_thw.iter().product::<usize>() / (cfg.merge_size * cfg.merge_size);
    Ok(VideoPlan {
        metadata: meta.clone(),
        frame_times: frame_indices.iter().map(|&i| i as f64 / fps).collect(),
        timestamps: group_timestamps(&frame_indices, fps, cfg.temporal_patch_size),
        frame_indices,
        grid_thw,
        resized: [h, w],
        vision_tokens,
        range: [
            span.first as f64 / fps,
            (span.first + span.count) as f64 / fps,
        ],
    })
}

/// Fill in the path of a path-less `NoVideoFrames` raised by the pure sampling code.
pub(crate) fn with_video_path(e: Error, path: &Path) -> Error {
    match e {
        Error::NoVideoFrames { path: p, reason } if p == PathBuf::new() => Error::NoVideoFrames {
            path: path.to_path_buf(),
            reason,
        },
        e => e,
    }
}

/// Progress of frame extraction during one `prepare`: sampled frames done out of the total over
/// all videos of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VideoProgress {
    pub done: usize,
    pub total: usize,
}

/// Optional observers of a `prepare`: a progress callback (called once per sampled video frame,
/// from the preparing thread) and a cancel token (checked before every decoded frame; a set token
/// ends the preparation with [`Error::Cancelled`]).
#[derive(Default, Clone, Copy)]
pub struct PrepareHooks<'a> {
    pub progress: Option<&'a (dyn Fn(VideoProgress) + Sync)>,
    pub cancel: Option<&'a CancelToken>,
}

/// Counts sampled frames across the videos of one preparation and checks for cancellation.
pub(crate) struct FrameTicker<'a> {
    hooks: &'a PrepareHooks<'a>,
    done: usize,
    total: usize,
}

impl<'a> FrameTicker<'a> {
    pub(crate) fn new(hooks: &'a PrepareHooks<'a>, total: usize) -> Self {
        Self {
            hooks,
            done: 0,
            total,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        match self.hooks.cancel {
            Some(c) if c.is_cancelled() => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    /// One sampled frame is ready.
    pub(crate) fn tick(&mut self) {
        self.done += 1;
        if let Some(p) = self.hooks.progress {
            p(VideoProgress {
                done: self.done,
                total: self.total,
            });
        }
    }
}
