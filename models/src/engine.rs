//! The engine's public face: load a checkpoint, prepare a conversation, stream an answer.
//!
//! ```text
//! Engine::load(dir, options)        config, processor (tokenizer, template), weights
//!   .prepare(messages, options)     media → pixel values, prompt → ids, ids → 3-row positions
//!   .generate(prepared, params, …)  prefill + decode loop, one event per token
//!   .generate_with(…, on_progress, …) the same, telling each vision block / decoder layer
//! ```
//! Contract: `load` and `prepare` fail with a named [`Error`] on any bad file or input and
//! never panic; `generate` can be cancelled from another thread through a [`CancelToken`] and
//! stops within one token. An `Engine` holds one sequence's KV cache, so it generates one
//! answer at a time (`&mut self`); callers that share it put it behind a mutex.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};

use crate::generation::{
    self, CancelToken, Decode, GenerationConfig, GenerationStats, LanguageModel, Overrides,
    PrefillHooks, PrefillProgress, SamplingParams, StreamEvent,
};
use crate::processor::{Message, PrepareHooks, ProcessedInputs, Processor, RenderOptions};
use crate::qwen3_vl::model::{LogitsFor, Prompt, Qwen3VLModel, VisualInput};
use crate::qwen3_vl::rope_index::{get_rope_index, RopeIndex, VisionTokenIds};
use crate::qwen3_vl::text::NoProbe;
use crate::qwen3_vl::Config;
use crate::{Error, Result};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda,
    Metal,
}

impl std::str::FromStr for DeviceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "metal" => Ok(Self::Metal),
            other => Err(Error::bad_config(
                "device",
                format!("`{other}` is not one of cpu, cuda, metal"),
            )),
        }
    }
}

impl DeviceKind {
    /// Opens the device; a back end this build lacks is a clear error, not a panic.
    pub fn open(self) -> Result<Device> {
        let unavailable = |name: &str, feature: &str, e: candle_core::Error| {
            Error::bad_config(
                "device",
                format!("{name} is not available ({e}); build with `--features {feature}` on a machine that has it"),
            )
        };
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda => Device::new_cuda(0).map_err(|e| unavailable("CUDA", "cuda", e)),
            Self::Metal => Device::new_metal(0).map_err(|e| unavailable("Metal", "metal", e)),
        }
    }
}

/// Parses `f32`, `bf16` or `f16`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        other => Err(Error::bad_config(
            "dtype",
            format!("`{other}` is not one of f32, bf16, f16"),
        )),
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: DeviceKind,
    pub dtype: DType,
    /// Quantize the text decoder's linear layers at load (the vision tower keeps `dtype`).
    pub quant: crate::qwen3_vl::Quant,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: DeviceKind::Cpu,
            dtype: DType::F32,
            quant: crate::qwen3_vl::Quant::None,
        }
    }
}

/// A prompt ready for the model: ids, pixels and positions.
pub struct Prepared {
    pub inputs: ProcessedInputs,
    pub positions: RopeIndex,
    pixel_values: Option<Tensor>,
    pixel_values_videos: Option<Tensor>,
    video_grid_thw: Vec<[usize; 3]>,
    /// Whether the rendered prompt ends inside an open `<think>` block (Thinking templates).
    pub think_open: bool,
}

impl Prepared {
    pub fn input_ids(&self) -> &[u32] {
        &self.inputs.input_ids
    }
    pub fn pixel_values(&self) -> Option<&Tensor> {
        self.pixel_values.as_ref()
    }
    pub fn pixel_values_videos(&self) -> Option<&Tensor> {
        self.pixel_values_videos.as_ref()
    }
    pub fn image_grid_thw(&self) -> &[[usize; 3]] {
        self.inputs.image_grid_thw()
    }
    pub fn video_grid_thw(&self) -> &[[usize; 3]] {
        &self.video_grid_thw
    }
}

/// The steps of [`Engine::load_with`], in order. Building the model (reading every tensor and
/// converting it to the chosen dtype) is the long one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStage {
    ReadingConfig,
    ReadingProcessor,
    OpeningDevice,
    MappingWeights,
    BuildingModel,
}

pub struct Engine {
    dir: PathBuf,
    pub config: Config,
    pub processor: Processor,
    pub generation_config: GenerationConfig,
    model: Qwen3VLModel,
}

impl Engine {
    /// Loads everything from a checkpoint folder. The processor files are read first, so a
    /// missing tokenizer or template fails before gigabytes of weights are mapped.
    pub fn load(dir: &Path, options: &LoadOptions) -> Result<Self> {
        Self::load_with(dir, options, &mut |_| {})
    }

    /// [`Engine::load`], telling `on_stage` as each step begins (for a progress display).
    pub fn load_with(
        dir: &Path,
        options: &LoadOptions,
        on_stage: &mut dyn FnMut(LoadStage),
    ) -> Result<Self> {
        on_stage(LoadStage::ReadingConfig);
        let config = Config::from_dir(dir)?;
        on_stage(LoadStage::ReadingProcessor);
        let processor = Processor::from_dir(dir)?;
        let generation_config = GenerationConfig::from_dir(dir)?;
        on_stage(LoadStage::OpeningDevice);
        let device = options.device.open()?;
        on_stage(LoadStage::MappingWeights);
        let vb = crate::qwen3_vl::weights::open_var_builder(dir, options.dtype, &device)?;
        on_stage(LoadStage::BuildingModel);
        let model = Qwen3VLModel::new_with(&config, options.quant, vb)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            processor,
            generation_config,
            model,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// The longest sequence (prompt plus answer) the model was configured for.
    pub fn context_length(&self) -> usize {
        self.config.text.max_position_embeddings
    }

    /// Media → pixels, conversation → ids, ids → positions. Fails if the prompt alone does
    /// not fit the model's context.
    pub fn prepare(&self, messages: &[Message], options: &RenderOptions) -> Result<Prepared> {
        self.prepare_with(messages, options, &PrepareHooks::default())
    }

    /// [`Engine::prepare`] reporting video frame extraction through `hooks.progress` and
    /// stopping with [`Error::Cancelled`] when `hooks.cancel` is set.
    pub fn prepare_with(
        &self,
        messages: &[Message],
        options: &RenderOptions,
        hooks: &PrepareHooks,
    ) -> Result<Prepared> {
        let inputs = self.processor.process_with(messages, options, hooks)?;
        let n = inputs.input_ids.len();
        if n >= self.context_length() {
            return Err(Error::ContextTooLong {
                tokens: n,
                limit: self.context_length(),
            });
        }
        let ids = VisionTokenIds::from_config(&self.config);
        let video_grid_thw = inputs.video_grid_thw();
        let positions = get_rope_index(
            &inputs.input_ids,
            inputs.image_grid_thw(),
            &video_grid_thw,
            &ids,
            self.config.vision.spatial_merge_size,
        )?;
        let device = self.model.device();
        let pixel_values = match inputs.images.rows() {
            0 => None,
            rows => Some(Tensor::from_slice(
                &inputs.images.pixel_values,
                (rows, inputs.images.row_len),
                device,
            )?),
        };
        let pixel_values_videos = if inputs.videos.is_empty() {
            None
        } else {
            let flat = inputs.pixel_values_videos();
            let width = self.config.vision.patch_dim();
            // The flattened rows are ours already: move them into the tensor, no second copy.
            let rows = flat.len() / width;
            Some(Tensor::from_vec(flat, (rows, width), device)?)
        };
        let think_open = ends_inside_think(&inputs.text);
        Ok(Prepared {
            inputs,
            positions,
            pixel_values,
            pixel_values_videos,
            video_grid_thw,
            think_open,
        })
    }

    /// Sampling settings: the checkpoint's defaults with the caller's overrides. The
    /// tokenizer's `<|im_end|>`-style EOS from the template is added when the config lacks it.
    pub fn sampling_params(&self, overrides: &Overrides) -> SamplingParams {
        let mut extra = vec![];
        if let Some(eos) = self.processor.template.special_token("eos_token") {
            if let Some(id) = self.processor.tokenizer.token_to_id(eos) {
                extra.push(id);
            }
        }
        SamplingParams::resolve(&self.generation_config, overrides, &extra)
    }

    /// Runs prefill only and returns the f32 logits `[vocab]` at the last prompt position.
    pub fn prompt_logits(&mut self, prepared: &Prepared) -> Result<Tensor> {
        let mut lm = Bound {
            model: &mut self.model,
            prepared,
            hooks: PrefillHooks::default(),
        };
        lm.prefill()
    }

    /// Streams an answer. Fails before starting if prompt plus `max_new_tokens` exceed the
    /// context.
    pub fn generate(
        &mut self,
        prepared: &Prepared,
        params: &SamplingParams,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<GenerationStats> {
        self.generate_with(prepared, params, cancel, &mut |_| {}, on_event)
    }

    /// [`Engine::generate`], telling `on_progress` after each vision block and decoder layer of
    /// the prefill (the wait before the first token). `cancel` is also checked between vision
    /// blocks: set during the prefill, it ends the call with [`Error::Cancelled`].
    pub fn generate_with(
        &mut self,
        prepared: &Prepared,
        params: &SamplingParams,
        cancel: &CancelToken,
        on_progress: &mut dyn FnMut(PrefillProgress),
        on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<GenerationStats> {
        let total = prepared.input_ids().len() + params.max_new_tokens;
        if total > self.context_length() {
            return Err(Error::ContextTooLong {
                tokens: total,
                limit: self.context_length(),
            });
        }
        let decoder = TokenizerDecode(&self.processor.tokenizer);
        let mut lm = Bound {
            model: &mut self.model,
            prepared,
            hooks: PrefillHooks {
                progress: Some(on_progress),
                cancel: Some(cancel),
            },
        };
        generation::generate(
            &mut lm,
            prepared.input_ids(),
            params,
            &decoder,
            prepared.think_open,
            cancel,
            on_event,
        )
    }
}

/// Whether the last `<think>` in the prompt is still open: the Thinking template ends the
/// generation prompt with `<think>\n`.
fn ends_inside_think(prompt: &str) -> bool {
    match (prompt.rfind("<think>"), prompt.rfind("</think>")) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    }
}

/// The model bound to one prepared prompt, as the decode loop sees it.
struct Bound<'a> {
    model: &'a mut Qwen3VLModel,
    prepared: &'a Prepared,
    hooks: PrefillHooks<'a>,
}

impl LanguageModel for Bound<'_> {
    fn prefill(&mut self) -> Result<Tensor> {
        let p = self.prepared;
        let prompt = Prompt {
            input_ids: p.input_ids(),
            images: visual(p.pixel_values(), p.image_grid_thw()),
            videos: visual(p.pixel_values_videos(), p.video_grid_thw()),
            positions: [
                &p.positions.positions[0],
                &p.positions.positions[1],
                &p.positions.positions[2],
            ],
            rope_delta: p.positions.rope_delta,
        };
        Ok(self
            .model
            .prefill_with(&prompt, LogitsFor::Last, &mut NoProbe, &mut self.hooks)?
            .i(0)?)
    }

    fn step(&mut self, token: u32) -> Result<Tensor> {
        self.model.decode_one(token)
    }
}

fn visual<'t>(pixels: Option<&'t Tensor>, grid_thw: &'t [[usize; 3]]) -> Option<VisualInput<'t>> {
    pixels.map(|pixel_values| VisualInput {
        pixel_values,
        grid_thw,
    })
}

struct TokenizerDecode<'a>(&'a tokenizers::Tokenizer);

impl Decode for TokenizerDecode<'_> {
    fn decode(&self, ids: &[u32]) -> Result<String> {
        // Special tokens are skipped as in transformers' streamer (`skip_special_tokens=True`).
        self.0.decode(ids, true).map_err(|e| Error::Tokenizer {
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_state_of_prompts() {
        assert!(ends_inside_think("<|im_start|>assistant\n<think>\n"));
        assert!(!ends_inside_think("<|im_start|>assistant\n"));
        assert!(!ends_inside_think(
            "<think>\nx\n</think>\n\nanswer<|im_end|>\n<|im_start|>assistant\n"
        ));
    }

    #[test]
    fn device_and_dtype_names() {
        assert_eq!("cpu".parse::<DeviceKind>().unwrap(), DeviceKind::Cpu);
        assert!("tpu".parse::<DeviceKind>().is_err());
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert!(parse_dtype("int8")
            .unwrap_err()
            .to_string()
            .contains("int8"));
    }
}
