//! Videos in the app (issue 7): what import learns about one (size, length, frame rate, a first
//! frame thumbnail), the per-message options a video is sent with (including a "here" position),
//! the plan shown before sending, and frame previews for the player.
//!
//! Decoding is the engine's (`glimpse_models::processor::decode`): the app never holds more
//! than one small preview frame.

use std::path::{Path, PathBuf};

use glimpse_models::processor::config::VideoProcessorConfig;
use glimpse_models::processor::decode::{frame_at, plan_video_file, probe_video};
use glimpse_models::processor::{VideoOptions, VideoPlan};
use serde::{Deserialize, Serialize};

use crate::attachments::{write_image_atomically, THUMBNAIL_SIZE};
use crate::error::{AppError, Result};

/// A "here" question sends the frames this many seconds either side of the player position.
pub const HERE_HALF_WINDOW_S: f64 = 3.0;

/// Longest side of a preview frame (hover, scrubber), in pixels.
pub const PREVIEW_SIZE: u32 = 320;

/// How a video is sent with one message: the user's sampling choices, and for a follow-up about
/// the player position, `here` (seconds). Stored with the message so regenerate and edit send the
/// same frames. All `None` = the checkpoint's defaults over the whole video.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frames: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub here: Option<f64>,
}

impl VideoRequest {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The engine's options for a video `duration` seconds long (if known). `here` replaces the
    /// range with the window around it ([`here_range`]); fps and the frame cap still apply.
    pub fn options(&self, duration: Option<f64>) -> VideoOptions {
        let (start, end) = match self.here {
            Some(here) => {
                let (s, e) = here_range(here, duration);
                (Some(s), Some(e))
            }
            None => (self.start, self.end),
        };
        VideoOptions {
            fps: self.fps,
            max_frames: self.max_frames,
            start,
            end,
        }
    }
}

/// The range a "here" question analyses: [`HERE_HALF_WINDOW_S`] either side of `here`, slid to
/// stay inside a video of `duration` seconds (so a position near either end still gets a full
/// window when the video is long enough), never starting before 0.
pub fn here_range(here: f64, duration: Option<f64>) -> (f64, f64) {
    let width = 2.0 * HERE_HALF_WINDOW_S;
    let here = if here.is_finite() { here.max(0.0) } else { 0.0 };
    match duration.filter(|d| d.is_finite() && *d > 0.0) {
        Some(d) if d <= width => (0.0, d),
        Some(d) => {
            let here = here.min(d);
            let start = (here - HERE_HALF_WINDOW_S).clamp(0.0, d - width);
            (start, start + width)
        }
        None => {
            let start = (here - HERE_HALF_WINDOW_S).max(0.0);
            (start, start + width)
        }
    }
}

/// What import learns about a video.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    pub duration_ms: u64,
    pub fps: Option<f64>,
}

/// Probes the video at `path` (header, plus a demux count where the container keeps none) and,
/// with `thumbnail`, writes its first frame there as a PNG of at most [`THUMBNAIL_SIZE`] px a side.
/// A file with no video stream, a truncated one or an unknown codec fails with
/// [`AppError::VideoUnreadable`] naming `name`.
pub fn inspect(path: &Path, name: &str, thumbnail: Option<&Path>) -> Result<VideoInfo> {
    let unreadable = |e: glimpse_models::Error| unreadable(name, e);
    let meta = probe_video(path).map_err(unreadable)?;
    if let Some(thumb) = thumbnail {
        let frame = frame_at(path, 0.0, THUMBNAIL_SIZE).map_err(unreadable)?;
        write_image_atomically(
            &image::DynamicImage::ImageRgb8(frame),
            thumb,
            image::ImageFormat::Png,
        )?;
    }
    Ok(VideoInfo {
        width: meta.width as u32,
        height: meta.height as u32,
        duration_ms: (meta.duration * 1000.0).round() as u64,
        fps: meta.fps,
    })
}

/// The engine's reason, said about the file the user named rather than its stored copy.
fn unreadable(name: &str, e: glimpse_models::Error) -> AppError {
    use glimpse_models::Error as E;
    let reason = match e {
        E::NoVideoStream { .. } => "it has no video stream (is it an audio-only file?)".to_owned(),
        E::VideoTruncated { reason, .. } => format!("it is truncated or damaged ({reason})"),
        E::VideoCodec { reason, .. } => format!("its video stream cannot be decoded ({reason})"),
        E::VideoDecode { reason, .. } | E::NoVideoFrames { reason, .. } => reason,
        E::MissingFile { reason, .. } => reason,
        other => other.to_string(),
    };
    AppError::VideoUnreadable {
        name: name.to_owned(),
        reason,
    }
}

/// A plan as the UI shows it: the sampled frame times on the timeline and the cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    pub frame_times: Vec<f64>,
    pub vision_tokens: usize,
    pub width: usize,
    pub height: usize,
    pub duration: f64,
    pub fps: f64,
    pub frame_count: usize,
    pub start: f64,
    pub end: f64,
}

impl From<&VideoPlan> for PlanView {
    fn from(p: &VideoPlan) -> Self {
        Self {
            frame_times: p.frame_times.clone(),
            vision_tokens: p.vision_tokens,
            width: p.metadata.width,
            height: p.metadata.height,
            duration: p.metadata.duration,
            fps: p.metadata.fps_or_default(),
            frame_count: p.metadata.total_num_frames,
            start: p.range[0],
            end: p.range[1],
        }
    }
}

/// The plan of the video at `path` sent with `request`, under the loaded model's video settings.
pub fn plan(
    path: &Path,
    request: &VideoRequest,
    duration: Option<f64>,
    cfg: &VideoProcessorConfig,
) -> Result<PlanView> {
    let plan = plan_video_file(path, &request.options(duration), cfg)?;
    Ok(PlanView::from(&plan))
}

/// Where the preview of `hash` at `seconds` is cached: `thumbs/<h0h1>/<hash>-t<ms>.jpg`, with the
/// time rounded to 100 ms (the UI's scrubber step), so hovering never decodes a frame twice.
pub fn preview_path(thumbs: &Path, hash: &str, seconds: f64) -> PathBuf {
    let ms = ((seconds.max(0.0) * 10.0).round() as u64) * 100;
    let shard = hash.get(..2).unwrap_or("00");
    thumbs.join(shard).join(format!("{hash}-t{ms}.jpg"))
}

/// The cached preview of the video at `video` at `seconds`, decoding it on first use.
pub fn preview(video: &Path, dest: &Path, seconds: f64) -> Result<()> {
    if dest.exists() {
        return Ok(());
    }
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(AppError::Engine(glimpse_models::Error::BadVideoOptions {
            reason: format!("a frame time must be 0 seconds or more, got {seconds}"),
        }));
    }
    let frame = frame_at(video, seconds, PREVIEW_SIZE)?;
    write_image_atomically(
        &image::DynamicImage::ImageRgb8(frame),
        dest,
        image::ImageFormat::Jpeg,
    )
}

#[cfg(test)]
#[path = "video_tests.rs"]
pub(crate) mod tests;
