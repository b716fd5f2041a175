//! `Qwen3VLModel`: the vision tower, the multimodal splice, DeepStack, the text decoder and
//! `lm_head`, with KV-cache prefill and decode (spec §4.1, §4.2, §4.7, §5.2). One sequence
//! per model (batch 1); the cache belongs to the model.

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::VarBuilder;

use super::config::Config;
use super::quant::{Linear, Quant};
use super::text::{DeepStack, NoProbe, Probe, TextModel};
use super::vision::{VisionModel, VisionOutput};
use super::weights::open_var_builder;
use crate::generation::{PrefillHooks, PrefillStage};
use crate::{Error, Result};

/// Pixels of the images (or of the videos) of one prompt, as the processor produced them.
#[derive(Debug, Clone, Copy)]
pub struct VisualInput<'a> {
    /// `[Np, C·T·P·P]` patch rows in merge-window order.
    pub pixel_values: &'a Tensor,
    /// One `(t, h, w)` patch grid per image (or video), in prompt order.
    pub grid_thw: &'a [[usize; 3]],
}

/// Everything prefill needs for one prompt.
#[derive(Debug, Clone, Copy)]
pub struct Prompt<'a> {
    pub input_ids: &'a [u32],
    pub images: Option<VisualInput<'a>>,
    pub videos: Option<VisualInput<'a>>,
    /// The 3 position rows (T, H, W), each `input_ids.len()` long: `rope_index::get_rope_index`.
    pub positions: [&'a [i64]; 3],
    /// `max(position) + 1 − L`; decode steps continue at `cache_len + rope_delta` (§5.2).
    pub rope_delta: i64,
}

/// Which positions to compute logits for (the lm_head is the largest matmul of a step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogitsFor {
    Last,
    All,
    /// Indices into the tokens of this call, in the order wanted.
    Positions(Vec<usize>),
}

#[derive(Debug, Clone)]
pub struct Qwen3VLModel {
    visual: VisionModel,
    language_model: TextModel,
    lm_head: Linear,
    image_token_id: u32,
    video_token_id: u32,
    vocab_size: usize,
    /// Decoder layers: the steps of the prompt stage of prefill progress.
    num_text_layers: usize,
    /// Set by `prefill`, used by `decode`.
    rope_delta: i64,
}

impl Qwen3VLModel {
    /// Builds the model from a `VarBuilder` at the checkpoint root (`model.visual.*`,
    /// `model.language_model.*`, `lm_head.weight`).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Self::new_with(cfg, Quant::None, vb)
    }

    /// [`Qwen3VLModel::new`] with the text decoder's linear layers (attention, MLP, experts and
    /// lm_head) quantized as `quant` asks; the vision tower stays in the load dtype.
    pub fn new_with(cfg: &Config, quant: Quant, vb: VarBuilder) -> Result<Self> {
        let visual = VisionModel::new(&cfg.vision, vb.pp("model.visual"))?;
        let language_model = TextModel::new_with(cfg, quant, vb.pp("model.language_model"))?;
        // §2.2: the file's lm_head.weight whenever present (even if the config says tied),
        // else the embeddings.
        let (d, v) = (cfg.text.hidden_size, cfg.text.vocab_size);
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            Linear::load(d, v, quant, vb.pp("lm_head"))?
        } else {
            Linear::from_weight(language_model.embed_tokens().embeddings().clone(), quant)?
        };
        Ok(Self {
            visual,
            language_model,
            lm_head,
            image_token_id: cfg.image_token_id,
            video_token_id: cfg.video_token_id,
            vocab_size: cfg.text.vocab_size,
            num_text_layers: cfg.text.num_hidden_layers,
            rope_delta: 0,
        })
    }

    /// Reads `dir/config.json` and the safetensors beside it, as `dtype` on `device`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<(Config, Self)> {
        Self::load_with(dir, dtype, device, Quant::None)
    }

    /// [`Qwen3VLModel::load`] with the decoder quantized as `quant` asks.
    pub fn load_with(
        dir: &Path,
        dtype: DType,
        device: &Device,
        quant: Quant,
    ) -> Result<(Config, Self)> {
        let cfg = Config::from_dir(dir)?;
        let vb = open_var_builder(dir, dtype, device)?;
        let model = Self::new_with(&cfg, quant, vb)?;
        Ok((cfg, model))
    }

    pub fn dtype(&self) -> DType {
        self.language_model.dtype()
    }

    /// The vision tower alone (benchmarks time it apart from the decoder).
    pub fn visual(&self) -> &VisionModel {
        &self.visual
    }

    pub fn device(&self) -> &Device {
        self.language_model.device()
    }

    /// Tokens in the KV cache.
    pub fn cache_len(&self) -> usize {
        self.language_model.cache_len()
    }

    /// The rope delta of the current sequence (0 before any prefill).
    pub fn rope_delta(&self) -> i64 {
        self.rope_delta
    }

    pub fn clear_cache(&mut self) {
        self.language_model.clear_cache();
        self.rope_delta = 0;
    }

    /// Starts a new sequence: clears the cache, encodes the pixels, splices the vision
    /// embeddings at the image/video pad tokens, runs the decoder (adding DeepStack features
    /// after its first layers at visual positions) and returns f32 logits `[n, vocab]` for the
    /// positions asked for.
    ///
    /// Errors: a pad-token count that differs from the number of vision features
    /// ([`Error::TokenCountMismatch`]); position rows of the wrong length; token ids outside
    /// the vocabulary.
    pub fn prefill(
        &mut self,
        prompt: &Prompt,
        logits_for: LogitsFor,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        self.prefill_with(prompt, logits_for, probe, &mut PrefillHooks::default())
    }

    /// [`Qwen3VLModel::prefill`] reporting each vision block and decoder layer through
    /// `hooks.progress`, and stopping with [`Error::Cancelled`] between vision blocks (and
    /// before the decoder) once `hooks.cancel` is set. A cancelled prefill leaves the cache
    /// empty.
    pub fn prefill_with(
        &mut self,
        prompt: &Prompt,
        logits_for: LogitsFor,
        probe: &mut dyn Probe,
        hooks: &mut PrefillHooks,
    ) -> Result<Tensor> {
        self.clear_cache();
        let ids = prompt.input_ids;
        let l = ids.len();
        if l == 0 {
            return Err(Error::BadInput {
                what: "input_ids".into(),
                reason: "a prompt needs at least one token".into(),
            });
        }
        for (row, name) in prompt.positions.iter().zip(["T", "H", "W"]) {
            if row.len() != l {
                return Err(Error::TokenCountMismatch {
                    what: format!("{name} row of the position ids vs input_ids"),
                    expected: l,
                    got: row.len(),
                });
            }
        }

        // 1. Vision features: images and videos are encoded in separate calls, like HF.
        let images = self.encode(prompt.images, PrefillStage::Images, probe, hooks)?;
        let videos = self.encode(prompt.videos, PrefillStage::Videos, probe, hooks)?;
        hooks.check_cancel()?;

        // 2. Token embeddings, then the splice: k-th image pad <- k-th image feature row,
        //    likewise for videos. Done as one gather over [text rows; image rows; video rows].
        let text_embeds = self.embed(ids)?; // (L, D)
        let image_pos = positions_of(ids, self.image_token_id);
        let video_pos = positions_of(ids, self.video_token_id);
        let n_img = check_count("image", &images, image_pos.len())?;
        let n_vid = check_count("video", &videos, video_pos.len())?;
        let mut gather: Vec<u32> = (0..l as u32).collect();
        for (k, &p) in image_pos.iter().enumerate() {
            gather[p] = (l + k) as u32;
        }
        for (k, &p) in video_pos.iter().enumerate() {
            gather[p] = (l + n_img + k) as u32;
        }
        let mut sources = vec![text_embeds];
        sources.extend(images.iter().map(|o| o.embeds.clone()));
        sources.extend(videos.iter().map(|o| o.embeds.clone()));
        let dtype = self.dtype();
        let sources = sources
            .iter()
            .map(|t| t.to_dtype(dtype))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let inputs_embeds = if n_img + n_vid == 0 {
            sources[0].clone()
        } else {
            let gather = Tensor::new(gather.as_slice(), self.device())?;
            Tensor::cat(&sources, 0)?.index_select(&gather, 0)?
        }
        .unsqueeze(0)?; // (1, L, D)
        if probe.enabled() {
            probe.record("text.inputs_embeds", &inputs_embeds);
        }

        // 3. DeepStack levels as [n_visual, D] rows in sequence order (image rows at image
        //    positions, video rows at video positions), §4.1 step 3.
        let mut visual_pos: Vec<(usize, u32)> = image_pos
            .iter()
            .enumerate()
            .map(|(k, &p)| (p, k as u32))
            .chain(
                video_pos
                    .iter()
                    .enumerate()
                    .map(|(k, &p)| (p, (n_img + k) as u32)),
            )
            .collect();
        visual_pos.sort_unstable();
        let levels = deepstack_levels(images.as_ref(), videos.as_ref(), &visual_pos)?;
        let ds_positions = Tensor::new(
            visual_pos
                .iter()
                .map(|&(p, _)| p as u32)
                .collect::<Vec<_>>(),
            self.device(),
        )?;
        let deepstack = (!visual_pos.is_empty() && !levels.is_empty()).then_some(DeepStack {
            positions: &ds_positions,
            levels: &levels,
        });

        // 4. Decoder and logits. Layer progress rides on the probe's `text.layers.{i}` taps,
        //    so the decoder loop itself knows nothing of it.
        let total = self.num_text_layers;
        let hidden = if hooks.reports() {
            let mut counting = LayerProgress {
                inner: probe,
                hooks,
                total,
            };
            self.language_model.forward(
                &inputs_embeds,
                prompt.positions,
                deepstack,
                &mut counting,
            )?
        } else {
            self.language_model
                .forward(&inputs_embeds, prompt.positions, deepstack, probe)?
        };
        self.rope_delta = prompt.rope_delta;
        self.logits(&hidden, &logits_for, probe)
    }

    /// Appends `tokens` to the sequence (positions `cache_len + i + rope_delta` on all three
    /// rows, §5.2) and returns f32 logits `[tokens.len(), vocab]`.
    pub fn decode(&mut self, tokens: &[u32], probe: &mut dyn Probe) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(Error::BadInput {
                what: "tokens to decode".into(),
                reason: "need at least one token".into(),
            });
        }
        let start = self.cache_len() as i64 + self.rope_delta;
        let pos: Vec<i64> = (0..tokens.len() as i64).map(|i| start + i).collect();
        let inputs_embeds = self.embed(tokens)?.unsqueeze(0)?;
        let hidden =
            self.language_model
                .forward(&inputs_embeds, [&pos, &pos, &pos], None, probe)?;
        self.logits(&hidden, &LogitsFor::All, probe)
    }

    /// One decode step for callers that do not probe: the logits `[vocab]` after `token`.
    ///
    /// On the CPU the step runs on a worker of rayon's pool. A step is dozens of small
    /// parallel products per layer; started from a thread outside the pool, each of them is
    /// handed to the pool and waited for (113–147 context switches per token measured on a
    /// 4-layer 30B-A3B shape, none from a worker), where a worker runs its share at once and
    /// the other steals.
    pub fn decode_one(&mut self, token: u32) -> Result<Tensor> {
        let step = |model: &mut Self| Ok(model.decode(&[token], &mut NoProbe)?.i(0)?);
        if self.device().is_cpu() && rayon::current_thread_index().is_none() {
            return rayon::scope(|_| step(self));
        }
        step(self)
    }

    fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= self.vocab_size) {
            return Err(Error::TokenOutOfRange {
                token: bad,
                vocab_size: self.vocab_size,
            });
        }
        let ids = Tensor::new(ids, self.device())?;
        Ok(self.language_model.embed_tokens().forward(&ids)?)
    }

    fn encode(
        &self,
        input: Option<VisualInput>,
        stage: PrefillStage,
        probe: &mut dyn Probe,
        hooks: &mut PrefillHooks,
    ) -> Result<Option<VisionOutput>> {
        let Some(input) = input else {
            return Ok(None);
        };
        let prefix = match stage {
            PrefillStage::Videos => "video",
            _ => "image",
        };
        let pixel_values = input.pixel_values.to_dtype(self.dtype())?;
        let depth = self.visual.depth();
        let mut after_block = |done: usize| {
            hooks.check_cancel()?;
            hooks.report(stage, done, depth);
            Ok(())
        };
        let out = if probe.enabled() {
            // The tower's intermediates under the fixture names: `image.blocks.3`, ….
            self.visual.forward_hooked(
                &pixel_values,
                input.grid_thw,
                &mut |name, t| probe.record(&format!("{prefix}.{name}"), t),
                &mut after_block,
            )?
        } else {
            self.visual.forward_hooked(
                &pixel_values,
                input.grid_thw,
                &mut |_, _| {},
                &mut after_block,
            )?
        };
        Ok(Some(out))
    }

    fn logits(&self, hidden: &Tensor, which: &LogitsFor, probe: &mut dyn Probe) -> Result<Tensor> {
        let hidden = hidden.squeeze(0)?; // (L, D)
        let l = hidden.dim(0)?;
        let rows = match which {
            LogitsFor::All => hidden,
            LogitsFor::Last => hidden.narrow(0, l - 1, 1)?,
            LogitsFor::Positions(p) => {
                if let Some(&bad) = p.iter().find(|&&i| i >= l) {
                    return Err(Error::TokenCountMismatch {
                        what: format!("logits position {bad} vs sequence length"),
                        expected: l,
                        got: bad + 1,
                    });
                }
                let idx: Vec<u32> = p.iter().map(|&i| i as u32).collect();
                hidden.index_select(&Tensor::new(idx, hidden.device())?, 0)?
            }
        };
        let logits = self.lm_head.forward(&rows)?;
        if probe.enabled() {
            probe.record("logits", &logits);
        }
        Ok(logits.to_dtype(DType::F32)?)
    }
}

/// Passes every tap on to `inner` and counts the decoder's `text.layers.{i}` outputs as prompt
/// progress.
struct LayerProgress<'p, 'h, 'a> {
    inner: &'p mut dyn Probe,
    hooks: &'h mut PrefillHooks<'a>,
    total: usize,
}

impl Probe for LayerProgress<'_, '_, '_> {
    fn record(&mut self, name: &str, tensor: &Tensor) {
        if self.inner.enabled() {
            self.inner.record(name, tensor);
        }
        let layer = name
            .strip_prefix("text.layers.")
            .and_then(|i| i.parse::<usize>().ok());
        if let Some(i) = layer {
            self.hooks.report(PrefillStage::Prompt, i + 1, self.total);
        }
    }
}

fn positions_of(ids: &[u32], token: u32) -> Vec<usize> {
    ids.iter()
        .enumerate()
        .filter(|&(_, &t)| t == token)
        .map(|(i, _)| i)
        .collect()
}

/// Pad tokens and features must pair up one to one (HF raises otherwise). Pads without pixels
/// are an error too: their embedding would be the untrained pad row.
fn check_count(what: &str, out: &Option<VisionOutput>, pads: usize) -> Result<usize> {
    let features = match out {
        Some(o) => o.embeds.dim(0)?,
        None => 0,
    };
    if features != pads {
        return Err(Error::TokenCountMismatch {
            what: format!("{what} placeholder tokens in the prompt vs {what} features"),
            expected: features,
            got: pads,
        });
    }
    Ok(features)
}

/// DeepStack levels in sequence order. `visual_pos` is sorted by position and carries each
/// visual token's row in `[image rows; video rows]`.
fn deepstack_levels(
    images: Option<&VisionOutput>,
    videos: Option<&VisionOutput>,
    visual_pos: &[(usize, u32)],
) -> Result<Vec<Tensor>> {
    let levels = match (images, videos) {
        (Some(i), Some(v)) => {
            if i.deepstack.len() != v.deepstack.len() {
                return Err(Error::TokenCountMismatch {
                    what: "DeepStack levels of videos vs images".into(),
                    expected: i.deepstack.len(),
                    got: v.deepstack.len(),
                });
            }
            i.deepstack
                .iter()
                .zip(&v.deepstack)
                .map(|(a, b)| Tensor::cat(&[a, b], 0))
                .collect::<candle_core::Result<Vec<_>>>()?
        }
        (Some(o), None) | (None, Some(o)) => o.deepstack.clone(),
        (None, None) => return Ok(Vec::new()),
    };
    let order: Vec<u32> = visual_pos.iter().map(|&(_, row)| row).collect();
    let in_order = order.windows(2).all(|w| w[0] < w[1]);
    if in_order || levels.is_empty() {
        return Ok(levels);
    }
    let order = Tensor::new(order, levels[0].device())?;
    Ok(levels
        .iter()
        .map(|t| t.index_select(&order, 0))
        .collect::<candle_core::Result<Vec<_>>>()?)
}
