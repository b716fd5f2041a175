//! In-situ quantization of the text decoder's linear layers at load (Q8_0, Q4_K through candle's
//! quantized matmul, the ggml block formats). The vision tower, embeddings, norms and the MoE
//! router stay in the load dtype: they are small or precision-sensitive.
//!
//! A weight whose input width is not a multiple of the format's block (32 for Q8_0, 256 for
//! Q4_K) cannot be quantized; that layer stays unquantized and says so through
//! [`Linear::is_quantized`].

use std::sync::Arc;

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::qgemv::{PackedQ4K, PackedQ8, QWeight};
use super::weights::{rows_name, serves_rows};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the decoder's linear weights are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quant {
    /// As loaded (the run's dtype).
    #[default]
    None,
    /// 8-bit blocks of 32 with one f16 scale (8.5 bits per weight).
    Q8_0,
    /// 4-bit super-blocks of 256 with 6-bit sub-block scales (4.5 bits per weight).
    Q4K,
}

impl std::str::FromStr for Quant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "q8_0" | "q8" => Ok(Self::Q8_0),
            "q4k" | "q4_k" => Ok(Self::Q4K),
            other => Err(Error::bad_config(
                "quant",
                format!("`{other}` is not one of none, q8_0, q4k"),
            )),
        }
    }
}

impl Quant {
    fn ggml(self) -> Option<GgmlDType> {
        match self {
            Self::None => None,
            Self::Q8_0 => Some(GgmlDType::Q8_0),
            Self::Q4K => Some(GgmlDType::Q4K),
        }
    }

    /// Elements per quantization block (the input width must be a multiple of it).
    pub fn block_size(self) -> Option<usize> {
        self.ggml().map(|g| g.block_size())
    }

    /// Bytes one weight takes in this format (ggml's block sizes: 34 per 32 for Q8_0, 144 per
    /// 256 for Q4_K); `None` for [`Quant::None`].
    pub fn bytes_per_weight(self) -> Option<f64> {
        self.ggml()
            .map(|g| g.type_size() as f64 / g.block_size() as f64)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Q8_0 => "q8_0",
            Self::Q4K => "q4k",
        }
    }
}

/// (input width, parameters) of every matrix of the decoder layers that a load may quantize:
/// attention (q, k and v as two entries, o) and the MLP or the experts; with `per_token`, only
/// the `num_experts_per_tok` experts one token goes through.
fn decoder_matrices(cfg: &super::Config, per_token: bool) -> Vec<(usize, u64)> {
    let t = &cfg.text;
    let (d, hd) = (t.hidden_size, t.head_dim);
    let mut mats = Vec::new();
    let mut push = |input: usize, parameters: usize| mats.push((input, parameters as u64));
    for layer in 0..t.num_hidden_layers {
        push(d, d * t.num_attention_heads * hd);
        push(d, 2 * d * t.num_key_value_heads * hd);
        push(t.num_attention_heads * hd, t.num_attention_heads * hd * d);
        match &t.moe {
            Some(m) if t.is_moe_layer(layer) => {
                let e = if per_token {
                    m.num_experts_per_tok
                } else {
                    m.num_experts
                };
                let i = m.moe_intermediate_size;
                push(d, e * 2 * i * d);
                push(i, e * i * d);
            }
            _ => {
                push(d, 2 * d * t.intermediate_size);
                push(t.intermediate_size, t.intermediate_size * d);
            }
        }
    }
    mats
}

/// Bytes of weights one decode step reads: every attention matrix, the MLP or the chosen
/// experts (and the router), and the lm_head, each quantized where the loader quantizes it
/// (ggml's block sizes; the packed Q4_K layout holds 148 bytes per 256 weights where ggml
/// holds 144) and at `dtype_bytes` per weight otherwise. Norms, biases and the one embedding
/// row are left out (under 0.1 % of the 30B-A3B's step). Decode is bound by reading these,
/// so `bytes × tokens/s` against a measured read bandwidth says how close it runs to it.
pub fn decode_weight_bytes(cfg: &super::Config, dtype_bytes: u64, quant: Quant) -> u64 {
    let t = &cfg.text;
    let bytes = |input: usize, parameters: u64| -> f64 {
        match (quant.block_size(), quant.bytes_per_weight()) {
            (Some(block), Some(b)) if input.is_multiple_of(block) => parameters as f64 * b,
            _ => (parameters * dtype_bytes) as f64,
        }
    };
    let mut total: f64 = decoder_matrices(cfg, true)
        .into_iter()
        .map(|(input, n)| bytes(input, n))
        .sum();
    if let Some(m) = &t.moe {
        let routers = (0..t.num_hidden_layers)
            .filter(|&l| t.is_moe_layer(l))
            .count();
        total += (routers * m.num_experts * t.hidden_size) as f64 * dtype_bytes as f64;
    }
    total += bytes(t.hidden_size, (t.vocab_size * t.hidden_size) as u64);
    total.ceil() as u64
}

/// How many of a model's parameters a load with some [`Quant`] holds quantized, by the rule the
/// loader applies: the decoder's attention, MLP and expert matrices and the lm_head, each if its
/// input width is a multiple of the format's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuantizedParameters {
    /// Stored parameters held quantized instead of at the load dtype.
    pub replaced: u64,
    /// Parameters held quantized in addition: the lm_head of a model whose lm_head is its
    /// embeddings (the embeddings themselves stay at the load dtype).
    pub added: u64,
}

impl QuantizedParameters {
    /// Counts them from the config. `lm_head_stored`: the checkpoint has its own
    /// `lm_head.weight` (it is used even when the config says tied).
    pub fn count(cfg: &super::Config, quant: Quant, lm_head_stored: bool) -> Self {
        let Some(block) = quant.block_size() else {
            return Self::default();
        };
        let t = &cfg.text;
        let d = t.hidden_size;
        let fits = |input: usize| input.is_multiple_of(block);
        let mut out = Self {
            replaced: decoder_matrices(cfg, false)
                .iter()
                .filter(|&&(input, _)| fits(input))
                .map(|&(_, n)| n)
                .sum(),
            added: 0,
        };
        if fits(d) {
            let lm_head = (t.vocab_size * d) as u64;
            if lm_head_stored {
                out.replaced += lm_head;
            } else {
                out.added = lm_head;
            }
        }
        out
    }

    /// Bytes of weights of a model of `parameters` (as stored) loaded at `dtype_bytes` per
    /// parameter with these quantized as `quant`.
    pub fn weight_bytes(&self, parameters: u64, dtype_bytes: u64, quant: Quant) -> u64 {
        let Some(q) = quant.bytes_per_weight() else {
            return parameters * dtype_bytes;
        };
        let replaced = self.replaced.min(parameters);
        (parameters - replaced) * dtype_bytes + ((replaced + self.added) as f64 * q).ceil() as u64
    }
}

/// A bias-free linear layer `x · Wᵀ`, dense or quantized.
#[derive(Debug, Clone)]
pub enum Linear {
    Dense(candle_nn::Linear),
    /// On the CPU: the ggml blocks, multiplied in place by [`super::qgemv`] (never repacked, so
    /// held once).
    Blocks(Arc<QWeight>),
    /// On a GPU: candle's quantized matmul.
    Quantized(QMatMul),
}

impl Linear {
    /// Loads `weight` `[out, in]` from `vb` and quantizes it if `quant` asks and the width allows.
    ///
    /// Quantized on the CPU from a checkpoint, the weight is read a few rows at a time (see
    /// [`QUANT_CHUNK_ELEMS`]), so its full-precision copy is never held whole.
    pub fn load(in_dim: usize, out_dim: usize, quant: Quant, vb: VarBuilder) -> Result<Self> {
        let streams = quant.block_size().is_some_and(|b| in_dim.is_multiple_of(b))
            && vb.device().is_cpu()
            && serves_rows(&vb, "weight", out_dim);
        if !streams {
            return Self::from_weight(vb.get((out_dim, in_dim), "weight")?, quant);
        }
        let fetch = |r: usize, n: usize| -> Result<Tensor> {
            vb.get((n, in_dim), &rows_name("weight", r, r + n))
                .or_else(|err| {
                    // A wrong width is reported against the whole tensor, before any read.
                    vb.get((out_dim, in_dim), "weight").and(Err(err))
                })
                .map_err(Error::from)
        };
        cpu_quantized(quant, (out_dim, in_dim), &fetch)
    }

    /// `weight` `[out, in]` (any layout).
    pub fn from_weight(weight: Tensor, quant: Quant) -> Result<Self> {
        let in_dim = weight.dim(1)?;
        match quant.ggml() {
            Some(g) if in_dim.is_multiple_of(g.block_size()) => {
                if !weight.device().is_cpu() {
                    // The device kernels quantize from a whole f32 tensor in device memory.
                    let q = QTensor::quantize(&weight.to_dtype(DType::F32)?.contiguous()?, g)?;
                    return Ok(Self::Quantized(QMatMul::from_qtensor(q)?));
                }
                cpu_quantized(quant, weight.dims2()?, &|r, n| Ok(weight.narrow(0, r, n)?))
            }
            _ => Ok(Self::Dense(candle_nn::Linear::new(weight, None))),
        }
    }

    /// Bytes of the quantized blocks this layer holds on the CPU (0 for a device layer, whose
    /// memory is the device's). `None` if dense.
    pub fn held_block_bytes(&self) -> Option<usize> {
        match self {
            Self::Blocks(q) => Some(q.bytes()),
            Self::Quantized(_) => Some(0),
            Self::Dense(_) => None,
        }
    }

    pub fn is_quantized(&self) -> bool {
        !matches!(self, Self::Dense(_))
    }

    /// The dense weight `[out, in]`, if this layer is not quantized.
    pub fn dense_weight(&self) -> Option<&Tensor> {
        match self {
            Self::Dense(l) => Some(l.weight()),
            Self::Blocks(_) | Self::Quantized(_) => None,
        }
    }

    /// The CPU blocks, if this layer has them.
    pub fn blocks(&self) -> Option<&QWeight> {
        match self {
            Self::Blocks(q) => Some(q),
            Self::Dense(_) | Self::Quantized(_) => None,
        }
    }

    /// `x` `[..., in]` → `[..., out]` in `x`'s dtype. The quantized kernels take f32 rows.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(l) => super::cpu_mm::linear_layer(l, x),
            Self::Blocks(q) => {
                let (rows, cols) = q.dims();
                let mut dims = x.dims().to_vec();
                let m = x.elem_count() / cols.max(1);
                if dims.last() != Some(&cols) {
                    return Err(Error::from(candle_core::Error::ShapeMismatchBinaryOp {
                        lhs: x.shape().clone(),
                        rhs: (rows, cols).into(),
                        op: "quantized linear",
                    }));
                }
                if m >= DEQUANTIZED_GEMM_ROWS && super::cpu_mm::onednn_bf16(x) {
                    // Many rows in bf16 (a prefill): one bf16 GEMM on the dequantized weight,
                    // held only for this product.
                    let w = Tensor::from_vec(q.dequantize_bf16(), (rows, cols), x.device())?;
                    return super::cpu_mm::linear(x, &w);
                }
                let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let mut out = vec![0f32; m * rows];
                q.matmul(&xs, m, &mut out);
                *dims.last_mut().expect("checked above") = rows;
                Ok(Tensor::from_vec(out, dims, x.device())?.to_dtype(x.dtype())?)
            }
            Self::Quantized(q) => {
                let dtype = x.dtype();
                let x = x.to_dtype(DType::F32)?.contiguous()?;
                Ok(q.forward(&x)?.to_dtype(dtype)?)
            }
        }
    }
}

/// From this many activation rows on, a quantized product dequantizes its weight to bf16 and
/// runs oneDNN's GEMM (where bf16 GEMMs run natively): the block dot products cost the same per
/// row whatever the row count, the GEMM far less (30B-A3B shape, Q8_0 prefill 512: 277 tok/s
/// through the dot products, where llama.cpp's Q8_0 reached 773). Since the packed kernels
/// share each weight load between four rows, 64 beats 32 (prefill 128 / 512 of that shape,
/// back to back: Q4_K 447 / 499 and 424 / 469 → 454 / 504 and 460 / 496 tok/s; Q8_0 399 / 457
/// and 370 / 447 → 416 / 467 and 404 / 488).
pub(crate) const DEQUANTIZED_GEMM_ROWS: usize = 64;

/// Rows `first..first + n` of a weight being quantized.
type Fetch<'a> = dyn Fn(usize, usize) -> Result<Tensor> + 'a;

/// A `[rows, cols]` CPU weight, whose rows `fetch` provides, quantized as `quant` into blocks.
fn cpu_quantized(quant: Quant, (rows, cols): (usize, usize), fetch: &Fetch) -> Result<Linear> {
    let q = if quant == Quant::Q4K && super::q4k_packed::available() {
        let mut packed = PackedQ4K::zeroed(rows, cols);
        quantize_chunks::<BlockQ4K>((rows, cols), fetch, |r, blocks| packed.pack_rows(r, blocks))?;
        QWeight::Q4KPacked(packed)
    } else if quant == Quant::Q4K {
        QWeight::Q4K {
            blocks: quantize_fetched::<BlockQ4K>((rows, cols), fetch)?,
            rows,
            cols,
        }
    } else if super::q8_packed::available() {
        let mut packed = PackedQ8::zeroed(rows, cols);
        quantize_chunks::<BlockQ8_0>((rows, cols), fetch, |r, blocks| packed.pack_rows(r, blocks))?;
        QWeight::Q8_0Packed(packed)
    } else {
        QWeight::Q8_0 {
            blocks: quantize_fetched::<BlockQ8_0>((rows, cols), fetch)?,
            rows,
            cols,
        }
    };
    Ok(Linear::Blocks(Arc::new(q)))
}

/// A block format the loader quantizes into: candle's `from_float`'s blocks, written faster
/// (Q8_0 in vectors where the CPU has AVX-512, [`super::q8_acts::quantize_blocks`]; Q4_K eight
/// sub-blocks at a time, [`super::q4k_quantize`]).
trait LoadQuantize: GgmlType + Send {
    fn quantize(xs: &[f32], ys: &mut [Self]);
}

impl LoadQuantize for BlockQ8_0 {
    fn quantize(xs: &[f32], ys: &mut [Self]) {
        super::q8_acts::quantize_blocks(xs, ys)
    }
}

impl LoadQuantize for BlockQ4K {
    fn quantize(xs: &[f32], ys: &mut [Self]) {
        super::q4k_quantize::from_float(xs, ys)
    }
}

/// f32 elements widened at a time while quantizing: a bounded scratch instead of an f32 copy
/// of the whole weight (which, for a 150k-row lm_head, is twice the bf16 weight itself).
const QUANT_CHUNK_ELEMS: usize = 1 << 20;

/// Quantizes `weight` `[out, in]` (any layout, `in` a multiple of `B`'s block) a few rows at a
/// time into one block buffer that becomes the tensor's storage. Blocks never straddle rows,
/// so the blocks are exactly those `QTensor::quantize` makes from the whole f32 tensor.
#[cfg(test)]
fn quantize_rows<B: LoadQuantize>(weight: &Tensor) -> Result<Vec<B>> {
    quantize_fetched::<B>(weight.dims2()?, &|r, n| Ok(weight.narrow(0, r, n)?))
}

/// [`quantize_rows`] of a `[rows, cols]` weight whose rows `fetch(first, n)` provides, so a
/// weight read from a file is never held whole.
fn quantize_fetched<B: LoadQuantize>(
    (rows, cols): (usize, usize),
    fetch: &Fetch,
) -> Result<Vec<B>> {
    let blocks_per_row = cols / B::BLCK_SIZE;
    let mut blocks = Vec::with_capacity(rows * blocks_per_row);
    quantize_chunks::<B>((rows, cols), fetch, |_, chunk| {
        blocks.extend_from_slice(chunk)
    })?;
    Ok(blocks)
}

/// Quantizes the rows `fetch` provides a chunk at a time, handing each chunk's blocks to
/// `sink(first_row, blocks)` in row order.
fn quantize_chunks<B: LoadQuantize>(
    (rows, cols): (usize, usize),
    fetch: &Fetch,
    mut sink: impl FnMut(usize, &[B]),
) -> Result<()> {
    let blocks_per_row = cols / B::BLCK_SIZE;
    let step = (QUANT_CHUNK_ELEMS / cols).max(1);
    let mut blocks = vec![B::zeros(); step.min(rows) * blocks_per_row];
    let mut r = 0;
    while r < rows {
        let n = step.min(rows - r);
        let chunk = fetch(r, n)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let out = &mut blocks[..n * blocks_per_row];
        // Row by row on all threads: quantizing (Q4_K's search for scales above all) is most
        // of a quantized load's time.
        out.par_chunks_mut(blocks_per_row.max(1))
            .zip(chunk.par_chunks(cols))
            .for_each(|(out, row)| B::quantize(row, out));
        sink(r, out);
        r += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Normal values (Box–Muller over a fixed LCG): the error bounds below are checked on the
    /// same numbers every run.
    fn seeded(shape: &[usize], std: f32, seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed;
        let mut uniform = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 + 0.5) / (1u32 << 24) as f32
        };
        let v: Vec<f32> = (0..n)
            .map(|_| {
                let (a, b) = (uniform(), uniform());
                std * (-2.0 * a.ln()).sqrt() * (std::f32::consts::TAU * b).cos()
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
        let num: f32 = (got - want)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        let den: f32 = want.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        (num / den).sqrt()
    }

    /// Quantized products stay close to the dense ones, Q8_0 closer than Q4_K; widths that do
    /// not fit the block stay dense and exact.
    #[test]
    fn quantized_linear_error_is_bounded() -> Result<()> {
        let dev = Device::Cpu;
        let w = seeded(&[96, 512], 0.05, 1);
        let x = seeded(&[5, 512], 1.0, 2);
        let want = x.matmul(&w.t()?)?;
        let q8 = Linear::from_weight(w.clone(), Quant::Q8_0)?;
        let q4 = Linear::from_weight(w.clone(), Quant::Q4K)?;
        assert!(q8.is_quantized() && q4.is_quantized());
        let (e8, e4) = (
            rel_err(&q8.forward(&x)?, &want),
            rel_err(&q4.forward(&x)?, &want),
        );
        // Measured: ≈0.004 (Q8_0, whose activations are also quantized to 8 bits) and ≈0.04
        // (Q4_K); the bounds leave room for other random draws.
        assert!(e8 < 0.02, "q8_0 relative error {e8}");
        assert!(e4 < 0.1, "q4k relative error {e4}");
        assert!(e8 < e4);
        // bf16 activations come back in bf16.
        let y = q8.forward(&x.to_dtype(DType::BF16)?)?;
        assert_eq!(y.dtype(), DType::BF16);
        assert_eq!(y.dims(), &[5, 96]);

        // Many bf16 rows take the dequantized bf16 GEMM where oneDNN serves bf16: the same error
        // bounds against the f32 product, in both formats.
        let x = seeded(&[DEQUANTIZED_GEMM_ROWS + 8, 512], 1.0, 3);
        let want = x.matmul(&w.t()?)?;
        let xb = x.to_dtype(DType::BF16)?;
        let (e8, e4) = (
            rel_err(&q8.forward(&xb)?.to_dtype(DType::F32)?, &want),
            rel_err(&q4.forward(&xb)?.to_dtype(DType::F32)?, &want),
        );
        assert!(e8 < 0.02, "q8_0 relative error with many rows {e8}");
        assert!(e4 < 0.1, "q4k relative error with many rows {e4}");

        // 80 is no multiple of 32: the layer stays dense and its product is the plain one.
        let w = Tensor::randn(0f32, 0.05, (16, 80), &dev)?;
        let x = Tensor::randn(0f32, 1.0, (3, 80), &dev)?;
        let l = Linear::from_weight(w.clone(), Quant::Q8_0)?;
        assert!(!l.is_quantized());
        let diff: f32 = (l.forward(&x)? - x.matmul(&w.t()?)?)?
            .abs()?
            .max_all()?
            .to_scalar()?;
        assert_eq!(diff, 0.0);
        // 256 fits Q8_0 but not Q4_K's 256-blocks only when it is a multiple: 288 is not.
        let w = Tensor::randn(0f32, 0.05, (8, 288), &dev)?;
        assert!(Linear::from_weight(w.clone(), Quant::Q8_0)?.is_quantized());
        assert!(!Linear::from_weight(w, Quant::Q4K)?.is_quantized());
        Ok(())
    }

    /// Row-chunked quantization makes the very blocks candle makes from the whole f32 tensor,
    /// also across chunk boundaries, for bf16 weights and transposed views.
    #[test]
    fn chunked_quantization_matches_whole() -> Result<()> {
        let dev = Device::Cpu;
        // 4100 rows of 512: more than one chunk, with a partial last one.
        let w = Tensor::randn(0f32, 0.05, (4100, 512), &dev)?.to_dtype(DType::BF16)?;
        for g in [GgmlDType::Q8_0, GgmlDType::Q4K] {
            let whole = QTensor::quantize(&w.to_dtype(DType::F32)?, g)?;
            let chunked = match g {
                GgmlDType::Q8_0 => as_bytes(&quantize_rows::<BlockQ8_0>(&w)?),
                _ => as_bytes(&quantize_rows::<BlockQ4K>(&w)?),
            };
            assert!(chunked == whole.data()?.to_vec(), "{g:?} blocks differ");
        }
        let wt = Tensor::randn(0f32, 0.05, (512, 96), &dev)?.t()?;
        let whole = QTensor::quantize(&wt.contiguous()?, GgmlDType::Q8_0)?;
        assert!(as_bytes(&quantize_rows::<BlockQ8_0>(&wt)?) == whole.data()?.to_vec());
        Ok(())
    }

    /// The CPU layers' products agree with candle's own quantized matmul of the same blocks
    /// and are no further from the dense product. (On x86 with AVX-512-VNNI candle quantizes
    /// Q8_0 activations with one scale per 256 values instead of per 32, and the packed Q4_K
    /// kernel quantizes them per 32 where candle's Q8_K has one scale per 256, hence the
    /// looser bounds there.) One row and many, bf16 and f32 activations; the layer holds the
    /// blocks once (the packed Q4_K adds its unpacked scales: 148 bytes per 256 values, not
    /// 144).
    #[test]
    fn cpu_products_agree_with_candles_qmatmul() -> Result<()> {
        let dev = Device::Cpu;
        for (quant, g, out, inp, bound) in [
            (Quant::Q8_0, GgmlDType::Q8_0, 48, 512, 0.02),
            (
                Quant::Q4K,
                GgmlDType::Q4K,
                32,
                512,
                if super::super::q4k_packed::available() {
                    0.02
                } else {
                    1e-5
                },
            ),
            (Quant::Q8_0, GgmlDType::Q8_0, 19, 288, 0.02),
        ] {
            let w = seeded(&[out, inp], 0.05, out as u32);
            let ours = Linear::from_weight(w.clone(), quant)?;
            assert!(matches!(ours, Linear::Blocks(_)));
            let plain = QMatMul::from_qtensor(QTensor::quantize(&w, g)?)?;
            for m in [1, 5, 40] {
                let x = seeded(&[2, m, inp], 1.0, 100 + m as u32);
                let got = ours.forward(&x)?;
                assert_eq!(got.dims(), &[2, m, out]);
                let theirs = plain.forward(&x)?;
                let e = rel_err(&got, &theirs);
                assert!(e < bound, "{quant:?} {out}x{inp}, {m} rows: {e}");
                let dense = x.broadcast_matmul(&w.t()?)?;
                let (e_ours, e_theirs) = (rel_err(&got, &dense), rel_err(&theirs, &dense));
                assert!(
                    e_ours <= e_theirs * 1.01,
                    "{quant:?} {out}x{inp}, {m} rows: {e_ours} vs candle's {e_theirs}"
                );
                let gb = ours.forward(&x.to_dtype(DType::BF16)?)?;
                assert_eq!(gb.dtype(), DType::BF16);
                let e = rel_err(&gb.to_dtype(DType::F32)?, &got);
                assert!(e < 0.02, "bf16 activations: {e}");
            }
            let full = inp / g.block_size() * out * g.type_size();
            let held = ours.held_block_bytes().expect("a CPU layer");
            let packed_q4k = quant == Quant::Q4K && super::super::q4k_packed::available();
            let want = if packed_q4k { full / 144 * 148 } else { full };
            assert_eq!(held, want, "{quant:?} {out}x{inp}");
            // A wrong width is an error, not a panic.
            let bad = Tensor::zeros((1, inp + 32), DType::F32, &dev)?;
            assert!(ours.forward(&bad).is_err());
        }
        Ok(())
    }

    fn as_bytes<B>(blocks: &[B]) -> Vec<u8> {
        // SAFETY: ggml blocks are repr(C) plain data; reading their bytes is what candle's
        // QTensor::data does.
        unsafe {
            std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks))
        }
        .to_vec()
    }

    /// A decode step of the 30B-A3B shape (4 layers) reads, per layer, q 2048×4096, k and v
    /// 2048×512 each, o 4096×2048, 8 of the 128 experts (3 × 2048×768 each) and the router
    /// 128×2048, then the 151936×2048 lm_head: 538 705 920 weights; the 2B (hidden 2048,
    /// MLP 6144, 16 heads, 8 kv heads of 128) has no router and a tied lm_head.
    #[test]
    fn decode_weight_bytes_of_the_released_shapes() {
        use super::super::synthetic::{Preset, Synthetic};
        let cfg = |preset| {
            let s = Synthetic::new(preset, Some(4), Some(1), DType::BF16).unwrap();
            super::super::Config::from_json(&s.config_json().to_string()).unwrap()
        };
        let moe = cfg(Preset::Qwen3Vl30bA3b);
        let (weights, router) = (538_705_920u64, 4 * 128 * 2048u64);
        assert_eq!(decode_weight_bytes(&moe, 2, Quant::None), 2 * weights);
        assert_eq!(decode_weight_bytes(&moe, 4, Quant::None), 4 * weights);
        let quantized = weights - router;
        assert_eq!(
            decode_weight_bytes(&moe, 2, Quant::Q8_0),
            quantized / 32 * 34 + 2 * router
        );
        assert_eq!(
            decode_weight_bytes(&moe, 2, Quant::Q4K),
            quantized / 256 * 144 + 2 * router
        );
        let dense = cfg(Preset::Qwen3Vl2b);
        let per_layer = 2048 * 2048 + 2 * 2048 * 1024 + 2048 * 2048 + 3 * 2048 * 6144u64;
        let weights = 4 * per_layer + 151_936 * 2048;
        assert_eq!(decode_weight_bytes(&dense, 2, Quant::None), 2 * weights);
        assert_eq!(
            decode_weight_bytes(&dense, 2, Quant::Q8_0),
            weights / 32 * 34
        );
    }

    /// The count follows the loader's rule: on the MoE fixture (D 64, expert width 40) Q8_0
    /// quantizes everything but the experts' down_proj; the estimate matches what a load holds.
    #[test]
    fn quantized_parameter_count_follows_the_width_rule() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models/moe-hub");
        let cfg = super::super::Config::from_dir(&dir).unwrap();
        let t = &cfg.text;
        let m = t.moe.as_ref().unwrap();
        assert_eq!(
            (t.hidden_size, !m.moe_intermediate_size.is_multiple_of(32)),
            (64, true)
        );
        let q8 = QuantizedParameters::count(&cfg, Quant::Q8_0, true);
        // Count the fixture's layers as the loader builds them.
        let (d, hd) = (t.hidden_size, t.head_dim);
        let mut want = 0;
        for layer in 0..t.num_hidden_layers {
            want += d * (t.num_attention_heads + 2 * t.num_key_value_heads) * hd
                + t.num_attention_heads * hd * d;
            want += if t.is_moe_layer(layer) {
                m.num_experts * 2 * m.moe_intermediate_size * d
            } else {
                3 * d * t.intermediate_size
            };
        }
        want += t.vocab_size * d;
        assert_eq!(q8.replaced, want as u64);
        assert_eq!(q8.added, 0);
        let tied = QuantizedParameters::count(&cfg, Quant::Q8_0, false);
        assert_eq!(tied.added, (t.vocab_size * d) as u64);
        // Q4_K: no fixture width is a multiple of 256.
        assert_eq!(
            QuantizedParameters::count(&cfg, Quant::Q4K, true),
            QuantizedParameters::default()
        );
        assert_eq!(
            QuantizedParameters::default().weight_bytes(1000, 2, Quant::None),
            2000
        );
        let q = QuantizedParameters {
            replaced: 640,
            added: 64,
        };
        // 360 at bf16, 704 at 34/32 bytes.
        assert_eq!(q.weight_bytes(1000, 2, Quant::Q8_0), 720 + 748);
        assert_eq!(Quant::Q4K.bytes_per_weight(), Some(144.0 / 256.0));
    }

    #[test]
    fn names_parse() {
        assert_eq!("q8_0".parse::<Quant>().unwrap(), Quant::Q8_0);
        assert_eq!("Q4K".parse::<Quant>().unwrap(), Quant::Q4K);
        assert_eq!("q4_k".parse::<Quant>().unwrap(), Quant::Q4K);
        assert!("q3"
            .parse::<Quant>()
            .unwrap_err()
            .to_string()
            .contains("q3"));
    }
}
