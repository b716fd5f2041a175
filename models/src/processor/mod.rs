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

use std::path::{Path, PathBuf};

use serde_json::json;
use tokenizers::Tokenizer;

pub use config::{ImageProcessorConfig, ProcessorConfig, VideoProcessorConfig};
pub use image::{load_image, preprocess_images, AlphaMode, DecodeLimits, ImageBatch};
pub use prompt::VisionTokens;
pub use resize::RgbImage;
pub use template::{ChatTemplate, RenderOptions};
pub use video::{ProcessedVideo, VideoMetadata};

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
    /// Any container/codec FFmpeg reads (needs the `video` feature).
    File(PathBuf),
    /// A folder of frame images in file-name order, at `fps` (24 assumed when `None`).
    Folder { dir: PathBuf, fps: Option<f64> },
    /// A list of frame images in order, at `fps`.
    Frames {
        files: Vec<PathBuf>,
        fps: Option<f64>,
    },
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

    pub fn process_video(&self, input: &VideoInput) -> Result<ProcessedVideo> {
        let cfg = &self.config.video;
        match input {
            VideoInput::Folder { dir, fps } => video::process_frame_folder(dir, *fps, cfg),
            VideoInput::Frames { files, fps } => video::process_frame_files(files, *fps, cfg),
            #[cfg(feature = "video")]
            VideoInput::File(p) => decode::process_video_file(p, cfg),
            #[cfg(not(feature = "video"))]
            VideoInput::File(_) => Err(Error::VideoUnsupported),
        }
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
        let mut images = Vec::new();
        let mut videos = Vec::new();
        for m in messages {
            for c in &m.content {
                match c {
                    Content::Image(i) => images.push(self.load_image(i)?),
                    Content::Video(v) => videos.push(self.process_video(v)?),
                    Content::Text(_) => {}
                }
            }
        }
        let images = self.process_images(&images)?;
        let rendered = self.render(messages, opts)?;
        let (text, input_ids) = self.expand_and_encode(&rendered, &images, &videos)?;
        Ok(ProcessedInputs {
            text,
            input_ids,
            images,
            videos,
        })
    }
}
