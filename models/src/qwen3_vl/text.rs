//! The text decoder (spec §4): RMSNorm, GQA attention with per-head q/k RMSNorm, interleaved
//! MRoPE from 3-row position ids, the dense SwiGLU MLP or the sparse MoE block, a growing KV
//! cache, the final norm. Mirrors transformers' `Qwen3VL[Moe]Text*` modules.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Embedding, VarBuilder};

use super::config::{Config, TextConfig};
use super::kv_cache::KvCache;
use super::moe::{ExpertLayout, SparseMoeBlock};
use super::quant::{Linear, Quant};
use super::{cpu_attention, cpu_mm, cpu_ops, kv_attention};
use crate::Result;

/// Receives named intermediate tensors during a forward pass, keyed like the parity fixtures
/// (`text.inputs_embeds`, `text.layers.{i}`, `text.layers.{i}.router_logits`, `text.norm`,
/// `logits`), so tests can compare stage by stage. Off by default ([`NoProbe`]).
pub trait Probe {
    /// Whether `record` wants anything at all (lets callers skip building names).
    fn enabled(&self) -> bool {
        true
    }
    fn record(&mut self, name: &str, tensor: &Tensor);
}

/// The probe that records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProbe;

impl Probe for NoProbe {
    fn enabled(&self) -> bool {
        false
    }
    fn record(&mut self, _: &str, _: &Tensor) {}
}

/// Collects every recorded tensor by name (a tensor clone shares storage; nothing is copied).
impl Probe for std::collections::HashMap<String, Tensor> {
    fn record(&mut self, name: &str, tensor: &Tensor) {
        self.insert(name.to_string(), tensor.clone());
    }
}

/// `Qwen3VLTextRMSNorm`: normalise in f32, cast back to the input dtype, then multiply by the
/// weight in that dtype (§4.2; in bf16 this order is what makes results bit-identical).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() == DType::F32 {
            // candle's fused kernel computes exactly "normalise in f32, then × weight".
            return Ok(candle_nn::ops::rms_norm(
                &x.contiguous()?,
                &self.weight,
                self.eps as f32,
            )?);
        }
        let dtype = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let variance = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xf.broadcast_div(&(variance + self.eps)?.sqrt()?)?;
        Ok(normed.to_dtype(dtype)?.broadcast_mul(&self.weight)?)
    }
}

/// `Qwen3VLTextRotaryEmbedding`: 1-D RoPE frequencies shared by three position rows (T, H, W),
/// interleaved slot by slot (§4.4).
#[derive(Debug, Clone)]
pub struct TextRotaryEmbedding {
    inv_freq: Vec<f32>,
    mrope_section: [usize; 3],
}

impl TextRotaryEmbedding {
    pub fn new(cfg: &TextConfig) -> Self {
        Self {
            inv_freq: inv_freq(cfg.rope_theta, cfg.head_dim),
            mrope_section: cfg.mrope_section,
        }
    }

    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// Which position row (0 = T, 1 = H, 2 = W) drives frequency slot `j` (§4.4): H on
    /// j ≡ 1 (mod 3) below 3·s_H, W on j ≡ 2 (mod 3) below 3·s_W, T everywhere else.
    pub fn row_of_slot(&self, j: usize) -> usize {
        let [_, s_h, s_w] = self.mrope_section;
        match j % 3 {
            1 if j < 3 * s_h => 1,
            2 if j < 3 * s_w => 2,
            _ => 0,
        }
    }

    /// cos and sin, each `[L, head_dim/2]` in `dtype`, for the 3-row `positions` (each row
    /// length L). Computed in f32 (transformers disables autocast here) and cast afterwards.
    pub fn cos_sin(
        &self,
        positions: [&[i64]; 3],
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let len = positions[0].len();
        if positions.iter().any(|r| r.len() != len) {
            return Err(crate::Error::TokenCountMismatch {
                what: "position id rows (T, H, W) must have equal length".into(),
                expected: len,
                got: positions.iter().map(|r| r.len()).max().unwrap_or(0),
            });
        }
        let half = self.inv_freq.len();
        let rows: Vec<usize> = (0..half).map(|j| self.row_of_slot(j)).collect();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        let triples = positions[0]
            .iter()
            .zip(positions[1])
            .zip(positions[2])
            .map(|((&t, &h), &w)| [t, h, w]);
        for at in triples {
            for (j, &inv) in self.inv_freq.iter().enumerate() {
                // f32 product, as torch's `position_ids.float() * inv_freq`.
                let angle = at[rows[j]] as f32 * inv;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (len, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (len, half), device)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }
}

/// `1 / theta^(2j/hd)` in f32, j = 0..hd/2 (§4.4).
///
/// torch computes the power in f32 with its vectorised `pow`, which is not correctly rounded;
/// no portable formula reproduces it bit for bit. Rounding the exactly computed (f64) power to
/// f32 and taking the f32 reciprocal matches torch 2.15 on x86-64 in every entry for head_dim
/// 16/24/32/64 and in all but one entry of 64 for head_dim 128 (1 ulp; measured for
/// theta 1e4, 1e6 and 5e6). The exponent `2j/hd` itself is computed in f32, as torch does.
pub fn inv_freq(theta: f64, head_dim: usize) -> Vec<f32> {
    let base = theta as f32;
    (0..head_dim)
        .step_by(2)
        .map(|i| {
            let exponent = i as f32 / head_dim as f32;
            let power = (base as f64).powf(exponent as f64) as f32;
            1.0f32 / power
        })
        .collect()
}

/// `Qwen3VLTextMLP`: `down(silu(gate(x)) ⊙ up(x))`, no biases (§4.6).
#[derive(Debug, Clone)]
pub struct TextMlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl TextMlp {
    pub fn new(hidden: usize, intermediate: usize, quant: Quant, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            gate_proj: Linear::load(hidden, intermediate, quant, vb.pp("gate_proj"))?,
            up_proj: Linear::load(hidden, intermediate, quant, vb.pp("up_proj"))?,
            down_proj: Linear::load(intermediate, hidden, quant, vb.pp("down_proj"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&cpu_ops::silu_mul(&gate, &up)?)
    }
}

/// `Qwen3VLTextAttention` (§4.3) with its KV cache.
#[derive(Debug, Clone)]
pub struct TextAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    /// Post-norm, post-RoPE keys and raw values, `[B, Hkv, S, hd]`, written in place.
    kv_cache: KvCache,
}

impl TextAttention {
    pub fn new(cfg: &TextConfig, quant: Quant, vb: VarBuilder) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim);
        let (hq, hkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        Ok(Self {
            // head_dim is explicit: Hq·hd need not equal hidden_size (4B, 30B-A3B).
            q_proj: Linear::load(d, hq * hd, quant, vb.pp("q_proj"))?,
            k_proj: Linear::load(d, hkv * hd, quant, vb.pp("k_proj"))?,
            v_proj: Linear::load(d, hkv * hd, quant, vb.pp("v_proj"))?,
            o_proj: Linear::load(hq * hd, d, quant, vb.pp("o_proj"))?,
            q_norm: RmsNorm::new(hd, cfg.rms_norm_eps, vb.pp("q_norm"))?,
            k_norm: RmsNorm::new(hd, cfg.rms_norm_eps, vb.pp("k_norm"))?,
            num_heads: hq,
            num_kv_heads: hkv,
            head_dim: hd,
            kv_cache: KvCache::new(),
        })
    }

    /// `x` `[B, L, D]`; `cos`/`sin` `[L, hd/2]`; `mask` `[L, S]` additive (None: attend to all).
    pub fn forward(
        &mut self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let (hq, hkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let n_rep = hq / hkv;

        // 1. Projections: (B, L, D) -> (B, L, H, hd)
        let q = self.q_proj.forward(x)?.reshape((b, l, hq, hd))?;
        let k = self.k_proj.forward(x)?.reshape((b, l, hkv, hd))?;
        let v = self.v_proj.forward(x)?.reshape((b, l, hkv, hd))?;

        // 2. Per-head RMSNorm over hd, before RoPE; v is not normalised.
        let q = self.q_norm.forward(&q)?;
        let k = self.k_norm.forward(&k)?;

        // 3. (B, L, H, hd) -> (B, H, L, hd), then RoPE (rotate_half convention).
        let q = q.transpose(1, 2)?.contiguous()?;
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;

        // 4. Append to the cache: (B, Hkv, S, hd).
        let (k, v) = self.kv_cache.append(&k, &v)?;
        let s = k.dim(2)?;

        // 5'. Prefill of a bf16 model on the CPU: the blocked kernel (cpu_attention), causal by
        //     construction — the decoder's only mask is the causal one (model.rs).
        if mask.is_some() && cpu_mm::onednn_bf16(&q) {
            let ctx = prefill_attention(&q, &k, &v, n_rep, s - l)?; // (B, Hq, L, hd)
            let ctx = ctx.transpose(1, 2)?.reshape((b, l, hq * hd))?;
            return self.o_proj.forward(&ctx);
        }

        // 5''. Every other step on the CPU (each decode step; the prefill of f32 models and
        //      where oneDNN is absent): kv_attention reads the cache in place, block by block
        //      of query rows, causal the same way.
        if (l == 1 || mask.is_some()) && kv_attention::supports(&q) {
            let ctx = kv_attention::attention(&q, &k, &v, (hd as f32).powf(-0.5))?;
            let ctx = ctx.transpose(1, 2)?.reshape((b, l, hq * hd))?;
            return self.o_proj.forward(&ctx);
        }

        // 5. GQA without copying k/v: query head j uses kv head j / n_rep, so the n_rep query
        //    heads of one kv head are stacked on the row axis. (B, Hq, L, hd) -> (B, Hkv, n_rep·L, hd)
        let q = q.reshape((b, hkv, n_rep * l, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = (cpu_mm::matmul(&q, &k.t()?)? * scale)?; // (B, Hkv, n_rep·L, S)
        let scores = match mask {
            Some(m) => scores
                .reshape((b, hkv, n_rep, l, s))?
                .broadcast_add(m)?
                .reshape((b, hkv, n_rep * l, s))?,
            None => scores,
        };

        // 6. Softmax in f32, cast back (as transformers' eager attention).
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(x.dtype())?;
        let ctx = cpu_mm::matmul(&probs, &v)?; // (B, Hkv, n_rep·L, hd)

        // 7. (B, Hq, L, hd) -> (B, L, Hq·hd) -> o_proj
        let ctx = ctx
            .reshape((b, hq, l, hd))?
            .transpose(1, 2)?
            .reshape((b, l, hq * hd))?;
        self.o_proj.forward(&ctx)
    }

    pub fn cache_len(&self) -> usize {
        self.kv_cache.len()
    }

    pub fn clear_cache(&mut self) {
        self.kv_cache.reset();
    }
}

/// Causal GQA attention for `q` `(B, Hq, L, hd)` against the cache views `k`, `v`
/// `(B, Hkv, S, hd)` (S = cached + L) through `cpu_attention`; returns `(B, Hq, L, hd)`.
fn prefill_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    n_rep: usize,
    cached: usize,
) -> Result<Tensor> {
    let (_, _, l, hd) = q.dims4()?;
    let keys = k.dim(2)?;
    let q = q.contiguous()?;
    let mut out = vec![half::bf16::ZERO; q.elem_count()];
    cpu_mm::with_bf16(&q, |qs| {
        cpu_mm::with_bf16_view(k, |ks, kl| {
            cpu_mm::with_bf16_view(v, |vs, vl| {
                let k_off = cpu_mm::group_offsets(kl)?;
                if cpu_mm::group_offsets(vl)? != k_off {
                    return Err(candle_core::Error::Msg("k and v caches differ".into()).into());
                }
                let q_offsets: Vec<usize> = (0..k_off.len() * n_rep).map(|g| g * l * hd).collect();
                let kv_offsets: Vec<usize> =
                    (0..q_offsets.len()).map(|g| k_off[g / n_rep]).collect();
                let p = cpu_attention::Problem {
                    q: cpu_attention::Rows::dense(&q_offsets, hd),
                    k: cpu_attention::Rows::dense(&kv_offsets, hd),
                    v: cpu_attention::Rows::dense(&kv_offsets, hd),
                    out: cpu_attention::Rows::dense(&q_offsets, hd),
                    rows: l,
                    keys,
                    head_dim: hd,
                    scale: (hd as f32).powf(-0.5),
                    causal_offset: Some(cached),
                };
                cpu_attention::attention(&p, qs, ks, vs, &mut out)
            })
        })
    })?;
    Ok(Tensor::from_vec(out, q.dims(), q.device())?)
}

/// The feed-forward half of a decoder layer, chosen per layer at load (§1.2).
#[derive(Debug, Clone)]
pub enum FeedForward {
    Dense(TextMlp),
    Moe(SparseMoeBlock),
}

/// `Qwen3VLTextDecoderLayer` (§4.2).
#[derive(Debug, Clone)]
pub struct TextDecoderLayer {
    self_attn: TextAttention,
    mlp: FeedForward,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

impl TextDecoderLayer {
    /// `expert_layout`: decided by the first MoE layer from its tensor shapes and reused by the
    /// others, so one checkpoint never mixes orientations (§2.3).
    pub fn new(
        cfg: &Config,
        layer: usize,
        expert_layout: &mut Option<ExpertLayout>,
        quant: Quant,
        vb: VarBuilder,
    ) -> Result<Self> {
        let t = &cfg.text;
        let mlp = if t.is_moe_layer(layer) {
            FeedForward::Moe(SparseMoeBlock::new(
                cfg,
                expert_layout,
                quant,
                vb.pp("mlp"),
            )?)
        } else {
            FeedForward::Dense(TextMlp::new(
                t.hidden_size,
                t.intermediate_size,
                quant,
                vb.pp("mlp"),
            )?)
        };
        Ok(Self {
            self_attn: TextAttention::new(t, quant, vb.pp("self_attn"))?,
            mlp,
            input_layernorm: RmsNorm::new(t.hidden_size, t.rms_norm_eps, vb.pp("input_layernorm"))?,
            post_attention_layernorm: RmsNorm::new(
                t.hidden_size,
                t.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
        })
    }

    /// `name` is the probe key of this layer (`text.layers.{i}`); MoE layers also report
    /// `{name}.router_logits` `[B·L, E]`.
    pub fn forward(
        &mut self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        probe: &mut dyn Probe,
        name: &str,
    ) -> Result<Tensor> {
        // 1. Attention block, pre-norm + residual.
        let h = self.input_layernorm.forward(x)?;
        let h = self.self_attn.forward(&h, cos, sin, mask)?;
        let x = cpu_ops::add(x, &h)?;
        // 2. MLP / MoE block, pre-norm + residual.
        let h = self.post_attention_layernorm.forward(&x)?;
        let h = match &self.mlp {
            FeedForward::Dense(mlp) => mlp.forward(&h)?,
            FeedForward::Moe(moe) => {
                let (out, router_logits) = moe.forward(&h)?;
                if probe.enabled() {
                    probe.record(&format!("{name}.router_logits"), &router_logits);
                }
                out
            }
        };
        cpu_ops::add(&x, &h)
    }
}

/// `Qwen3VLTextModel` without the multimodal glue: embeddings, layers, final norm, rotary.
#[derive(Debug, Clone)]
pub struct TextModel {
    embed_tokens: Embedding,
    layers: Vec<TextDecoderLayer>,
    norm: RmsNorm,
    rotary_emb: TextRotaryEmbedding,
    dtype: DType,
    device: Device,
}

/// DeepStack features to add after the first decoder layers, at the visual positions (§4.2).
pub struct DeepStack<'a> {
    /// Sequence indices of the visual tokens, `[n_visual]` u32, ascending.
    pub positions: &'a Tensor,
    /// One `[n_visual, D]` tensor per level; level k is added after decoder layer k.
    pub levels: &'a [Tensor],
}

impl TextModel {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Self::new_with(cfg, Quant::None, vb)
    }

    /// [`TextModel::new`] with the decoder's linear layers quantized as `quant` asks.
    pub fn new_with(cfg: &Config, quant: Quant, vb: VarBuilder) -> Result<Self> {
        let t = &cfg.text;
        let embed_tokens =
            candle_nn::embedding(t.vocab_size, t.hidden_size, vb.pp("embed_tokens"))?;
        let mut expert_layout = None;
        let layers = (0..t.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                TextDecoderLayer::new(cfg, i, &mut expert_layout, quant, vb)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens,
            layers,
            norm: RmsNorm::new(t.hidden_size, t.rms_norm_eps, vb.pp("norm"))?,
            rotary_emb: TextRotaryEmbedding::new(t),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    pub fn embed_tokens(&self) -> &Embedding {
        &self.embed_tokens
    }

    pub fn rotary_emb(&self) -> &TextRotaryEmbedding {
        &self.rotary_emb
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Tokens already in the KV cache.
    pub fn cache_len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.self_attn.cache_len())
    }

    pub fn clear_cache(&mut self) {
        for layer in &mut self.layers {
            layer.self_attn.clear_cache();
        }
    }

    /// Runs the decoder over `inputs_embeds` `[1, L, D]` at the 3-row `positions`, appending to
    /// the KV cache; returns the final-norm output `[1, L, D]`.
    pub fn forward(
        &mut self,
        inputs_embeds: &Tensor,
        positions: [&[i64]; 3],
        deepstack: Option<DeepStack>,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        let (b, l, d) = inputs_embeds.dims3()?;
        let cache_len = self.cache_len();

        // 1. Rotary tables shared by every layer: [L, hd/2].
        let (cos, sin) = self
            .rotary_emb
            .cos_sin(positions, self.dtype, &self.device)?;

        // 2. Causal mask, only where a query can see a later key (prefill of >1 token).
        let mask = if l > 1 {
            Some(causal_mask(l, cache_len, self.dtype, &self.device)?)
        } else {
            None
        };

        // 3. Decoder layers; DeepStack level i is added to layer i's output at visual rows.
        let mut h = inputs_embeds.clone();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let name = format!("text.layers.{i}");
            h = layer.forward(&h, &cos, &sin, mask.as_ref(), probe, &name)?;
            if probe.enabled() {
                probe.record(&name, &h);
            }
            if let Some(ds) = &deepstack {
                if let Some(level) = ds.levels.get(i) {
                    // (1, L, D) -> (L, D); out[pos[k]] += level[k]
                    let level = level.to_dtype(h.dtype())?;
                    h = h
                        .reshape((b * l, d))?
                        .index_add(ds.positions, &level, 0)?
                        .reshape((b, l, d))?;
                }
            }
        }

        // 4. Final norm.
        let h = self.norm.forward(&h)?;
        if probe.enabled() {
            probe.record("text.norm", &h);
        }
        Ok(h)
    }
}

/// Additive mask `[L, cache_len + L]`: query i (absolute cache_len + i) sees keys 0..=cache_len + i.
fn causal_mask(l: usize, cache_len: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let s = cache_len + l;
    let mask: Vec<f32> = (0..l)
        .flat_map(|i| {
            (0..s).map(move |j| {
                if j > cache_len + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(mask, (l, s), device)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_cfg(head_dim: usize, section: [usize; 3]) -> TextConfig {
        TextConfig {
            vocab_size: 10,
            hidden_size: 8,
            intermediate_size: 8,
            num_hidden_layers: 1,
            num_attention_heads: 1,
            num_key_value_heads: 1,
            head_dim,
            rms_norm_eps: 1e-6,
            rope_theta: 5_000_000.0,
            mrope_section: section,
            max_position_embeddings: 100,
            moe: None,
        }
    }

    #[test]
    fn interleaved_slots_match_spec_pattern() {
        // §4.4: section [24, 20, 20], hd 128 -> THW repeated 20 times, then TTTT.
        let rope = TextRotaryEmbedding::new(&text_cfg(128, [24, 20, 20]));
        let pattern: String = (0..64)
            .map(|j| ['T', 'H', 'W'][rope.row_of_slot(j)])
            .collect();
        assert_eq!(pattern, format!("{}TTTT", "THW".repeat(20)));
        // A section where H has more slots than W.
        let rope = TextRotaryEmbedding::new(&text_cfg(24, [4, 5, 3]));
        let pattern: String = (0..12)
            .map(|j| ['T', 'H', 'W'][rope.row_of_slot(j)])
            .collect();
        assert_eq!(pattern, "THWTHWTHWTHT");
    }

    #[test]
    fn inv_freq_matches_torch_values() {
        // torch 2.15: 1.0 / (5e6 ** (torch.arange(0, 24, 2, dtype=torch.float) / 24)), as bits.
        let got: Vec<u32> = inv_freq(5_000_000.0, 24)
            .iter()
            .map(|f| f.to_bits())
            .collect();
        let want: [u32; 12] = [
            0x3f800000, 0x3e8d9632, 0x3d9c9d96, 0x3cad3d5e, 0x3bbfa0df, 0x3ad3f815, 0x39ea77ff,
            0x3901adaa, 0x380f7172, 0x371eab4b, 0x362f82e3, 0x35422418,
        ];
        assert_eq!(got, want);

        // head_dim 128 (every released model): torch's vectorised pow is 1 ulp off the
        // correctly rounded value in slot 19; every other slot is bit-identical.
        let got: Vec<u32> = inv_freq(5_000_000.0, 128)
            .iter()
            .map(|f| f.to_bits())
            .collect();
        let want: [u32; 64] = [
            0x3f800000, 0x3f492c28, 0x3f1e165d, 0x3ef875a7, 0x3ec33f3a, 0x3e996e52, 0x3e712429,
            0x3e3d7efc, 0x3e14e963, 0x3dea09db, 0x3db7ea1a, 0x3d908687, 0x3d63251b, 0x3d327f50,
            0x3d0c44bf, 0x3cdc7456, 0x3cad3d5e, 0x3c88230f, 0x3c55f605, 0x3c282311, 0x3c042088,
            0x3bcfa8a9, 0x3ba32f3e, 0x3b803c3d, 0x3b498ad3, 0x3b1e60c3, 0x3af8ea93, 0x3ac39b1c,
            0x3a99b686, 0x3a7195a5, 0x3a3dd829, 0x3a152f76, 0x39ea77ff, 0x39b840a8, 0x3990ca8b,
            0x39639000, 0x3932d34f, 0x390c86c1, 0x38dcdc14, 0x38ad8ee4, 0x38886320, 0x38565ab5,
            0x38287230, 0x38045eb6, 0x37d00a62, 0x37a37c09, 0x37807896, 0x3749e9ab, 0x371eab4b,
            0x36f95fb6, 0x36c3f72a, 0x3699fedc, 0x36720755, 0x363e3180, 0x361575ab, 0x35eae655,
            0x35b8975d, 0x35910eae, 0x3563fb18, 0x35332777, 0x350cc8e3, 0x34dd4405, 0x34ade091,
            0x3488a34f,
        ];
        let differing: Vec<usize> = (0..64).filter(|&j| got[j] != want[j]).collect();
        assert_eq!(differing, vec![19]);
        assert_eq!(got[19].abs_diff(want[19]), 1);
    }

    #[test]
    fn equal_rows_reduce_to_1d_rope() {
        let rope = TextRotaryEmbedding::new(&text_cfg(16, [2, 3, 3]));
        let pos = [3i64, 7, 100];
        let (cos, sin) = rope
            .cos_sin([&pos, &pos, &pos], DType::F32, &Device::Cpu)
            .unwrap();
        let cos: Vec<Vec<f32>> = cos.to_vec2().unwrap();
        let sin: Vec<Vec<f32>> = sin.to_vec2().unwrap();
        for (l, &p) in pos.iter().enumerate() {
            for (j, &f) in rope.inv_freq().iter().enumerate() {
                assert_eq!(cos[l][j], (p as f32 * f).cos());
                assert_eq!(sin[l][j], (p as f32 * f).sin());
            }
        }
        // Different rows: slot 1 follows H, slot 2 follows W, slot 0 follows T.
        let (cos, _) = rope
            .cos_sin([&[1], &[2], &[3]], DType::F32, &Device::Cpu)
            .unwrap();
        let cos: Vec<Vec<f32>> = cos.to_vec2().unwrap();
        let f = rope.inv_freq();
        assert_eq!(cos[0][0], (1.0 * f[0]).cos());
        assert_eq!(cos[0][1], (2.0 * f[1]).cos());
        assert_eq!(cos[0][2], (3.0 * f[2]).cos());
        assert_eq!(
            cos[0][7],
            (1.0 * f[7]).cos(),
            "slot 7 ≥ 3·s_H = 6 falls back to T"
        );
    }

    #[test]
    fn rms_norm_casts_before_weight() {
        let dev = Device::Cpu;
        let w = Tensor::new(&[2.0f32, 0.5, 1.0, 3.0], &dev).unwrap();
        let x = Tensor::new(&[[1.0f32, -2.0, 3.0, 0.25]], &dev).unwrap();
        let norm = RmsNorm {
            weight: w.clone(),
            eps: 1e-6,
        };
        let got: Vec<Vec<f32>> = norm.forward(&x).unwrap().to_vec2().unwrap();
        let ms = (1.0 + 4.0 + 9.0 + 0.0625) / 4.0f64;
        let r = 1.0 / (ms + 1e-6).sqrt();
        let want = [2.0 * r, -2.0 * 0.5 * r, 3.0 * r, 0.25 * 3.0 * r];
        for (g, w) in got[0].iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
        }
        // bf16: normalise in f32, round to bf16, then multiply in bf16.
        let norm = RmsNorm {
            weight: w.to_dtype(DType::BF16).unwrap(),
            eps: 1e-6,
        };
        let got = norm.forward(&x.to_dtype(DType::BF16).unwrap()).unwrap();
        let want = (x.to_dtype(DType::F32).unwrap() * r)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap()
            .broadcast_mul(&w.to_dtype(DType::BF16).unwrap())
            .unwrap();
        let diff: f32 = (got.to_dtype(DType::F32).unwrap() - want.to_dtype(DType::F32).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn causal_mask_with_cache_offset() {
        let m: Vec<Vec<f32>> = causal_mask(2, 3, DType::F32, &Device::Cpu)
            .unwrap()
            .to_vec2()
            .unwrap();
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![vec![0.0, 0.0, 0.0, 0.0, inf], vec![0.0; 5]]);
    }
}
