//! Element-wise activations for bf16 tensors on the CPU, vectorised.
//!
//! Why: candle evaluates GELU and SiLU on bf16 one element at a time through libm (`expm1f`,
//! `tanhf`); profiling the 2B vision tower after its GEMMs moved to oneDNN showed the MLP's GELU
//! at ~30 % of the tower's time (perf, 1024×576 image). Here each element is widened to f32,
//! computed with a branch-free exp that the compiler vectorises (AVX-512 or AVX2 chosen at run
//! time), and rounded once to bf16 — torch's own recipe for bf16 activations.

use candle_core::{DType, Device, Tensor};
use half::bf16;
use rayon::prelude::*;

use super::cpu_mm::with_bf16;
use crate::Result;

/// Defines `$name`, which runs `$generic` compiled for AVX-512, or for AVX2 + FMA, where the CPU
/// has them (detected at run time) and as portable code elsewhere. The generic bodies are loops
/// written to vectorise; `target_feature` is what lets the compiler use the wide registers.
macro_rules! simd_dispatch {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $generic:ident) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the features were detected at run time.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

fn fast_path(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && t.dtype() == DType::BF16
}

/// GELU, tanh approximation (`gelu_pytorch_tanh`), as candle's `Tensor::gelu`.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if !fast_path(x) {
        return Ok(x.gelu()?);
    }
    map(x, None, Op::GeluTanh)
}

/// `silu(gate) ⊙ up` in one pass (the text MLP's and the experts' activation).
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if !fast_path(gate) || up.dtype() != DType::BF16 || gate.dims() != up.dims() {
        return Ok((gate.silu()? * up)?);
    }
    // silu(g) is rounded to bf16 before the product, as transformers' `act_fn(gate) * up`
    // does in bf16: rounding it once instead moved the MoE fixture's near-tied top-k routing
    // (bf16 logits vs f32 went from 2e-2 to 4e-2 relative).
    map(gate, Some(up), Op::SiluMul)
}

/// `silu(gate) ⊙ up` over slices, on the calling thread (see [`silu_mul`]).
pub(crate) fn silu_mul_slices(gate: &[bf16], up: &[bf16], out: &mut [bf16]) {
    apply(out, gate, Some(up), Op::SiluMul)
}

/// `a + b` for bf16 tensors of one shape (residual connections), in f32 and rounded once like
/// candle's and torch's bf16 add, which candle runs through a per-8-element conversion call.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !fast_path(a) || b.dtype() != DType::BF16 || a.dims() != b.dims() {
        return Ok((a + b)?);
    }
    map(a, Some(b), Op::Add)
}

/// The element-wise functions `map` applies. An enum rather than a function pointer or closure:
/// the per-element function must be inlined into the loop compiled for AVX-512/AVX2 to
/// vectorise (through a pointer each element was a scalar call, ~7 % of a vision encode).
#[derive(Clone, Copy)]
enum Op {
    GeluTanh,
    SiluMul,
    Add,
}

#[inline(always)]
fn gelu_tanh_f32(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // √(2/π)
    let y = C * x.mul_add(0.044_715 * x * x, x);
    // ½·x·(1 + tanh y) = x · e^{2y} / (e^{2y} + 1) = x / (1 + e^{-2y})
    x / (1.0 + exp(-2.0 * y))
}

#[inline(always)]
fn silu_mul_f32(g: f32, u: f32) -> f32 {
    round_bf16(g / (1.0 + exp(-g))) * u
}

/// LayerNorm over the last dimension of a bf16 tensor, two-pass (mean, then the variance of the
/// centred values) in f32 with the affine in f32 and one rounding — torch's bf16 kernel, and the
/// eight separate tensor passes of the portable path (vision/layers.rs) fused into one per row.
/// None when the fast path does not apply (not bf16 on the CPU).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Option<Tensor>> {
    if !fast_path(x) {
        return Ok(None);
    }
    let d = x.dim(candle_core::D::Minus1)?;
    let w: Vec<f32> = weight.to_dtype(DType::F32)?.to_vec1()?;
    let b: Vec<f32> = bias.to_dtype(DType::F32)?.to_vec1()?;
    if w.len() != d || b.len() != d {
        return Err(candle_core::Error::Msg(format!(
            "layer norm of width {d} with {} weights and {} biases",
            w.len(),
            b.len()
        ))
        .into());
    }
    let mut out = vec![bf16::ZERO; x.elem_count()];
    with_bf16(x, |xs| {
        let rows_per_task = (CHUNK / d.max(1)).max(1);
        out.par_chunks_mut(rows_per_task * d)
            .zip(xs.par_chunks(rows_per_task * d))
            .for_each(|(o, x)| {
                let mut row = vec![0f32; d];
                for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                    norm_row(x, &w, &b, eps, &mut row, o);
                }
            });
        Ok(())
    })?;
    Ok(Some(Tensor::from_vec(out, x.dims(), x.device())?))
}

simd_dispatch!(fn norm_row(x: &[bf16], w: &[f32], b: &[f32], eps: f32, row: &mut [f32], out: &mut [bf16]) => norm_row_generic);

#[inline(always)]
fn norm_row_generic(x: &[bf16], w: &[f32], b: &[f32], eps: f32, row: &mut [f32], out: &mut [bf16]) {
    const L: usize = 16;
    let d = x.len();
    for (r, &v) in row.iter_mut().zip(x) {
        *r = f32::from_bits((v.to_bits() as u32) << 16);
    }
    // Plain loops, no closures: a closure would not inherit the caller's target features.
    let split = d / L * L;
    let mut acc = [0f32; L];
    for c in row[..split].chunks_exact(L) {
        for l in 0..L {
            acc[l] += c[l];
        }
    }
    let mut total = 0f32;
    for a in acc {
        total += a;
    }
    for &v in &row[split..] {
        total += v;
    }
    let mean = total / d as f32;
    let mut acc = [0f32; L];
    for c in row[..split].chunks_exact(L) {
        for l in 0..L {
            acc[l] += (c[l] - mean) * (c[l] - mean);
        }
    }
    let mut total = 0f32;
    for a in acc {
        total += a;
    }
    for &v in &row[split..] {
        total += (v - mean) * (v - mean);
    }
    let var = total / d as f32;
    let inv = 1.0 / (var + eps).sqrt();
    for (((o, &r), &w), &b) in out.iter_mut().zip(row.iter()).zip(w).zip(b) {
        *o = to_bf16(((r - mean) * inv).mul_add(w, b));
    }
}

/// `f(x[i], y[i])` over bf16 tensors of one shape, in f32 arithmetic, rounded once.
fn map(x: &Tensor, y: Option<&Tensor>, f: Op) -> Result<Tensor> {
    let mut out = vec![bf16::ZERO; x.elem_count()];
    with_bf16(x, |xs| match y {
        Some(y) => with_bf16(y, |ys| {
            out.par_chunks_mut(CHUNK)
                .zip(xs.par_chunks(CHUNK).zip(ys.par_chunks(CHUNK)))
                .for_each(|(o, (a, b))| apply(o, a, Some(b), f));
            Ok(())
        }),
        None => {
            out.par_chunks_mut(CHUNK)
                .zip(xs.par_chunks(CHUNK))
                .for_each(|(o, a)| apply(o, a, None, f));
            Ok(())
        }
    })?;
    Ok(Tensor::from_vec(out, x.dims(), x.device())?)
}

simd_dispatch!(fn apply(out: &mut [bf16], x: &[bf16], y: Option<&[bf16]>, f: Op) => apply_generic);

#[inline(always)]
fn apply_generic(out: &mut [bf16], x: &[bf16], y: Option<&[bf16]>, f: Op) {
    match (f, y) {
        (Op::SiluMul, Some(y)) => {
            for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
                *o = to_bf16(silu_mul_f32(a.to_f32(), b.to_f32()));
            }
        }
        (Op::Add, Some(y)) => {
            for ((o, &a), &b) in out.iter_mut().zip(x).zip(y) {
                *o = to_bf16(a.to_f32() + b.to_f32());
            }
        }
        (Op::GeluTanh, None) => {
            for (o, &a) in out.iter_mut().zip(x) {
                *o = to_bf16(gelu_tanh_f32(a.to_f32()));
            }
        }
        _ => unreachable!("map passes a second operand exactly for the binary ops"),
    }
}

/// Rotary embedding (rotate_half convention) of the query and key heads of a fused projection:
/// `qkv` holds `[tokens, 3, heads, hd]` bf16 rows, `cos`/`sin` `[tokens, hd/2]` f32; returns the
/// rotated q and k as `[tokens, 2, heads, hd]`. Computed in f32 and rounded once to bf16 —
/// transformers' `apply_rotary_pos_emb_vision` (`q.float()`, rotate, cast back) — with the
/// products and sum rounded separately, as candle's and torch's element-wise kernels do.
/// Why: the tensor path permuted qkv into heads, widened q and k to f32, rotated and narrowed
/// them again — five passes over the activations per block instead of one.
pub fn rope_qk(qkv: &[bf16], cos: &[f32], sin: &[f32], heads: usize, hd: usize) -> Vec<bf16> {
    let half = hd / 2;
    let d = heads * hd;
    let tokens = cos.len() / half.max(1);
    debug_assert_eq!(qkv.len(), tokens * 3 * d);
    let mut out = vec![bf16::ZERO; tokens * 2 * d];
    const TOKENS_PER_TASK: usize = 64;
    out.par_chunks_mut(TOKENS_PER_TASK * 2 * d)
        .enumerate()
        .for_each(|(c, out)| {
            let t0 = c * TOKENS_PER_TASK;
            for (i, out) in out.chunks_exact_mut(2 * d).enumerate() {
                let t = t0 + i;
                let (c, s) = (&cos[t * half..][..half], &sin[t * half..][..half]);
                rope_token(&qkv[t * 3 * d..][..2 * d], c, s, out);
            }
        });
    out
}

simd_dispatch!(fn rope_token(x: &[bf16], cos: &[f32], sin: &[f32], out: &mut [bf16]) => rope_token_generic);

/// Every `cos.len()·2`-element head of `x` rotated into `out`.
#[inline(always)]
fn rope_token_generic(x: &[bf16], cos: &[f32], sin: &[f32], out: &mut [bf16]) {
    let half = cos.len();
    for (x, out) in x.chunks_exact(2 * half).zip(out.chunks_exact_mut(2 * half)) {
        let (x1, x2) = x.split_at(half);
        let (o1, o2) = out.split_at_mut(half);
        for i in 0..half {
            let (a, b) = (x1[i].to_f32(), x2[i].to_f32());
            o1[i] = to_bf16(a * cos[i] - b * sin[i]);
            o2[i] = to_bf16(b * cos[i] + a * sin[i]);
        }
    }
}

/// eˣ in f32, relative error below 3e-7 over the whole range (0 below −87, 1.6e38 above 88):
/// x = n·ln2 + f with the reduction in two parts (Cody–Waite) so f keeps its precision for
/// large |x|, e^f for |f| ≤ ln2/2 by its degree-7 Taylor polynomial, 2ⁿ put straight into the
/// exponent bits. Branch-free, so loops over it vectorise.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding and subtracting it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4; // ln 2 in 10 significant bits, so n·LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // n as an integer straight from t's mantissa bits: `n as i32` is a saturating conversion
    // that the compiler does lane by lane in scalar code, which un-vectorised every caller.
    let ni = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let f = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0
                    + f * (1.0 / 24.0
                        + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
    p * f32::from_bits(((ni + 127) as u32) << 23)
}

/// `x` rounded to the nearest bf16 value, kept in f32.
#[inline(always)]
fn round_bf16(x: f32) -> f32 {
    f32::from_bits((to_bf16(x).to_bits() as u32) << 16)
}

/// Round to nearest even, as `half` does for finite values.
#[inline(always)]
pub(crate) fn to_bf16(x: f32) -> bf16 {
    let b = x.to_bits();
    bf16::from_bits(((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16)
}

/// For tests of the native bf16 kernels (and of the packed int8 ones, whose AVX512-VNNI every
/// CPU with AVX512-BF16 also has): true (skip) when `missing` is, after saying why — but
/// where the test command requires them (`GLIMPSE_REQUIRE_ONEDNN`, set on CPUs with bf16 units)
/// a missing kernel fails the test instead of letting it pass by skipping.
#[cfg(test)]
pub(crate) fn skip_without_bf16_kernels(missing: bool, why: &str) -> bool {
    if missing {
        assert!(
            std::env::var_os("GLIMPSE_REQUIRE_ONEDNN").is_none(),
            "GLIMPSE_REQUIRE_ONEDNN is set but {why}"
        );
        eprintln!("skipped: {why}");
    }
    missing
}

/// Deterministic bf16 test inputs in `[-amp, amp)`, spread by a multiplicative hash.
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u32, amp: f32) -> Vec<bf16> {
    (0..n)
        .map(|i| {
            let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16;
            bf16::from_f32(amp * (x as f32 / 32768.0 - 1.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_rounding_are_accurate() {
        for i in 0..=40_000 {
            let x = -87.0 + 175.0 * i as f32 / 40_000.0;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert_eq!(exp(-200.0), exp(-87.0));
        assert!(exp(200.0).is_finite());
        for x in [
            0.0f32,
            1.0,
            -2.5,
            0.333_333,
            1e-30,
            0.999_999_9,
            3.140_625,
            3.148_437_5,
        ] {
            assert_eq!(to_bf16(x), bf16::from_f32(x), "{x}");
        }
    }

    /// The fast activations equal the f64 formulas within one bf16 rounding, over the range
    /// activations take (and far beyond it), with shapes that leave a vector tail.
    #[test]
    fn activations_match_their_formulas() -> Result<()> {
        let n = 3 * CHUNK + 77;
        let xs: Vec<f32> = (0..n).map(|i| -40.0 + 80.0 * i as f32 / n as f32).collect();
        let ys: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let x = Tensor::from_vec(xs.clone(), n, &Device::Cpu)?.to_dtype(DType::BF16)?;
        let y = Tensor::from_vec(ys.clone(), n, &Device::Cpu)?.to_dtype(DType::BF16)?;
        let xq: Vec<f64> = x.to_dtype(DType::F64)?.to_vec1()?;
        let yq: Vec<f64> = y.to_dtype(DType::F64)?.to_vec1()?;
        let gelu: Vec<f32> = gelu_tanh(&x)?.to_dtype(DType::F32)?.to_vec1()?;
        let silu: Vec<f32> = silu_mul(&x, &y)?.to_dtype(DType::F32)?.to_vec1()?;
        // The sum is candle's own, bit for bit.
        assert_eq!(
            add(&x, &y)?.to_vec1::<bf16>()?,
            (&x + &y)?.to_vec1::<bf16>()?
        );
        for i in 0..n {
            let (a, b) = (xq[i], yq[i]);
            let g = 0.5
                * a
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (a + 0.044715 * a.powi(3))).tanh());
            let s = a / (1.0 + (-a).exp()) * b;
            // One bf16 rounding of silu before the product, one after: 2 units of 2⁻⁸.
            let tol = |v: f64| 1.6e-2 * v.abs() + 1e-6;
            assert!(
                (gelu[i] as f64 - g).abs() <= tol(g),
                "gelu({a}) = {}, want {g}",
                gelu[i]
            );
            assert!(
                (silu[i] as f64 - s).abs() <= tol(s),
                "silu({a})·{b} = {}, want {s}",
                silu[i]
            );
        }
        // LayerNorm against f64 on rows with a large mean (where E[x²] − mean² would cancel).
        let d = 300;
        let rows: Vec<f32> = (0..4 * d)
            .map(|i| 100.0 + ((i * 37) % 101) as f32 / 50.0)
            .collect();
        let xr = Tensor::from_vec(rows, (4, d), &Device::Cpu)?.to_dtype(DType::BF16)?;
        let w = Tensor::from_vec(
            (0..d)
                .map(|i| 0.5 + i as f32 / d as f32)
                .collect::<Vec<_>>(),
            d,
            &Device::Cpu,
        )?;
        let b = Tensor::from_vec(
            (0..d).map(|i| i as f32 / 1000.0).collect::<Vec<_>>(),
            d,
            &Device::Cpu,
        )?;
        let got: Vec<Vec<f32>> = layer_norm(&xr, &w.to_dtype(DType::BF16)?, &b, 1e-6)?
            .expect("bf16 on the CPU")
            .to_dtype(DType::F32)?
            .to_vec2()?;
        let xq: Vec<Vec<f64>> = xr.to_dtype(DType::F64)?.to_vec2()?;
        let wq: Vec<f64> = w.to_dtype(DType::BF16)?.to_dtype(DType::F64)?.to_vec1()?;
        for (row, want_row) in got.iter().zip(&xq) {
            let mean = want_row.iter().sum::<f64>() / d as f64;
            let var = want_row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
            for j in 0..d {
                let want = (want_row[j] - mean) / (var + 1e-6).sqrt() * wq[j] + j as f64 / 1000.0;
                assert!(
                    (row[j] as f64 - want).abs() <= 1e-2 * want.abs() + 1e-3,
                    "{} vs {want}",
                    row[j]
                );
            }
        }
        assert!(layer_norm(&xr.to_dtype(DType::F32)?, &w, &b, 1e-6)?.is_none());
        // f32 (and any non-bf16) input takes candle's own path, exactly.
        let xf = x.to_dtype(DType::F32)?;
        let same: f32 = (gelu_tanh(&xf)? - xf.gelu()?)?
            .abs()?
            .max_all()?
            .to_scalar()?;
        assert_eq!(same, 0.0);
        Ok(())
    }
}
