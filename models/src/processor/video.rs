//! The Qwen3-VL video processor (spec §7): frame sampling, the T·H·W smart_resize, patchify, and the
//! per-group timestamps that go into the prompt. Decoding files lives in `decode.rs` (feature
//! `video`); frames can also come from a folder or list of images.

use std::path::{Path, PathBuf};

use super::config::VideoProcessorConfig;
use super::image::{fused_mean_std, load_image, patchify_into, AlphaMode, DecodeLimits};
use super::resize::{resize_bicubic_aa, smart_resize_video, RgbImage};
use super::video_plan::FrameTicker;
use crate::{Error, Result};

/// What is known about a video before decoding its frames.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VideoMetadata {
    pub total_num_frames: usize,
    /// Source frames per second; `None` when the container does not say (transformers then
    /// assumes 24, for sampling and for timestamps).
    pub fps: Option<f64>,
    pub width: usize,
    pub height: usize,
    /// Seconds: frames / fps (24 fps when unknown), the clock the timestamps run on.
    pub duration: f64,
}

impl VideoMetadata {
    pub fn new(total_num_frames: usize, fps: Option<f64>, width: usize, height: usize) -> Self {
        Self {
            total_num_frames,
            fps,
            width,
            height,
            duration: total_num_frames as f64 / fps.unwrap_or(24.0),
        }
    }

    /// The fps transformers uses when the source does not give one (`sample_frames`,
    /// `replace_video_token`).
    pub fn fps_or_default(&self) -> f64 {
        self.fps.unwrap_or(24.0)
    }
}

/// `np.linspace(0, total − 1, n).round().astype(int)` (float64, half to even).
fn linspace_indices(total: usize, n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![0];
    }
    let stop = (total - 1) as f64;
    let step = stop / (n - 1) as f64;
    (0..n)
        .map(|i| {
            // numpy sets the endpoint exactly.
            let v = if i == n - 1 { stop } else { i as f64 * step };
            v.round_ties_even() as usize
        })
        .collect()
}

/// `Qwen3VLVideoProcessor.sample_frames` (spec §7.2): the indices of the frames to decode.
pub fn sample_frame_indices(
    meta: &VideoMetadata,
    cfg: &VideoProcessorConfig,
) -> Result<Vec<usize>> {
    let total = meta.total_num_frames;
    if total == 0 {
        return Err(Error::NoVideoFrames {
            path: PathBuf::new(),
            reason: "the video has no frames".into(),
        });
    }
    if !cfg.do_sample_frames {
        return Ok((0..total).collect());
    }
    let n = match (cfg.num_frames, cfg.fps) {
        (Some(_), Some(_)) => {
            return Err(Error::bad_config(
                "video_processor.num_frames",
                "and `fps` are mutually exclusive",
            ))
        }
        (Some(n), None) => n,
        (None, Some(fps)) => {
            // Python `int()` truncates.
            let n = (total as f64 / meta.fps_or_default() * fps) as usize;
            n.max(cfg.min_frames).min(cfg.max_frames).min(total)
        }
        (None, None) => total.max(cfg.min_frames).min(cfg.max_frames),
    };
    Ok(linspace_indices(total, n))
}

/// `Qwen3VLProcessor._calculate_timestamps`: pad the indices to a multiple of `group` with the last
/// one, then the mean time of each group's first and last frame, in seconds.
pub fn group_timestamps(indices: &[usize], fps: f64, group: usize) -> Vec<f64> {
    let mut idx = indices.to_vec();
    if let Some(&last) = idx.last() {
        while !idx.len().is_multiple_of(group) {
            idx.push(last);
        }
    }
    idx.chunks(group)
        .map(|g| (g[0] as f64 / fps + g[g.len() - 1] as f64 / fps) / 2.0)
        .collect()
}

/// The prompt text of one timestamp: Python's `f"<{t:.1f} seconds>"` (exact binary value, ties to
/// even; Rust's `{:.1}` formats the same way).
pub fn timestamp_text(seconds: f64) -> String {
    format!("<{seconds:.1} seconds>")
}

/// One processed video.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessedVideo {
    /// `[grid_t·grid_h·grid_w, C·T·P·P]` float32 rows.
    pub pixel_values: Vec<f32>,
    pub grid_thw: [usize; 3],
    /// Source frame indices that were sampled (before temporal padding).
    pub frame_indices: Vec<usize>,
    /// The source fps used for timestamps.
    pub fps: f64,
    /// One timestamp (seconds) per temporal group.
    pub timestamps: Vec<f64>,
    /// The size every frame was resized to, `(height, width)`.
    pub resized: (usize, usize),
}

/// Plan the resize of a video: the target size all sampled frames share.
pub fn video_target_size(
    num_sampled: usize,
    height: usize,
    width: usize,
    cfg: &VideoProcessorConfig,
) -> Result<(usize, usize)> {
    let factor = cfg.patch_size * cfg.merge_size;
    if !cfg.do_resize {
        return Ok((height, width));
    }
    let mut max_pixels = cfg.max_pixels;
    if cfg.cap_pixels_per_frame {
        // v5's optional qwen-vl-utils cap (spec §7.3).
        let frame_cap = cfg.max_video_tokens * factor * factor;
        let per_frame = frame_cap
            .min(cfg.max_pixels / num_sampled)
            .max((cfg.min_pixels as f64 * 1.05) as usize);
        max_pixels = per_frame * num_sampled;
    }
    smart_resize_video(
        num_sampled,
        height,
        width,
        cfg.temporal_patch_size,
        factor,
        cfg.min_pixels,
        max_pixels,
    )
}

/// Resize one decoded frame to the planned size (identity when already there).
pub fn resize_frame(frame: RgbImage, size: (usize, usize)) -> Result<RgbImage> {
    if (frame.height, frame.width) == size {
        Ok(frame)
    } else {
        resize_bicubic_aa(&frame, size.0, size.1)
    }
}

/// Builds a processed video one resized frame at a time: each temporal group is patchified as
/// soon as its frames are in, so at most one group of resized frames is held beside the output.
pub struct VideoAssembler<'c> {
    cfg: &'c VideoProcessorConfig,
    norm: [(f32, f32); 3],
    size: Option<(usize, usize)>,
    pending: Vec<RgbImage>,
    pixel_values: Vec<f32>,
    groups: usize,
}

impl<'c> VideoAssembler<'c> {
    /// `expected_frames` sizes the output buffer once (no reallocation spikes); 0 if unknown.
    pub fn new(
        cfg: &'c VideoProcessorConfig,
        expected_frames: usize,
        size: Option<(usize, usize)>,
    ) -> Self {
        let tp = cfg.temporal_patch_size;
        let capacity = size.map_or(0, |(h, w)| expected_frames.div_ceil(tp) * tp * h * w * 3);
        Self {
            cfg,
            norm: fused_mean_std(&cfg.image_mean, &cfg.image_std, cfg.rescale_factor),
            size,
            pending: Vec::with_capacity(tp),
            pixel_values: Vec::with_capacity(capacity),
            groups: 0,
        }
    }

    /// Add the next sampled frame (already resized).
    pub fn push(&mut self, frame: RgbImage) -> Result<()> {
        let (p, m) = (self.cfg.patch_size, self.cfg.merge_size);
        let dims = (frame.height, frame.width);
        match self.size {
            Some(s) if s != dims => {
                return Err(Error::bad_config(
                    "video frames",
                    "all frames of a video must have the same size",
                ))
            }
            _ => self.size = Some(dims),
        }
        if !dims.0.is_multiple_of(p * m) || !dims.1.is_multiple_of(p * m) {
            return Err(Error::bad_config(
                "video frames",
                format!(
                    "{}x{} is not a multiple of patch·merge = {}",
                    dims.1,
                    dims.0,
                    p * m
                ),
            ));
        }
        self.pending.push(frame);
        if self.pending.len() == self.cfg.temporal_patch_size {
            self.flush();
        }
        Ok(())
    }

    fn flush(&mut self) {
        let refs: Vec<&RgbImage> = self.pending.iter().collect();
        let c = self.cfg;
        patchify_into(
            &mut self.pixel_values,
            &refs,
            c.patch_size,
            c.merge_size,
            c.temporal_patch_size,
            &self.norm,
        );
        self.pending.clear();
        self.groups += 1;
    }

    /// Pad the last group by repeating its last frame, as transformers does, and finish.
    pub fn finish(mut self, frame_indices: Vec<usize>, fps: f64) -> Result<ProcessedVideo> {
        let Some(size) = self.size else {
            return Err(Error::NoVideoFrames {
                path: PathBuf::new(),
                reason: "no frames were decoded".into(),
            });
        };
        if let Some(last) = self.pending.last().cloned() {
            while self.pending.len() < self.cfg.temporal_patch_size {
                self.pending.push(last.clone());
            }
            self.flush();
        }
        let p = self.cfg.patch_size;
        let grid_thw = [self.groups, size.0 / p, size.1 / p];
        let timestamps = group_timestamps(&frame_indices, fps, self.cfg.temporal_patch_size);
        Ok(ProcessedVideo {
            pixel_values: self.pixel_values,
            grid_thw,
            frame_indices,
            fps,
            timestamps,
            resized: size,
        })
    }
}

/// Patchify already-resized sampled frames into one processed video.
pub fn finish_video(
    frames: Vec<RgbImage>,
    frame_indices: Vec<usize>,
    fps: f64,
    cfg: &VideoProcessorConfig,
) -> Result<ProcessedVideo> {
    let size = frames.first().map(|f| (f.height, f.width));
    let mut v = VideoAssembler::new(cfg, frames.len(), size);
    for f in frames {
        v.push(f)?;
    }
    v.finish(frame_indices, fps)
}

/// The frames sampled from a list of `n` frame files at `fps`: no file is read.
pub fn sample_frame_list(
    n: usize,
    fps: Option<f64>,
    cfg: &VideoProcessorConfig,
) -> Result<Vec<usize>> {
    // Size does not enter sampling.
    sample_frame_indices(&VideoMetadata::new(n, fps, 0, 0), cfg)
}

/// A video given as a list of image files (in order) with their frame rate. Only the sampled
/// frames are decoded.
pub fn process_frame_files(
    files: &[PathBuf],
    fps: Option<f64>,
    cfg: &VideoProcessorConfig,
) -> Result<ProcessedVideo> {
    let hooks = super::PrepareHooks::default();
    let n = sample_frame_list(files.len(), fps, cfg).map_or(0, |i| i.len());
    process_frame_files_with(files, fps, cfg, &mut FrameTicker::new(&hooks, n))
}

pub(crate) fn process_frame_files_with(
    files: &[PathBuf],
    fps: Option<f64>,
    cfg: &VideoProcessorConfig,
    ticker: &mut FrameTicker,
) -> Result<ProcessedVideo> {
    let Some(first) = files.first() else {
        return Err(Error::NoVideoFrames {
            path: PathBuf::new(),
            reason: "the frame list is empty".into(),
        });
    };
    ticker.check()?;
    let probe = load_image(first, AlphaMode::default(), DecodeLimits::default())?;
    let meta = VideoMetadata::new(files.len(), fps, probe.width, probe.height);
    let indices = sample_frame_indices(&meta, cfg)?;
    let size = video_target_size(indices.len(), meta.height, meta.width, cfg)?;
    let mut video = VideoAssembler::new(cfg, indices.len(), Some(size));
    for &i in &indices {
        ticker.check()?;
        let f = if i == 0 {
            probe.clone()
        } else {
            load_image(&files[i], AlphaMode::default(), DecodeLimits::default())?
        };
        if (f.height, f.width) != (meta.height, meta.width) {
            return Err(Error::bad_config(
                "video frames",
                format!(
                    "{} has a different size than the first frame",
                    files[i].display()
                ),
            ));
        }
        video.push(resize_frame(f, size)?)?;
        ticker.tick();
    }
    video.finish(indices, meta.fps_or_default())
}

/// The frame files of a folder, in file-name order.
pub fn list_frame_folder(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::BadFile {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::NoVideoFrames {
            path: dir.to_path_buf(),
            reason: "the folder holds no frame files".into(),
        });
    }
    Ok(files)
}

/// A video given as a folder of image files, taken in file-name order.
pub fn process_frame_folder(
    dir: &Path,
    fps: Option<f64>,
    cfg: &VideoProcessorConfig,
) -> Result<ProcessedVideo> {
    process_frame_files(&list_frame_folder(dir)?, fps, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VideoProcessorConfig {
        VideoProcessorConfig {
            min_pixels: 4096,
            max_pixels: 25165824,
            patch_size: 16,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            rescale_factor: 1.0 / 255.0,
            do_resize: true,
            fps: Some(2.0),
            num_frames: None,
            min_frames: 4,
            max_frames: 768,
            do_sample_frames: true,
            cap_pixels_per_frame: false,
            max_video_tokens: 768,
        }
    }

    fn meta(total: usize, fps: Option<f64>) -> VideoMetadata {
        VideoMetadata::new(total, fps, 64, 64)
    }

    #[test]
    fn sampling_table_of_spec() {
        // Spec §7.2.
        let c = cfg();
        let s = |t, f| sample_frame_indices(&meta(t, f), &c).unwrap();
        assert_eq!(
            s(300, Some(30.0)),
            [
                0, 16, 31, 47, 63, 79, 94, 110, 126, 142, 157, 173, 189, 205, 220, 236, 252, 268,
                283, 299
            ]
        );
        assert_eq!(s(45, Some(30.0)), [0, 15, 29, 44]);
        assert_eq!(s(61, Some(29.97)), [0, 20, 40, 60]);
        assert_eq!(s(10, Some(24.0)), [0, 3, 6, 9]);
        assert_eq!(s(10, None), [0, 3, 6, 9]);
        assert_eq!(s(3, Some(30.0)), [0, 1, 2]);
        assert_eq!(s(7, Some(2.8)), [0, 2, 3, 4, 6]);
        let long = s(1000, Some(25.0));
        assert_eq!(long.len(), 80);
        assert_eq!(&long[..4], &[0, 13, 25, 38]);
        assert_eq!(&long[77..], &[974, 986, 999]);
        let max = s(5000, Some(1.0));
        assert_eq!(max.len(), 768);
        assert_eq!(&max[..4], &[0, 7, 13, 20]);
        assert_eq!(&max[766..], &[4992, 4999]);
        let mut six = cfg();
        six.fps = None;
        six.num_frames = Some(6);
        assert_eq!(
            sample_frame_indices(&meta(100, Some(30.0)), &six).unwrap(),
            [0, 20, 40, 59, 79, 99]
        );
    }

    #[test]
    fn timestamps_of_spec() {
        let c = cfg();
        let idx = sample_frame_indices(&meta(300, Some(30.0)), &c).unwrap();
        let text: Vec<String> = group_timestamps(&idx, 30.0, 2)
            .into_iter()
            .map(timestamp_text)
            .collect();
        assert_eq!(
            text,
            [
                "<0.3 seconds>",
                "<1.3 seconds>",
                "<2.4 seconds>",
                "<3.4 seconds>",
                "<4.5 seconds>",
                "<5.5 seconds>",
                "<6.6 seconds>",
                "<7.6 seconds>",
                "<8.7 seconds>",
                "<9.7 seconds>"
            ]
        );
        let odd: Vec<String> = group_timestamps(&[0, 2, 3, 4, 6], 2.8, 2)
            .into_iter()
            .map(timestamp_text)
            .collect();
        assert_eq!(odd, ["<0.4 seconds>", "<1.2 seconds>", "<2.1 seconds>"]);
        let nine: Vec<String> = group_timestamps(&(0..9).collect::<Vec<_>>(), 4.0, 2)
            .into_iter()
            .map(timestamp_text)
            .collect();
        assert_eq!(
            nine,
            [
                "<0.1 seconds>",
                "<0.6 seconds>",
                "<1.1 seconds>",
                "<1.6 seconds>",
                "<2.0 seconds>"
            ]
        );
    }

    #[test]
    fn python_number_format() {
        for (v, s) in [
            (0.25, "0.2"),
            (1.25, "1.2"),
            (0.35, "0.3"),
            (0.05, "0.1"),
            (2.3666666, "2.4"),
        ] {
            assert_eq!(timestamp_text(v), format!("<{s} seconds>"));
        }
    }

    #[test]
    fn odd_frame_count_pads_last_frame() {
        let c = cfg();
        let frames: Vec<RgbImage> = (0..3)
            .map(|i| RgbImage::new(32, 32, vec![i * 50; 32 * 32 * 3]).unwrap())
            .collect();
        let v = finish_video(frames, vec![0, 1, 2], 1.0, &c).unwrap();
        assert_eq!(v.grid_thw, [2, 2, 2]);
        // Second group, second frame slot repeats frame 2: channel 0, t 1 of the first row.
        let row = &v.pixel_values[4 * 1536..5 * 1536];
        let want = (100.0f32 - 127.5) / 127.5;
        assert_eq!(row[256], want);
        assert_eq!(row[0], want);
        assert_eq!(v.timestamps, vec![0.5, 2.0]);
    }
}
