//! From files on disk to model inputs, as transformers' `Qwen3VLProcessor` does it: images and
//! videos to `pixel_values`/`grid_thw` (spec §6, §7), the checkpoint's chat template rendered and its
//! vision placeholders expanded, then tokenized (spec §8).
//!
//! Contract: `Processor::from_dir` fails with a named error when a file is missing or malformed;
//! `Processor::process` never panics on bad media, it returns `ImageDecode`, `ImageTooLarge`,
//! `VideoDecode`, `NoVideoFrames` or `TokenCountMismatch`. A `Processor` is immutable and `Sync`.

pub mod config;
#[cfg(feature = "video")]
pub mod decode;
pub mod image;
mod jpeg;
pub mod prompt;
pub mod resize;
pub mod template;
pub mod video;
pub mod video_plan;

use std::path::{Path, PathBuf};

use serde_json::json;
use tokenizers::Tokenizer;

pub use config::{ImageProcessorConfig, ProcessorConfig, VideoProcessorConfig};
#[cfg(feature = "video")]
pub use decode::{frame_at, probe_video};
pub use image::{load_image, preprocess_images, AlphaMode, DecodeLimits, ImageBatch};
pub use prompt::VisionTokens;
pub use resize::RgbImage;
pub use template::{ChatTemplate, RenderOptions};
pub use video::{ProcessedVideo, VideoMetadata};
pub use video_plan::{PrepareHooks, VideoOptions, VideoPlan, VideoProgress};

use crate::{Error, Result};

/// An image in a message.
#[derive(Clone, Debug)]
pub enum ImageInput {
    File(PathBuf),
    /// Already decoded (e.g. pasted from the clipboard).
    Rgb(RgbImage),
}

/// A video in a message.
#[derive(Clone, Debug)]
pub enum VideoInput {
    /// Any container/codec FFmpeg reads (needs the `video` feature), sampled with `options`.
    File {
        path: PathBuf,
        options: VideoOptions,
    },
    /// A folder of frame images in file-name order, at `fps` (24 assumed when `None`).
    Folder { dir: PathBuf, fps: Option<f64> },
    /// A list of frame images in order, at `fps`.
    Frames {
        files: Vec<PathBuf>,
        fps: Option<f64>,
    },
}

impl VideoInput {
    /// A whole video file sampled with the checkpoint's settings.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::File {
            path: path.into(),
            options: VideoOptions::default(),
        }
    }
}

/// A video ready to extract: planned (file) or listed (frames), so the frame total of a whole
/// conversation is known before the first frame is decoded.
enum VideoJob<'a> {
    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    File {
        path: &'a Path,
        plan: Box<VideoPlan>,
        cfg: Box<VideoProcessorConfig>,
    },
    Frames {
        files: std::borrow::Cow<'a, [PathBuf]>,
        fps: Option<f64>,
        sampled: usize,
    },
}

impl VideoJob<'_> {
    fn sampled(&self) -> usize {
        match self {
            VideoJob::File { plan, .. } => plan.frame_indices.len(),
            VideoJob::Frames { sampled, .. } => *sampled,
        }
    }
}

/// One content item of a message.
#[derive(Clone, Debug)]
pub enum Content {
    Text(String),
    Image(ImageInput),
    Video(VideoInput),
}

/// A chat message: `role` is `system`, `user` or `assistant`.
#[derive(Clone, Debug)]
pub struct Message {
    pub role: String,
    pub content: Vec<Content>,
}

impl Message {
    pub fn new(role: impl Into<String>, content: Vec<Content>) -> Self {
        Self {
            role: role.into(),
            content,
        }
    }

    pub fn text(role: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(role, vec![Content::Text(text.into())])
    }
}

/// Model inputs for one prompt.
#[derive(Clone, Debug)]
pub struct ProcessedInputs {
    /// The prompt after placeholder expansion (what was tokenized).
    pub text: String,
    pub input_ids: Vec<u32>,
    pub images: ImageBatch,
    pub videos: Vec<ProcessedVideo>,
}

impl ProcessedInputs {
    pub fn image_grid_thw(&self) -> &[[usize; 3]] {
        &self.images.grid_thw
    }

    pub fn video_grid_thw(&self) -> Vec<[usize; 3]> {
        self.videos.iter().map(|v| v.grid_thw).collect()
    }

    /// `pixel_values_videos`: the rows of all videos, concatenated in order.
    pub fn pixel_values_videos(&self) -> Vec<f32> {
        self.videos
            .iter()
            .flat_map(|v| v.pixel_values.iter().copied())
            .collect()
    }
}

/// A checkpoint's processor: pre-processing settings, chat template and tokenizer.
pub struct Processor {
    pub config: ProcessorConfig,
    pub template: ChatTemplate,
    pub tokens: VisionTokens,
    pub tokenizer: Tokenizer,
    /// How transparent images become RGB.
    pub alpha: AlphaMode,
    /// Decoder limits for huge images.
    pub limits: DecodeLimits,
}

impl Processor {
    /// Load everything from a checkpoint directory (both file dialects, spec §1.5).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config = ProcessorConfig::from_dir(dir)?;
        let tokenizer = prompt::load_tokenizer(dir)?;
        let tokens = VisionTokens::resolve(dir, &tokenizer)?;
        let template = ChatTemplate::from_dir(dir)?;
        Ok(Self {
            config,
            template,
            tokens,
            tokenizer,
            alpha: AlphaMode::default(),
            limits: DecodeLimits::default(),
        })
    }

    /// Override the image token budget (pixels per image after resizing).
    pub fn set_image_pixel_budget(&mut self, min_pixels: usize, max_pixels: usize) -> Result<()> {
        if min_pixels > max_pixels || max_pixels == 0 {
            return Err(Error::bad_config(
                "image pixel budget",
                format!("min {min_pixels} must be at most max {max_pixels}, and max positive"),
            ));
        }
        self.config.image.min_pixels = min_pixels;
        self.config.image.max_pixels = max_pixels;
        Ok(())
    }

    /// Messages in transformers' JSON form, media items as `{"type": "image"}` / `{"type": "video"}`.
    pub fn messages_json(messages: &[Message]) -> serde_json::Value {
        let items = messages
            .iter()
            .map(|m| {
                let content: Vec<serde_json::Value> = m
                    .content
                    .iter()
                    .map(|c| match c {
                        Content::Text(t) => json!({"type": "text", "text": t}),
                        Content::Image(_) => json!({"type": "image"}),
                        Content::Video(_) => json!({"type": "video"}),
                    })
                    .collect();
                json!({"role": m.role, "content": content})
            })
            .collect();
        serde_json::Value::Array(items)
    }

    /// Render the chat template (no expansion).
    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String> {
        self.template.render(&Self::messages_json(messages), opts)
    }

    pub fn load_image(&self, input: &ImageInput) -> Result<RgbImage> {
        match input {
            ImageInput::File(p) => load_image(p, self.alpha, self.limits),
            ImageInput::Rgb(img) => Ok(img.clone()),
        }
    }

    /// What a video file will cost and which frames it gives, from its header alone (no pixel is
    /// decoded). `prepare` with the same options produces exactly this plan's frames and grid.
    pub fn plan_video(&self, path: &Path, options: &VideoOptions) -> Result<VideoPlan> {
        #[cfg(feature = "video")]
        {
            decode::plan_video_file(path, options, &self.config.video)
        }
        #[cfg(not(feature = "video"))]
        {
            let _ = (path, options);
            Err(Error::VideoUnsupported)
        }
    }

    fn video_job<'a>(&self, input: &'a VideoInput) -> Result<VideoJob<'a>> {
        let cfg = &self.config.video;
        let frames = |files: std::borrow::Cow<'a, [PathBuf]>, fps: Option<f64>| {
            let sampled = match files.is_empty() {
                true => 0,
                false => video::sample_frame_list(files.len(), fps, cfg)?.len(),
            };
            Ok(VideoJob::Frames {
                files,
                fps,
                sampled,
            })
        };
        match input {
            VideoInput::File { path, options } => Ok(VideoJob::File {
                path,
                plan: Box::new(self.plan_video(path, options)?),
                cfg: Box::new(options.apply(cfg)?),
            }),
            VideoInput::Folder { dir, fps } => frames(video::list_frame_folder(dir)?.into(), *fps),
            VideoInput::Frames { files, fps } => frames(files.as_slice().into(), *fps),
        }
    }

    fn run_video_job(
        &self,
        job: &VideoJob,
        ticker: &mut video_plan::FrameTicker,
    ) -> Result<ProcessedVideo> {
        match job {
            #[cfg(feature = "video")]
            VideoJob::File { path, plan, cfg } => decode::extract_planned(path, plan, cfg, ticker),
            #[cfg(not(feature = "video"))]
            VideoJob::File { .. } => Err(Error::VideoUnsupported),
            VideoJob::Frames { files, fps, .. } => {
                video::process_frame_files_with(files, *fps, &self.config.video, ticker)
            }
        }
    }

    /// Plan all videos, then extract them with one progress count over all their frames.
    fn process_videos(
        &self,
        inputs: &[&VideoInput],
        hooks: &PrepareHooks,
    ) -> Result<Vec<ProcessedVideo>> {
        let jobs = inputs
            .iter()
            .map(|v| self.video_job(v))
            .collect::<Result<Vec<_>>>()?;
        let total = jobs.iter().map(VideoJob::sampled).sum();
        let mut ticker = video_plan::FrameTicker::new(hooks, total);
        jobs.iter()
            .map(|job| self.run_video_job(job, &mut ticker))
            .collect()
    }

    pub fn process_video(&self, input: &VideoInput) -> Result<ProcessedVideo> {
        self.process_video_with(input, &PrepareHooks::default())
    }

    /// One video, with progress and cancellation.
    pub fn process_video_with(
        &self,
        input: &VideoInput,
        hooks: &PrepareHooks,
    ) -> Result<ProcessedVideo> {
        let mut v = self.process_videos(&[input], hooks)?;
        Ok(v.remove(0))
    }

    /// Images of all messages, in order.
    pub fn process_images(&self, images: &[RgbImage]) -> Result<ImageBatch> {
        preprocess_images(images, &self.config.image)
    }

    /// Expand placeholders of an already rendered prompt and tokenize it.
    pub fn expand_and_encode(
        &self,
        rendered: &str,
        images: &ImageBatch,
        videos: &[ProcessedVideo],
    ) -> Result<(String, Vec<u32>)> {
        let text = prompt::expand_placeholders(
            rendered,
            &self.tokens,
            &images.grid_thw,
            self.config.image.merge_size,
            videos,
            self.config.video.merge_size,
        )?;
        let ids = self.encode(&text)?;
        Ok((text, ids))
    }

    /// Tokenize text with the checkpoint's tokenizer.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        prompt::encode(
            &self.tokenizer,
            text,
            self.template.special_token("bos_token"),
        )
    }

    /// Everything: load and preprocess the media of `messages` in order, render the template,
    /// expand the placeholders and tokenize.
    pub fn process(&self, messages: &[Message], opts: &RenderOptions) -> Result<ProcessedInputs> {
        self.process_with(messages, opts, &PrepareHooks::default())
    }

    /// [`Processor::process`] with progress over the video frames and cancellation.
    pub fn process_with(
        &self,
        messages: &[Message],
        opts: &RenderOptions,
        hooks: &PrepareHooks,
    ) -> Result<ProcessedInputs> {
        let mut images = Vec::new();
        let mut videos = Vec::new();
        for m in messages {
            for c in &m.content {
                match c {
                    Content::Image(i) => images.push(self.load_image(i)?),
                    Content::Video(v) => videos.push(v),
                    Content::Text(_) => {}
                }
            }
        }
        let images = self.process_images(&images)?;
        // Render before the (slow) video extraction so a template error costs nothing.
        let rendered = self.render(messages, opts)?;
        let videos = self.process_videos(&videos, hooks)?;
        let (text, input_ids) = self.expand_and_encode(&rendered, &images, &videos)?;
        Ok(ProcessedInputs {
            text,
            input_ids,
            images,
            videos,
        })
    }
}
