//! Pre-processing parameters from either file dialect (spec §1.5): the `image_processor` and
//! `video_processor` sections of a transformers-5 `processor_config.json`, or the Hub's
//! `preprocessor_config.json` + `video_preprocessor_config.json`.

use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// `size` as transformers writes it for the Qwen processors: a pixel budget, not an edge length.
#[derive(Debug, Deserialize, Default)]
struct RawSize {
    shortest_edge: Option<usize>,
    longest_edge: Option<usize>,
}

/// The keys both processors share, as they appear in the JSON.
#[derive(Debug, Deserialize, Default)]
struct RawProcessor {
    size: Option<RawSize>,
    min_pixels: Option<usize>,
    max_pixels: Option<usize>,
    patch_size: Option<usize>,
    temporal_patch_size: Option<usize>,
    merge_size: Option<usize>,
    image_mean: Option<Vec<f64>>,
    image_std: Option<Vec<f64>>,
    rescale_factor: Option<f64>,
    do_resize: Option<bool>,
    do_rescale: Option<bool>,
    do_normalize: Option<bool>,
    resample: Option<i64>,
    // Video only.
    fps: Option<f64>,
    num_frames: Option<usize>,
    min_frames: Option<usize>,
    max_frames: Option<usize>,
    do_sample_frames: Option<bool>,
    cap_pixels_per_frame: Option<bool>,
    max_video_tokens: Option<usize>,
}

/// Resolved image-processor settings (`Qwen2VLImageProcessor`). `min_pixels`/`max_pixels` are the
/// user-settable token budget; they default to the checkpoint's `size`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessorConfig {
    pub min_pixels: usize,
    pub max_pixels: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    pub rescale_factor: f64,
    pub do_resize: bool,
}

/// Resolved video-processor settings (`Qwen3VLVideoProcessor`). `min_pixels`/`max_pixels` budget
/// all sampled frames together (T·H·W).
#[derive(Clone, Debug, PartialEq)]
pub struct VideoProcessorConfig {
    pub min_pixels: usize,
    pub max_pixels: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    pub rescale_factor: f64,
    pub do_resize: bool,
    /// Frames sampled per second of video; `None` when the checkpoint sets `fps: null`.
    pub fps: Option<f64>,
    /// A fixed number of frames instead of `fps` (mutually exclusive with it in transformers).
    pub num_frames: Option<usize>,
    pub min_frames: usize,
    pub max_frames: usize,
    pub do_sample_frames: bool,
    /// v5's optional per-frame cap (spec §7.3); `None`/`false` keep the uncapped 5.24 default.
    pub cap_pixels_per_frame: bool,
    pub max_video_tokens: usize,
}

/// Both processor configurations of a checkpoint directory.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessorConfig {
    pub image: ImageProcessorConfig,
    pub video: VideoProcessorConfig,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn parse_section(value: serde_json::Value, key: &str) -> Result<RawProcessor> {
    serde_json::from_value(value).map_err(|e| Error::bad_config(key, e.to_string()))
}

fn triple(v: Option<Vec<f64>>, default: [f64; 3], key: &str) -> Result<[f64; 3]> {
    match v {
        None => Ok(default),
        Some(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
        Some(v) if v.len() == 1 => Ok([v[0]; 3]),
        Some(v) => Err(Error::bad_config(
            key,
            format!("has {} values, expected 3", v.len()),
        )),
    }
}

/// Settings shared by both processors, validated.
struct Common {
    min_pixels: usize,
    max_pixels: usize,
    patch_size: usize,
    temporal_patch_size: usize,
    merge_size: usize,
    image_mean: [f64; 3],
    image_std: [f64; 3],
    rescale_factor: f64,
    do_resize: bool,
}

/// Class defaults of the transformers processor a section belongs to; used only for keys the
/// JSON omits, exactly as transformers does.
struct Defaults {
    min_pixels: usize,
    max_pixels: usize,
    mean: [f64; 3],
    std: [f64; 3],
}

fn common(raw: &mut RawProcessor, section: &str, d: Defaults) -> Result<Common> {
    let key = |k: &str| format!("{section}.{k}");
    let size = raw.size.take().unwrap_or_default();
    // `min_pixels`/`max_pixels` override `size` (Qwen2VLImageProcessor.__init__).
    let min_pixels = raw
        .min_pixels
        .or(size.shortest_edge)
        .unwrap_or(d.min_pixels);
    let max_pixels = raw.max_pixels.or(size.longest_edge).unwrap_or(d.max_pixels);
    let need = |v: Option<usize>, k: &str| {
        v.ok_or_else(|| Error::bad_config(key(k), "is missing"))
            .and_then(|v| {
                if v == 0 {
                    Err(Error::bad_config(key(k), "must be positive"))
                } else {
                    Ok(v)
                }
            })
    };
    let patch_size = need(raw.patch_size, "patch_size")?;
    let temporal_patch_size = need(raw.temporal_patch_size, "temporal_patch_size")?;
    let merge_size = need(raw.merge_size, "merge_size")?;
    if min_pixels > max_pixels {
        return Err(Error::bad_config(
            key("size"),
            format!("shortest_edge {min_pixels} exceeds longest_edge {max_pixels}"),
        ));
    }
    if let Some(r) = raw.resample {
        if r != 3 {
            return Err(Error::bad_config(
                key("resample"),
                format!("is {r}; only 3 (bicubic) is implemented"),
            ));
        }
    }
    // Only the fused rescale+normalise path is implemented bit-exactly; refuse the rest.
    for (flag, name) in [
        (raw.do_rescale, "do_rescale"),
        (raw.do_normalize, "do_normalize"),
    ] {
        if flag == Some(false) {
            return Err(Error::bad_config(key(name), "false is not supported"));
        }
    }
    Ok(Common {
        min_pixels,
        max_pixels,
        patch_size,
        temporal_patch_size,
        merge_size,
        image_mean: triple(raw.image_mean.take(), d.mean, &key("image_mean"))?,
        image_std: triple(raw.image_std.take(), d.std, &key("image_std"))?,
        rescale_factor: raw.rescale_factor.unwrap_or(1.0 / 255.0),
        do_resize: raw.do_resize.unwrap_or(true),
    })
}

impl ImageProcessorConfig {
    fn from_raw(mut raw: RawProcessor, section: &str) -> Result<Self> {
        // Qwen2VLImageProcessor class defaults (OPENAI CLIP mean/std, 56²…28²·1280).
        let c = common(
            &mut raw,
            section,
            Defaults {
                min_pixels: 56 * 56,
                max_pixels: 28 * 28 * 1280,
                mean: [0.48145466, 0.4578275, 0.40821073],
                std: [0.26862954, 0.26130258, 0.27577711],
            },
        )?;
        Ok(Self {
            min_pixels: c.min_pixels,
            max_pixels: c.max_pixels,
            patch_size: c.patch_size,
            temporal_patch_size: c.temporal_patch_size,
            merge_size: c.merge_size,
            image_mean: c.image_mean,
            image_std: c.image_std,
            rescale_factor: c.rescale_factor,
            do_resize: c.do_resize,
        })
    }
}

impl VideoProcessorConfig {
    fn from_raw(mut raw: RawProcessor, section: &str, fps_explicit_null: bool) -> Result<Self> {
        // Qwen3VLVideoProcessor class defaults (spec §7.1).
        let c = common(
            &mut raw,
            section,
            Defaults {
                min_pixels: 128 * 32 * 32,
                max_pixels: 32 * 32 * 768,
                mean: [0.5; 3],
                std: [0.5; 3],
            },
        )?;
        let fps = if fps_explicit_null {
            None
        } else {
            Some(raw.fps.unwrap_or(2.0))
        };
        Ok(Self {
            min_pixels: c.min_pixels,
            max_pixels: c.max_pixels,
            patch_size: c.patch_size,
            temporal_patch_size: c.temporal_patch_size,
            merge_size: c.merge_size,
            image_mean: c.image_mean,
            image_std: c.image_std,
            rescale_factor: c.rescale_factor,
            do_resize: c.do_resize,
            fps,
            num_frames: raw.num_frames,
            min_frames: raw.min_frames.unwrap_or(4),
            max_frames: raw.max_frames.unwrap_or(768),
            do_sample_frames: raw.do_sample_frames.unwrap_or(true),
            cap_pixels_per_frame: raw.cap_pixels_per_frame.unwrap_or(false),
            max_video_tokens: raw.max_video_tokens.unwrap_or(768),
        })
    }
}

fn fps_is_null(v: &serde_json::Value) -> bool {
    v.get("fps").is_some_and(|f| f.is_null())
}

impl ProcessorConfig {
    /// Read the processor configuration of a checkpoint directory: `processor_config.json` if it
    /// exists (transformers 5), else `preprocessor_config.json` + `video_preprocessor_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let v5 = dir.join("processor_config.json");
        if v5.is_file() {
            let mut root = read_json(&v5)?;
            let mut section = |name: &str| {
                root.get_mut(name)
                    .map(serde_json::Value::take)
                    .ok_or_else(|| {
                        Error::bad_config(name, format!("section missing in {}", v5.display()))
                    })
            };
            let image = section("image_processor")?;
            let video = section("video_processor")?;
            let null_fps = fps_is_null(&video);
            return Ok(Self {
                image: ImageProcessorConfig::from_raw(
                    parse_section(image, "image_processor")?,
                    "image_processor",
                )?,
                video: VideoProcessorConfig::from_raw(
                    parse_section(video, "video_processor")?,
                    "video_processor",
                    null_fps,
                )?,
            });
        }
        let image_path = dir.join("preprocessor_config.json");
        if !image_path.is_file() {
            return Err(Error::MissingFile {
                path: image_path,
                reason: "the model folder has neither processor_config.json nor preprocessor_config.json"
                    .into(),
            });
        }
        let image = read_json(&image_path)?;
        // Older checkpoints keep the video keys in the image file; transformers then builds the
        // video processor from it.
        let video_path = dir.join("video_preprocessor_config.json");
        let video = if video_path.is_file() {
            read_json(&video_path)?
        } else {
            image.clone()
        };
        let null_fps = fps_is_null(&video);
        Ok(Self {
            image: ImageProcessorConfig::from_raw(
                parse_section(image, "preprocessor_config")?,
                "preprocessor_config",
            )?,
            video: VideoProcessorConfig::from_raw(
                parse_section(video, "video_preprocessor_config")?,
                "video_preprocessor_config",
                null_fps,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("glimpse-proc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const IMG: &str = r#"{"size": {"shortest_edge": 65536, "longest_edge": 16777216}, "patch_size": 16,
        "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5,0.5,0.5], "image_std": [0.5,0.5,0.5],
        "image_processor_type": "Qwen2VLImageProcessorFast"}"#;
    const VID: &str = r#"{"size": {"shortest_edge": 4096, "longest_edge": 25165824}, "patch_size": 16,
        "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5,0.5,0.5], "image_std": [0.5,0.5,0.5],
        "fps": 2, "min_frames": 4, "max_frames": 768}"#;

    #[test]
    fn both_dialects_agree() {
        let hub = tmp("hub");
        write(&hub, "preprocessor_config.json", IMG);
        write(&hub, "video_preprocessor_config.json", VID);
        let v5 = tmp("v5");
        write(
            &v5,
            "processor_config.json",
            &format!(
                r#"{{"image_processor": {IMG}, "video_processor": {VID}, "processor_class": "Qwen3VLProcessor"}}"#
            ),
        );
        let a = ProcessorConfig::from_dir(&hub).unwrap();
        let b = ProcessorConfig::from_dir(&v5).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.image.min_pixels, a.image.max_pixels), (65536, 16777216));
        assert_eq!((a.video.min_pixels, a.video.max_pixels), (4096, 25165824));
        assert_eq!(a.video.fps, Some(2.0));
    }

    #[test]
    fn missing_files_and_keys_are_errors() {
        let empty = tmp("empty");
        assert!(matches!(
            ProcessorConfig::from_dir(&empty),
            Err(Error::MissingFile { .. })
        ));
        let bad = tmp("bad");
        write(&bad, "preprocessor_config.json", r#"{"patch_size": 16}"#);
        let err = ProcessorConfig::from_dir(&bad).unwrap_err().to_string();
        assert!(err.contains("temporal_patch_size"), "{err}");
    }

    #[test]
    fn min_max_pixels_override_size() {
        let d = tmp("override");
        write(
            &d,
            "preprocessor_config.json",
            r#"{"size": {"shortest_edge": 65536, "longest_edge": 16777216}, "min_pixels": 1024,
                "max_pixels": 4096, "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2}"#,
        );
        let c = ProcessorConfig::from_dir(&d).unwrap();
        assert_eq!((c.image.min_pixels, c.image.max_pixels), (1024, 4096));
    }
}
