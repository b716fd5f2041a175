//! The vision tower's modules, one struct per checkpoint module (`Qwen3VLVision*` in
//! transformers 5.24 `modeling_qwen3_vl.py`), fields named like the tensor keys.

use candle_core::{DType, Module, Tensor, D};
use candle_nn::{Activation, Linear, VarBuilder};

use crate::qwen3_vl::cpu_mm::{self, linear_layer};
use crate::qwen3_vl::VisionConfig;
use crate::qwen3_vl::{cpu_attention, cpu_ops};
use crate::{Error, Result};

/// All four vision LayerNorm kinds use this eps (§3.5, §3.7).
const LN_EPS: f64 = 1e-6;

/// Upper bound on the elements of one attention score block (`heads × frames × queries × keys`);
/// larger segments are processed in query chunks so a big image cannot allocate gigabytes of
/// scores at once. Softmax is per query row, so chunking changes no number.
const MAX_SCORE_ELEMS: usize = 1 << 26;

/// `nn.LayerNorm` over the last dimension, computed in f32 whatever the dtype. Two-pass (mean,
/// then the variance of the centred values) like torch: candle-nn's fused kernel uses
/// `E[x²] − mean²`, which loses digits when the mean is large against the spread.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(y) = cpu_ops::layer_norm(x, &self.weight, &self.bias, LN_EPS as f32)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
        {
            return Ok(y);
        }
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + LN_EPS)?.sqrt()?)?;
        // Affine in f32 too and one rounding at the end, as torch's bf16 kernel does.
        normed
            .broadcast_mul(&self.weight.to_dtype(DType::F32)?)?
            .broadcast_add(&self.bias.to_dtype(DType::F32)?)?
            .to_dtype(dtype)
    }
}

/// `patch_embed`: the Conv3d with kernel = stride = (T, P, P) over one patch is a matmul over
/// the flattened `[C·T·P·P]` row (index `c·T·P·P + t·P·P + y·P + x`, the processor's layout).
#[derive(Debug, Clone)]
pub struct VisionPatchEmbed {
    proj: Linear,
}

impl VisionPatchEmbed {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("proj");
        let (c, t, p) = (cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size);
        let weight = vb
            .get((cfg.hidden_size, c, t, p, p), "weight")?
            .reshape((cfg.hidden_size, cfg.patch_dim()))?;
        let bias = vb.get(cfg.hidden_size, "bias")?;
        Ok(Self {
            proj: Linear::new(weight, Some(bias)),
        })
    }

    /// `[Np, C·T·P·P]` → `[Np, Dv]`; the input is cast to the weight dtype as transformers does.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let x = pixel_values.to_dtype(self.proj.weight().dtype())?;
        linear_layer(&self.proj, &x)
    }
}

/// `rotary_pos_emb`: axial 2-D rotary frequencies (§3.4).
#[derive(Debug, Clone)]
pub struct VisionRotaryEmbedding {
    /// `[hdv/4]`, f32.
    inv_freq: Tensor,
}

impl VisionRotaryEmbedding {
    pub fn new(cfg: &VisionConfig, device: &candle_core::Device) -> Result<Self> {
        // `1 / theta^(arange(0, dim, 2) / dim)` with dim = hdv/2, the exponent divided in f32.
        let dim = cfg.head_dim() / 2;
        let inv_freq: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|k| {
                let exponent = k as f32 / dim as f32;
                1.0 / (cfg.rope_theta.powf(exponent as f64) as f32)
            })
            .collect();
        let n = inv_freq.len();
        Ok(Self {
            inv_freq: Tensor::from_vec(inv_freq, n, device)?,
        })
    }

    /// `positions` `[N, 2]` (row, col) f32 → `(cos, sin)`, each `[N, hdv/2]` f32 laid out as
    /// `[row·inv_freq | col·inv_freq]`; candle's `rope` repeats them over both halves, which is
    /// transformers' `cat([freq_hw, freq_hw])` with `rotate_half`.
    pub fn forward(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = positions.dim(0)?;
        let k = self.inv_freq.dim(0)?;
        // [N, 2, 1] · [1, 1, K] → [N, 2, K] → [N, 2K]
        let freqs = positions
            .unsqueeze(2)?
            .broadcast_mul(&self.inv_freq.reshape((1, 1, k))?)?
            .reshape((n, 2 * k))?;
        Ok((freqs.cos()?, freqs.sin()?))
    }
}

#[derive(Debug, Clone)]
pub struct VisionMlp {
    linear_fc1: Linear,
    linear_fc2: Linear,
    act_fn: Activation,
}

impl VisionMlp {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear_fc1: candle_nn::linear(
                cfg.hidden_size,
                cfg.intermediate_size,
                vb.pp("linear_fc1"),
            )?,
            linear_fc2: candle_nn::linear(
                cfg.intermediate_size,
                cfg.hidden_size,
                vb.pp("linear_fc2"),
            )?,
            act_fn: activation(&cfg.hidden_act)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = linear_layer(&self.linear_fc1, x)?;
        let x = match self.act_fn {
            Activation::GeluPytorchTanh => cpu_ops::gelu_tanh(&h)?,
            act => act.forward(&h)?,
        };
        linear_layer(&self.linear_fc2, &x)
    }
}

/// Maps `vision_config.hidden_act` to candle's activations. `gelu_pytorch_tanh` (the released
/// models) is the tanh approximation, `gelu` the exact erf form; they differ by up to 5e-4.
fn activation(name: &str) -> Result<Activation> {
    match name {
        "gelu_pytorch_tanh" | "gelu_new" => Ok(Activation::GeluPytorchTanh),
        "gelu" => Ok(Activation::Gelu),
        "silu" => Ok(Activation::Silu),
        other => Err(Error::bad_config(
            "vision_config.hidden_act",
            format!("`{other}` is not supported (gelu_pytorch_tanh, gelu_new, gelu or silu)"),
        )),
    }
}

/// One attention segment group: `frames` consecutive segments of `len` patches each, starting at
/// patch `start` (one image, or the temporal groups of one video).
#[derive(Debug, Clone, Copy)]
pub struct Segments {
    pub start: usize,
    pub frames: usize,
    pub len: usize,
}

#[derive(Debug, Clone)]
pub struct VisionAttention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    head_dim: usize,
    /// [`MAX_SCORE_ELEMS`]; a field so tests can force the chunked path.
    max_score_elems: usize,
}

impl VisionAttention {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.hidden_size;
        Ok(Self {
            qkv: candle_nn::linear(dim, 3 * dim, vb.pp("qkv"))?,
            proj: candle_nn::linear(dim, dim, vb.pp("proj"))?,
            num_heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
            max_score_elems: MAX_SCORE_ELEMS,
        })
    }

    /// `x` `[N, Dv]`; `cos`/`sin` `[N, hdv/2]` f32; attention is block-diagonal over `segments`
    /// (cu_seqlens semantics: never across images or across temporal groups of a video).
    pub fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        segments: &[Segments],
    ) -> Result<Tensor> {
        let (n, dim) = x.dims2()?;
        let (h, hd) = (self.num_heads, self.head_dim);
        let dtype = x.dtype();

        // 1. Fused projection; rows of each of q, k, v are head-major.
        let qkv = linear_layer(&self.qkv, x)?; // [N, 3·Dv]
        if cpu_mm::onednn_bf16(x) {
            // bf16 on the CPU: rotary and attention read the heads in place (no permute) and
            // the kernel writes [N, H·hd] straight for the output projection.
            let out = blocked_attention(&qkv, cos, sin, h, hd, segments)?;
            return linear_layer(&self.proj, &out);
        }
        // [N, 3·Dv] → [N, 3, H, hd] → [3, H, N, hd]
        let qkv = qkv
            .reshape((n, 3, h, hd))?
            .permute((1, 2, 0, 3))?
            .contiguous()?;

        // 2. 2-D rotary on q and k, in f32 and cast back (apply_rotary_pos_emb_vision).
        //    On the CPU in bf16/f16 the attention itself stays in f32 (`work`): candle's
        //    half-precision CPU matmuls and casts over the heads × N × N scores cost more than
        //    the f32 arithmetic, and f32 only drops roundings (see cpu_mm).
        let work = if cpu_mm::applies(x) {
            DType::F32
        } else {
            dtype
        };
        let rotate = |t: Tensor| -> Result<Tensor> {
            let t = t.unsqueeze(0)?.to_dtype(DType::F32)?; // [1, H, N, hd]
            Ok(candle_nn::rotary_emb::rope(&t, cos, sin)?
                .to_dtype(dtype)?
                .to_dtype(work)?
                .squeeze(0)?)
        };
        let q = rotate(qkv.get(0)?)?;
        let k = rotate(qkv.get(1)?)?;
        let v = qkv.get(2)?.to_dtype(work)?;

        // 3. Scaled dot-product attention per segment group, frames batched: [H, t, len, hd].
        let scale = (hd as f64).powf(-0.5);
        let mut outputs = Vec::with_capacity(segments.len());
        for s in segments {
            let take = |t: &Tensor| -> Result<Tensor> {
                Ok(t.narrow(1, s.start, s.frames * s.len)?
                    .reshape((h, s.frames, s.len, hd))?)
            };
            let (q, k, v) = (take(&q)?, take(&k)?, take(&v)?);
            let kt = k.t()?;
            let rows = (self.max_score_elems / (h * s.frames * s.len).max(1)).clamp(1, s.len);
            let mut chunks = Vec::with_capacity(s.len.div_ceil(rows));
            for q0 in (0..s.len).step_by(rows) {
                // Contiguous so GPU matmuls get a plain batch layout (a no-op unless chunked).
                let qc = q.narrow(2, q0, rows.min(s.len - q0))?.contiguous()?;
                // [H, t, q, hd] · [H, t, hd, len] → [H, t, q, len]; softmax in f32.
                let scores = (qc.matmul(&kt)? * scale)?.to_dtype(DType::F32)?;
                let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(work)?;
                chunks.push(probs.matmul(&v)?);
            }
            let out = Tensor::cat(&chunks, 2)?; // [H, t, len, hd]
            outputs.push(out.reshape((h, s.frames * s.len, hd))?);
        }

        // 4. Heads back together and the output projection. [H, N, hd] → [N, H·hd]
        let out = Tensor::cat(&outputs, 1)?
            .to_dtype(dtype)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((n, dim))?;
        linear_layer(&self.proj, &out)
    }
}

/// Rotary and attention within each segment for a fused `qkv` `[N, 3·H·hd]` (bf16, CPU), through
/// the blocked kernel (`cpu_attention`): no heads × N × N scores, no f32 copies of q/k/v, no
/// head-major copies. Returns `[N, H·hd]`.
fn blocked_attention(
    qkv: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    h: usize,
    hd: usize,
    segments: &[Segments],
) -> Result<Tensor> {
    let n = qkv.dim(0)?;
    let d = h * hd;
    let (cos, sin) = (
        cos.to_vec2::<f32>()?.concat(),
        sin.to_vec2::<f32>()?.concat(),
    );
    let mut out = vec![half::bf16::ZERO; n * d];
    cpu_mm::with_bf16(qkv, |qkv| {
        let qk = cpu_ops::rope_qk(qkv, &cos, &sin, h, hd); // [N, 2, H, hd]
        for s in segments {
            // One group per (head, frame); a frame's patches attend only to each other.
            let groups = |row: usize, at: usize| -> Vec<usize> {
                (0..h)
                    .flat_map(|head| {
                        (0..s.frames).map(move |f| (s.start + f * s.len) * row + at + head * hd)
                    })
                    .collect()
            };
            let (q_off, k_off) = (groups(2 * d, 0), groups(2 * d, d));
            let (v_off, out_off) = (groups(3 * d, 2 * d), groups(d, 0));
            let rows = |offsets, stride| cpu_attention::Rows { offsets, stride };
            let p = cpu_attention::Problem {
                q: rows(&q_off, 2 * d),
                k: rows(&k_off, 2 * d),
                v: rows(&v_off, 3 * d),
                out: rows(&out_off, d),
                rows: s.len,
                keys: s.len,
                head_dim: hd,
                scale: (hd as f32).powf(-0.5),
                causal_offset: None,
            };
            cpu_attention::attention(&p, &qk, &qk, qkv, &mut out)?;
        }
        Ok(())
    })?;
    Ok(Tensor::from_vec(out, (n, d), qkv.device())?)
}

/// `blocks.{b}`: pre-norm ViT block.
#[derive(Debug, Clone)]
pub struct VisionBlock {
    norm1: LayerNorm,
    norm2: LayerNorm,
    attn: VisionAttention,
    mlp: VisionMlp,
}

impl VisionBlock {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: LayerNorm::new(cfg.hidden_size, vb.pp("norm1"))?,
            norm2: LayerNorm::new(cfg.hidden_size, vb.pp("norm2"))?,
            attn: VisionAttention::new(cfg, vb.pp("attn"))?,
            mlp: VisionMlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    pub fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        segments: &[Segments],
    ) -> Result<Tensor> {
        let attn = self
            .attn
            .forward(&self.norm1.forward(x)?, cos, sin, segments)?;
        let x = cpu_ops::add(x, &attn)?;
        let mlp = self.mlp.forward(&self.norm2.forward(&x)?)?;
        cpu_ops::add(&x, &mlp)
    }
}

/// `merger` and `deepstack_merger_list.{k}` (§3.7): gather each `m × m` window's rows into one
/// `[m²·Dv]` row, then fc1 → exact-erf GELU → fc2. The main merger normalises each patch row
/// (over Dv) before the gather; the DeepStack mergers normalise the gathered row (over m²·Dv).
#[derive(Debug, Clone)]
pub struct VisionPatchMerger {
    norm: LayerNorm,
    linear_fc1: Linear,
    linear_fc2: Linear,
    use_postshuffle_norm: bool,
    /// m²·Dv.
    hidden_size: usize,
}

impl VisionPatchMerger {
    pub fn new(cfg: &VisionConfig, use_postshuffle_norm: bool, vb: VarBuilder) -> Result<Self> {
        let m = cfg.spatial_merge_size;
        let hidden_size = cfg.hidden_size * m * m;
        let norm_dim = if use_postshuffle_norm {
            hidden_size
        } else {
            cfg.hidden_size
        };
        Ok(Self {
            norm: LayerNorm::new(norm_dim, vb.pp("norm"))?,
            linear_fc1: candle_nn::linear(hidden_size, hidden_size, vb.pp("linear_fc1"))?,
            linear_fc2: candle_nn::linear(hidden_size, cfg.out_hidden_size, vb.pp("linear_fc2"))?,
            use_postshuffle_norm,
            hidden_size,
        })
    }

    /// `[Np, Dv]` → `[Np/m², out_hidden_size]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / self.hidden_size;
        let x = if self.use_postshuffle_norm {
            self.norm.forward(&x.reshape((rows, self.hidden_size))?)?
        } else {
            self.norm.forward(x)?.reshape((rows, self.hidden_size))?
        };
        let x = linear_layer(&self.linear_fc1, &x)?.gelu_erf()?;
        linear_layer(&self.linear_fc2, &x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use std::collections::HashMap;

    /// Query chunking must not change a number: same output with the whole score block and with
    /// a budget that forces a chunk of a few rows.
    #[test]
    fn chunked_attention_equals_whole() -> Result<()> {
        let dev = Device::Cpu;
        let (dim, heads) = (16, 2);
        let mut tensors = HashMap::new();
        for (name, shape) in [
            ("qkv.weight", vec![3 * dim, dim]),
            ("qkv.bias", vec![3 * dim]),
            ("proj.weight", vec![dim, dim]),
            ("proj.bias", vec![dim]),
        ] {
            tensors.insert(name.to_string(), Tensor::randn(0f32, 1.0, shape, &dev)?);
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let cfg = VisionConfig {
            depth: 1,
            hidden_size: dim,
            intermediate_size: 8,
            num_heads: heads,
            in_channels: 3,
            patch_size: 2,
            temporal_patch_size: 2,
            spatial_merge_size: 2,
            out_hidden_size: 8,
            num_position_embeddings: 16,
            deepstack_visual_indexes: vec![],
            hidden_act: "gelu_pytorch_tanh".into(),
            rope_theta: 10_000.0,
        };
        let mut attn = VisionAttention::new(&cfg, vb)?;
        // An image of 12 patches, then a video of 3 frames of 8.
        let segments = [
            Segments {
                start: 0,
                frames: 1,
                len: 12,
            },
            Segments {
                start: 12,
                frames: 3,
                len: 8,
            },
        ];
        let n = 36;
        let x = Tensor::randn(0f32, 1.0, (n, dim), &dev)?;
        let angles = Tensor::randn(0f32, 1.0, (n, dim / heads / 2), &dev)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        let whole = attn.forward(&x, &cos, &sin, &segments)?;
        attn.max_score_elems = 2 * heads * 3 * 8; // 2-row chunks for the image, 1-row for the video
        let chunked = attn.forward(&x, &cos, &sin, &segments)?;
        let diff = (whole - chunked)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }
}
