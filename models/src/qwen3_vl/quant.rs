//! In-situ quantization of the text decoder's linear layers at load (Q8_0, Q4_K through candle's
//! quantized matmul, the ggml block formats). The vision tower, embeddings, norms and the MoE
//! router stay in the load dtype: they are small or precision-sensitive.
//!
//! A weight whose input width is not a multiple of the format's block (32 for Q8_0, 256 for
//! Q4_K) cannot be quantized; that layer stays unquantized and says so through
//! [`Linear::is_quantized`].

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
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

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Q8_0 => "q8_0",
            Self::Q4K => "q4k",
        }
    }
}

/// A bias-free linear layer `x · Wᵀ`, dense or quantized.
#[derive(Debug, Clone)]
pub enum Linear {
    Dense(candle_nn::Linear),
    Quantized(QMatMul),
}

impl Linear {
    /// Loads `weight` `[out, in]` from `vb` and quantizes it if `quant` asks and the width allows.
    pub fn load(in_dim: usize, out_dim: usize, quant: Quant, vb: VarBuilder) -> Result<Self> {
        Self::from_weight(vb.get((out_dim, in_dim), "weight")?, quant)
    }

    /// `weight` `[out, in]` (any layout).
    pub fn from_weight(weight: Tensor, quant: Quant) -> Result<Self> {
        let in_dim = weight.dim(1)?;
        match quant.ggml() {
            Some(g) if in_dim.is_multiple_of(g.block_size()) => {
                let q = if weight.device().is_cpu() {
                    if quant == Quant::Q4K {
                        quantize_rows::<BlockQ4K>(&weight)?
                    } else {
                        quantize_rows::<BlockQ8_0>(&weight)?
                    }
                } else {
                    // The device kernels quantize from a whole f32 tensor in device memory.
                    QTensor::quantize(&weight.to_dtype(DType::F32)?.contiguous()?, g)?
                };
                Ok(Self::Quantized(QMatMul::from_qtensor(q)?))
            }
            _ => Ok(Self::Dense(candle_nn::Linear::new(weight, None))),
        }
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self, Self::Quantized(_))
    }

    /// The dense weight `[out, in]`, if this layer is not quantized.
    pub fn dense_weight(&self) -> Option<&Tensor> {
        match self {
            Self::Dense(l) => Some(l.weight()),
            Self::Quantized(_) => None,
        }
    }

    /// `x` `[..., in]` → `[..., out]` in `x`'s dtype. The quantized kernels take f32 rows.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(l) => super::cpu_mm::linear_layer(l, x),
            Self::Quantized(q) => {
                let dtype = x.dtype();
                let y = q.forward(&x.to_dtype(DType::F32)?.contiguous()?)?;
                Ok(y.to_dtype(dtype)?)
            }
        }
    }
}

/// f32 elements widened at a time while quantizing: a bounded scratch instead of an f32 copy
/// of the whole weight (which, for a 150k-row lm_head, is twice the bf16 weight itself).
const QUANT_CHUNK_ELEMS: usize = 1 << 20;

/// Quantizes `weight` `[out, in]` (any layout, `in` a multiple of `B`'s block) a few rows at a
/// time into one block buffer that becomes the tensor's storage. Blocks never straddle rows,
/// so the blocks are exactly those `QTensor::quantize` makes from the whole f32 tensor.
fn quantize_rows<B: GgmlType + Send + Sync + 'static>(weight: &Tensor) -> Result<QTensor> {
    let (rows, cols) = weight.dims2()?;
    let blocks_per_row = cols / B::BLCK_SIZE;
    let mut blocks = vec![B::zeros(); rows * blocks_per_row];
    let step = (QUANT_CHUNK_ELEMS / cols).max(1);
    let mut r = 0;
    while r < rows {
        let n = step.min(rows - r);
        let chunk = weight
            .narrow(0, r, n)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        B::from_float(
            &chunk,
            &mut blocks[r * blocks_per_row..(r + n) * blocks_per_row],
        );
        r += n;
    }
    Ok(QTensor::new(QStorage::Cpu(Box::new(blocks)), (rows, cols))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
        let w = Tensor::randn(0f32, 0.05, (96, 512), &dev)?;
        let x = Tensor::randn(0f32, 1.0, (5, 512), &dev)?;
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
                GgmlDType::Q8_0 => quantize_rows::<BlockQ8_0>(&w)?,
                _ => quantize_rows::<BlockQ4K>(&w)?,
            };
            assert_eq!(chunked.shape(), whole.shape());
            assert!(chunked.data()? == whole.data()?, "{g:?} blocks differ");
        }
        let wt = Tensor::randn(0f32, 0.05, (512, 96), &dev)?.t()?;
        let whole = QTensor::quantize(&wt.contiguous()?, GgmlDType::Q8_0)?;
        assert!(quantize_rows::<BlockQ8_0>(&wt)?.data()? == whole.data()?);
        Ok(())
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
