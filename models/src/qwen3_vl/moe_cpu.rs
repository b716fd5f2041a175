//! The experts of a MoE layer with bf16 activations on the CPU, one rayon task per chosen expert.
//!
//! Why: with 128 experts and 8 per token, a 512-token prompt gives each expert ~32 rows. Split
//! over threads, each of those small products paid for packing its weight twice and for a
//! thread hand-off (30B-A3B shape: prefill 512 at 0.65× llama.cpp). Here a task takes all the
//! rows of one expert — gather, gate/up product, SiLU·up, down product, routing weight — on its
//! own thread, reading that expert's weights once.
//!
//! Numbers are those of [`super::moe::Experts::forward`]: each contribution `w · y` is formed and
//! rounded in bf16, the k contributions of a token are summed in f32 in ascending expert order
//! (the order of its index_add), and the sum is rounded once.

use candle_core::{Device, Tensor};
use half::bf16;
use rayon::prelude::*;

use super::cpu_mm;
use super::cpu_ops;
use super::qgemv::QWeight;
use super::quant::DEQUANTIZED_GEMM_ROWS;
use crate::Result;

/// One expert matrix: a bf16 `[out, in]` view (either storage layout), or quantized blocks.
pub enum Weight<'a> {
    Dense(Tensor),
    Blocks(&'a QWeight),
}

impl Weight<'_> {
    /// `x` `[m, in]` → `[m, out]` bf16 on the calling thread (quantized products with few rows
    /// may still spread over idle threads).
    fn product(&self, x: &[bf16], m: usize) -> Result<Vec<bf16>> {
        match self {
            Self::Dense(w) => cpu_mm::linear_serial(x, m, w),
            Self::Blocks(q) if m >= DEQUANTIZED_GEMM_ROWS => {
                let w = Tensor::from_vec(q.dequantize_bf16(), q.dims(), &Device::Cpu)?;
                cpu_mm::linear_serial(x, m, &w)
            }
            Self::Blocks(q) => {
                let xs: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
                let mut out = vec![0f32; m * q.dims().0];
                q.matmul(&xs, m, &mut out);
                Ok(out.into_iter().map(bf16::from_f32).collect())
            }
        }
    }
}

/// One expert's weights and its routed rows.
pub struct Expert<'a> {
    pub gate_up: &'a Weight<'a>,
    pub down: &'a Weight<'a>,
    /// Token indices, ascending.
    pub tokens: &'a [u32],
    /// Routing weight of each token, renormalised in f32.
    pub weights: &'a [f32],
}

/// `x` `[N, D]` bf16 through the given experts (those with at least one token, ascending id);
/// returns `[N, D]` bf16.
pub fn forward(x: &Tensor, experts: &[Expert], intermediate: usize) -> Result<Tensor> {
    let (n, d) = x.dims2()?;
    let i = intermediate;
    let contributions: Vec<Vec<bf16>> = cpu_mm::with_bf16(x, |xs| {
        experts
            .par_iter()
            .map(|e| -> Result<Vec<bf16>> {
                let m = e.tokens.len();
                let mut xe = Vec::with_capacity(m * d);
                for &t in e.tokens {
                    xe.extend_from_slice(&xs[t as usize * d..][..d]);
                }
                let gu = e.gate_up.product(&xe, m)?; // [m, 2I]
                let mut h = vec![bf16::ZERO; m * i];
                for (gu, h) in gu.chunks_exact(2 * i).zip(h.chunks_exact_mut(i)) {
                    let (gate, up) = gu.split_at(i);
                    cpu_ops::silu_mul_slices(gate, up, h);
                }
                let mut y = e.down.product(&h, m)?; // [m, D]
                for (row, &w) in y.chunks_exact_mut(d).zip(e.weights) {
                    // The weight is cast to the activation dtype, then a bf16 product.
                    let w = bf16::from_f32(w).to_f32();
                    for v in row {
                        *v = bf16::from_f32(v.to_f32() * w);
                    }
                }
                Ok(y)
            })
            .collect()
    })?;
    let mut acc = vec![0f32; n * d];
    for (e, y) in experts.iter().zip(&contributions) {
        for (&t, row) in e.tokens.iter().zip(y.chunks_exact(d)) {
            for (a, v) in acc[t as usize * d..][..d].iter_mut().zip(row) {
                *a += v.to_f32();
            }
        }
    }
    let out: Vec<bf16> = acc.into_iter().map(bf16::from_f32).collect();
    Ok(Tensor::from_vec(out, (n, d), &Device::Cpu)?)
}
