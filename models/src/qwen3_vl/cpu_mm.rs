//! Half-precision matmuls on the CPU. candle's CPU matmul for bf16/f16 runs an order of
//! magnitude slower than its f32 one (measured on the 2B-shaped synthetic model: a bf16 decode
//! step took ~12× the CPU time of an f32 step, see BENCHMARKS.md), so on the CPU half-precision
//! weights stay stored as they are (the memory a user chose) and the arithmetic runs in f32:
//! - one or a few rows (decode): a bf16 GEMV that widens each weight as it is read, so the
//!   weight bytes cross memory once, at half the f32 size;
//! - more rows (prefill, vision), bf16 on a CPU with native bf16 units and oneDNN installed: one
//!   oneDNN bf16 GEMM (see `onednn`), twice the f32 rate on AVX512-BF16, more with AMX;
//! - more rows otherwise: the weight is widened to f32 once per call and multiplied by candle's
//!   f32 GEMM, whose cost the rows amortise.
//!
//! Products of bf16 values are exact in f32 and the sums are accumulated in f32, as torch's bf16
//! kernels do; the result is rounded once to the activation dtype.

use candle_core::{DType, Device, Storage, Tensor};
use half::bf16;
use rayon::prelude::*;

use super::bf16_gemv;
use super::cpu_ops::simd_dispatch;
use super::onednn::{self, Elem};
use crate::Result;

/// Rows at or below which the GEMV path is used.
const GEMV_MAX_ROWS: usize = 4;

/// Output rows of W each rayon task computes in the GEMV.
const GEMV_CHUNK: usize = 32;

fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F16)
}

/// Whether [`linear`] / [`matmul`] take the f32-arithmetic path for this operand.
pub fn applies(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && is_half(t.dtype())
}

/// A `candle_nn::Linear` (with or without bias) through [`linear`] when that applies.
pub fn linear_layer(l: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    use candle_core::Module;
    if !applies(l.weight()) {
        return Ok(l.forward(x)?);
    }
    linear_with(x, l.weight(), l.bias())
}

/// `x · Wᵀ` for `x` `[..., in]` and `w` `[out, in]`, in `x`'s dtype.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    linear_with(x, w, None)
}

/// `x · Wᵀ + b`: through oneDNN the bias is added before the product's one rounding (as in
/// torch's bf16 `F.linear`); elsewhere it is a separate add.
fn linear_with(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let add_bias = |y: Tensor| -> Result<Tensor> {
        Ok(match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    };
    if !matches!(x.device(), Device::Cpu) || !is_half(w.dtype()) {
        let w = match x.dims().len() {
            3 => w.broadcast_left(x.dim(0)?)?.t()?,
            _ => w.t()?,
        };
        return add_bias(x.matmul(&w)?);
    }
    let dims = x.dims().to_vec();
    let k = *dims.last().expect("rank ≥ 1");
    let rows = x.elem_count() / k.max(1);
    let x2 = x.reshape((rows, k))?;
    let out_dim = w.dim(0)?;
    // Both weight layouts are read where they lie (the MoE experts of hub checkpoints are
    // stored [in, out]): a copy here would move the whole weight per call.
    let w = &match weight_layout(w) {
        Some(_) => w.clone(),
        None => w.contiguous()?,
    };
    let y = if rows <= GEMV_MAX_ROWS && w.dtype() == DType::BF16 {
        gemv_bf16(&x2, w)?
    } else if x.dtype() == DType::BF16 && w.dtype() == DType::BF16 && onednn::available() {
        let bias = bias.filter(|b| b.dtype() == DType::BF16 && b.dims() == [out_dim]);
        let fused = bias.is_some();
        let y = gemm_bf16(&x2, w, bias)?.reshape(out_dims(dims, out_dim))?;
        return if fused { Ok(y) } else { add_bias(y) };
    } else {
        let wf = w.to_dtype(DType::F32)?;
        x2.to_dtype(DType::F32)?.matmul(&wf.t()?)?
    };
    add_bias(y.to_dtype(x.dtype())?.reshape(out_dims(dims, out_dim))?)
}

fn out_dims(mut dims: Vec<usize>, out_dim: usize) -> Vec<usize> {
    *dims.last_mut().expect("rank ≥ 1") = out_dim;
    dims
}

/// The bf16 slice a CPU tensor's contiguous storage holds (copying only if it is a strided view).
pub(crate) fn with_bf16<R>(t: &Tensor, f: impl FnOnce(&[bf16]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    with_bf16_view(&t, |data, layout| {
        let start = layout.start_offset();
        f(&data[start..start + t.elem_count()])
    })
}

/// The whole bf16 storage behind a CPU tensor and the tensor's layout in it, without copying
/// (for views such as the KV cache's, whose rows are dense but whose heads are not adjacent).
pub(crate) fn with_bf16_view<R>(
    t: &Tensor,
    f: impl FnOnce(&[bf16], &candle_core::Layout) -> Result<R>,
) -> Result<R> {
    with_view(t, f)
}

/// [`with_bf16_view`] for any element type: the storage behind a CPU tensor of `T`s and the
/// tensor's layout in it.
pub(crate) fn with_view<T: candle_core::WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&[T], &candle_core::Layout) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(candle_core::Error::Msg(format!(
            "expected a {:?} tensor on the CPU, got one on {:?}",
            T::DTYPE,
            t.device().location()
        ))
        .into());
    };
    f(T::cpu_storage_as_slice(cpu)?, layout)
}

/// Whether `t` is bf16 on a CPU where oneDNN runs native bf16 products: what the blocked
/// attention kernel (`cpu_attention`), the dequantized GEMMs and the parallel MoE path need.
pub fn onednn_bf16(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && t.dtype() == DType::BF16 && onednn::available()
}

/// Element offsets of every `[rows, hd]` matrix in a rank-4 `[a, b, rows, hd]` view whose rows
/// are dense (`hd` apart); errors for any other layout.
pub(crate) fn group_offsets(layout: &candle_core::Layout) -> Result<Vec<usize>> {
    let (dims, st) = (layout.dims(), layout.stride());
    if dims.len() != 4 || st[3] != 1 || (dims[2] > 1 && st[2] != dims[3]) {
        return Err(candle_core::Error::Msg(format!(
            "attention operand needs dense rows, got dims {dims:?} strides {st:?}"
        ))
        .into());
    }
    Ok((0..dims[0])
        .flat_map(|a| (0..dims[1]).map(move |b| layout.start_offset() + a * st[0] + b * st[1]))
        .collect())
}

/// `x` `[m, k]` bf16 times `w` `[n, k]` bf16 → `[m, n]` bf16, through oneDNN.
///
/// The work is split into one single-threaded oneDNN call per rayon thread — by rows when there
/// are many, by output columns when there are few (so no task repacks the whole weight): oneDNN's
/// own OpenMP threads keep spinning after each call while rayon's and candle's pools work, and on
/// few cores the pools took turns stealing time (libgomp spin loops were ~7 % of a vision
/// encode's samples and ~8 % of a 128-token prefill's).
fn gemm_bf16(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    const MIN_ROWS_PER_TASK: usize = 128;
    let (m, k) = x.dims2()?;
    let n = w.dim(0)?;
    let threads = rayon::current_num_threads();
    let b_strides = match weight_layout(w) {
        Some(WeightLayout::Cols) => [n, 1],
        _ => [1, k],
    };
    let plan = |m| onednn::Gemm {
        b_strides,
        bias: bias.map(|_| Elem::Bf16),
        ..onednn::Gemm::linear(m, n, k, Elem::Bf16, Elem::Bf16, Elem::Bf16)
    };
    let bias = match bias {
        Some(b) => Some(b.to_dtype(DType::BF16)?.to_vec1::<bf16>()?),
        None => None,
    };
    // One oneDNN call, with the bias row from column `j0` when there is one.
    let call = |g: &onednn::Gemm, x: &[bf16], w: &[bf16], j0: usize, out: &mut [bf16]| match &bias {
        Some(b) => onednn::gemm_bias(g, x, w, &b[j0..], out, 1),
        None => onednn::gemm(g, x, w, out, 1),
    };
    let mut out = vec![bf16::ZERO; m * n];
    with_bf16(x, |x| {
        with_weight(w, |w| {
            if threads == 1 {
                return call(&plan(m), x, w, 0, &mut out);
            }
            if m < MIN_ROWS_PER_TASK * threads {
                // Few rows: split the output columns instead, each task packing only its share
                // of the weight, into its own block that is then copied into place.
                let cols = n.div_ceil(threads).next_multiple_of(64);
                let blocks: Vec<(usize, Vec<bf16>)> = (0..n)
                    .step_by(cols)
                    .collect::<Vec<_>>()
                    .into_par_iter()
                    .map(|j0| {
                        let nb = cols.min(n - j0);
                        let g = onednn::Gemm {
                            n: nb,
                            c_row_stride: nb,
                            ..plan(m)
                        };
                        let start = match b_strides {
                            [1, _] => j0 * k, // [n, k] rows
                            _ => j0,          // [k, n] columns
                        };
                        let mut block = vec![bf16::ZERO; m * nb];
                        call(&g, x, &w[start..], j0, &mut block).map(|_| (j0, block))
                    })
                    .collect::<Result<_>>()?;
                for (j0, block) in blocks {
                    let nb = block.len() / m.max(1);
                    for (dst, src) in out.chunks_exact_mut(n).zip(block.chunks_exact(nb)) {
                        dst[j0..j0 + nb].copy_from_slice(src);
                    }
                }
                return Ok(());
            }
            let rows = m.div_ceil(threads);
            out.par_chunks_mut(rows * n)
                .zip(x.par_chunks(rows * k))
                .try_for_each(|(out, x)| call(&plan(x.len() / k), x, w, 0, out))
        })
    })?;
    Ok(Tensor::from_vec(out, (m, n), &Device::Cpu)?)
}

/// `x` `[m, k]` bf16 times a bf16 weight view `w` `[n, k]` (either layout) → `[m, n]` bf16, on
/// the calling thread only: for callers that already run one task per core (the MoE experts).
/// Needs oneDNN and AVX512-BF16 ([`serial_available`]).
pub(crate) fn linear_serial(x: &[bf16], m: usize, w: &Tensor) -> Result<Vec<bf16>> {
    let (n, k) = w.dims2()?;
    let layout = weight_layout(w).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "weight view {:?} is not dense",
            w.layout().stride()
        ))
    })?;
    with_weight(w, |ws| {
        if m <= GEMV_MAX_ROWS {
            let out = match layout {
                WeightLayout::Rows => {
                    let mut out_t = vec![0f32; n * m];
                    bf16_gemv::rows_block(x, m, k, ws, 0, &mut out_t);
                    (0..m * n).map(|i| out_t[(i % n) * m + i / n]).collect()
                }
                WeightLayout::Cols => {
                    let xf: Vec<f32> = x[..m * k].iter().map(|v| v.to_f32()).collect();
                    let mut acc = vec![0f32; m * n];
                    axpy_rows(&xf, ws, (m, k, n), 0..k, &mut acc);
                    acc
                }
            };
            return Ok(out.into_iter().map(bf16::from_f32).collect());
        }
        // Rows padded to a multiple of 16 so that prompts of every length reuse a few compiled
        // kernels (oneDNN compiles one per shape) rather than one per expert row count.
        let padded = m.next_multiple_of(16);
        let mut xp = x[..m * k].to_vec();
        xp.resize(padded * k, bf16::ZERO);
        let g = onednn::Gemm {
            b_strides: match layout {
                WeightLayout::Rows => [1, k],
                WeightLayout::Cols => [n, 1],
            },
            ..onednn::Gemm::linear(padded, n, k, Elem::Bf16, Elem::Bf16, Elem::Bf16)
        };
        let mut out = vec![bf16::ZERO; padded * n];
        onednn::gemm(&g, &xp, ws, &mut out, 1)?;
        out.truncate(m * n);
        Ok(out)
    })
}

/// Whether [`linear_serial`] can run here.
pub(crate) fn serial_available() -> bool {
    onednn::available() && bf16_gemv::available()
}

/// `a · b` (batched like candle's matmul); half-precision inputs on the CPU are multiplied in f32
/// and the product rounded to their dtype.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if matches!(a.device(), Device::Cpu) && is_half(a.dtype()) {
        let y = a.to_dtype(DType::F32)?.matmul(&b.to_dtype(DType::F32)?)?;
        return Ok(y.to_dtype(a.dtype())?);
    }
    Ok(a.matmul(b)?)
}

/// How a `[n, k]` weight view lies in its storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeightLayout {
    /// `[n, k]` row-major (a `Linear` weight as stored).
    Rows,
    /// Stored `[k, n]` row-major; the view is its transpose.
    Cols,
}

fn weight_layout(w: &Tensor) -> Option<WeightLayout> {
    let (dims, st) = (w.dims(), w.layout().stride());
    match (dims, st) {
        (&[_, k], &[sk, 1]) if sk == k => Some(WeightLayout::Rows),
        (&[n, _], &[1, sn]) if sn == n => Some(WeightLayout::Cols),
        _ if w.is_contiguous() => Some(WeightLayout::Rows),
        _ => None,
    }
}

/// The `n·k` bf16 elements of a weight in either [`WeightLayout`], without copying.
fn with_weight<R>(w: &Tensor, f: impl FnOnce(&[bf16]) -> Result<R>) -> Result<R> {
    let len = w.elem_count();
    with_bf16_view(w, |data, layout| {
        let start = layout.start_offset();
        f(&data[start..start + len])
    })
}

/// `x` `[m, k]` (any float dtype) times `w` `[n, k]` bf16 (either layout) → `[m, n]` f32.
fn gemv_bf16(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    let n = w.dim(0)?;
    let layout = weight_layout(w).expect("linear() passes a dense layout");
    if layout == WeightLayout::Cols {
        let x: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let out = with_weight(w, |w| {
            Ok(cols_product(m, k, n, |rows, acc| {
                axpy_rows(&x, w, (m, k, n), rows, acc)
            }))
        })?;
        return Ok(Tensor::from_vec(out, (m, n), &Device::Cpu)?);
    }
    // Computed transposed ([n, m], each task a run of output columns), then turned around.
    let mut out_t = vec![0f32; n * m];
    if x.dtype() == DType::BF16 && bf16_gemv::available() {
        with_bf16(x, |x| {
            with_weight(w, |w| {
                out_t
                    .par_chunks_mut(GEMV_CHUNK * m)
                    .enumerate()
                    .for_each(|(c, t)| bf16_gemv::rows_block(x, m, k, w, c * GEMV_CHUNK, t));
                Ok(())
            })
        })?;
    } else {
        let x: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let avx2 = avx2_available();
        with_weight(w, |w| {
            out_t
                .par_chunks_mut(GEMV_CHUNK * m)
                .enumerate()
                .for_each(|(c, chunk)| {
                    for (r, outs) in chunk.chunks_mut(m).enumerate() {
                        let j = c * GEMV_CHUNK + r;
                        let row = &w[j * k..(j + 1) * k];
                        for (i, o) in outs.iter_mut().enumerate() {
                            *o = dot(&x[i * k..(i + 1) * k], row, avx2);
                        }
                    }
                });
            Ok(())
        })?;
    }
    let y = Tensor::from_vec(out_t, (n, m), &Device::Cpu)?;
    Ok(y.t()?.contiguous()?)
}

/// Weight rows per task of the `[k, n]`-layout GEMV.
const COLS_TASK_ROWS: usize = 64;

/// `[m, n]` f32 sums of a product with a weight stored `[k, n]`: `task(rows, acc)` adds the
/// weight rows `rows`' terms into `acc`. Each task streams its own rows front to back (the
/// layout's rows are the sequential direction), and the tasks' sums are added in order, so
/// the result does not depend on the thread count.
fn cols_product(
    m: usize,
    k: usize,
    n: usize,
    task: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) -> Vec<f32> {
    let parts: Vec<Vec<f32>> = (0..k.div_ceil(COLS_TASK_ROWS))
        .into_par_iter()
        .map(|t| {
            let mut acc = vec![0f32; m * n];
            task(
                t * COLS_TASK_ROWS..((t + 1) * COLS_TASK_ROWS).min(k),
                &mut acc,
            );
            acc
        })
        .collect();
    let mut parts = parts.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![0f32; m * n]);
    for part in parts {
        for (s, v) in sum.iter_mut().zip(part) {
            *s += v;
        }
    }
    sum
}

simd_dispatch!(fn axpy_rows(x: &[f32], w: &[bf16], shape: (usize, usize, usize), rows: std::ops::Range<usize>, acc: &mut [f32]) => axpy_rows_generic);

/// `acc[r·n + j] += Σ_{i ∈ rows} x[r·k + i] · w[i·n + j]`, with `(m, k, n)` the shape: each
/// weight row widened and added, scaled, into the f32 sums (which stay in the cache), one row
/// after the other, so the rows are read as one sequential stream.
#[inline(always)]
fn axpy_rows_generic(
    x: &[f32],
    w: &[bf16],
    (m, k, n): (usize, usize, usize),
    rows: std::ops::Range<usize>,
    acc: &mut [f32],
) {
    if n == 0 {
        return;
    }
    for i in rows {
        let row = &w[i * n..(i + 1) * n];
        for (r, acc) in acc.chunks_exact_mut(n).enumerate().take(m) {
            let xi = x[r * k + i];
            for (a, &wv) in acc.iter_mut().zip(row) {
                *a += xi * f32::from_bits((wv.to_bits() as u32) << 16);
            }
        }
    }
}

fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn dot(x: &[f32], w: &[bf16], avx2: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: the features were detected at run time.
        return unsafe { dot_avx2(x, w) };
    }
    let _ = avx2;
    dot_generic(x, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(x: &[f32], w: &[bf16]) -> f32 {
    // The same loop, compiled with 256-bit vectors and fused multiply-adds.
    dot_generic(x, w)
}

/// 16 independent accumulators so the loop vectorises; bf16 → f32 is a 16-bit shift.
#[inline(always)]
fn dot_generic(x: &[f32], w: &[bf16]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (xc, xr) = x.split_at(x.len() / L * L);
    let (wc, wr) = w.split_at(xc.len());
    for (xs, ws) in xc.chunks_exact(L).zip(wc.chunks_exact(L)) {
        for l in 0..L {
            acc[l] += xs[l] * f32::from_bits((ws[l].to_bits() as u32) << 16);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (a, b) in xr.iter().zip(wr) {
        sum += a * b.to_f32();
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_rel(got: &Tensor, want: &Tensor) -> f32 {
        let got = got.to_dtype(DType::F32).unwrap();
        let want = want.to_dtype(DType::F32).unwrap();
        let d: f32 = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        let s: f32 = want.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        d / s
    }

    /// Both paths (GEMV for few rows, widened GEMM for many), bf16 and f16, equal the f32
    /// product of the same half-precision values to within one rounding of the output.
    #[test]
    fn half_linear_matches_f32_of_same_values() -> Result<()> {
        let dev = Device::Cpu;
        for dtype in [DType::BF16, DType::F16] {
            // k = 70 exercises the vector body and the tail; 150 outputs make three column blocks.
            let w = Tensor::randn(0f32, 1.0, (150, 70), &dev)?.to_dtype(dtype)?;
            // 9 rows: the oneDNN path splits the columns; 300 rows: the rows, one block per thread.
            for rows in [1usize, 3, 9, 300] {
                let x = Tensor::randn(0f32, 1.0, (1, rows, 70), &dev)?.to_dtype(dtype)?;
                let want = x
                    .to_dtype(DType::F32)?
                    .broadcast_matmul(&w.to_dtype(DType::F32)?.t()?)?;
                let got = linear(&x, &w)?;
                assert_eq!(got.dims(), &[1, rows, 150]);
                assert_eq!(got.dtype(), dtype);
                let err = max_rel(&got, &want);
                assert!(err < 1e-2, "{dtype:?} rows {rows}: {err}");
            }
        }
        // A weight stored [in, out] (the MoE experts' hub layout) read through its transpose,
        // on every path, equals the same product from a contiguous copy.
        for rows in [1usize, 4, 9, 300] {
            let w_in_out = Tensor::randn(0f32, 1.0, (70, 300), &dev)?.to_dtype(DType::BF16)?;
            let w = w_in_out.t()?; // [300, 70], strides (1, 300)
            let x = Tensor::randn(0f32, 1.0, (rows, 70), &dev)?.to_dtype(DType::BF16)?;
            let want = linear(&x, &w.contiguous()?)?;
            let got = linear(&x, &w)?;
            assert!(max_rel(&got, &want) < 1e-2, "rows {rows}");
        }
        // f32 takes candle's own path, exactly.
        let w = Tensor::randn(0f32, 1.0, (5, 8), &dev)?;
        let x = Tensor::randn(0f32, 1.0, (2, 8), &dev)?;
        assert_eq!(max_rel(&linear(&x, &w)?, &x.matmul(&w.t()?)?), 0.0);
        let a = Tensor::randn(0f32, 1.0, (2, 3, 4), &dev)?.to_dtype(DType::BF16)?;
        let b = Tensor::randn(0f32, 1.0, (2, 4, 5), &dev)?.to_dtype(DType::BF16)?;
        let want = a.to_dtype(DType::F32)?.matmul(&b.to_dtype(DType::F32)?)?;
        assert!(max_rel(&matmul(&a, &b)?, &want) < 1e-2);
        Ok(())
    }

    /// The `[k, n]`-layout GEMV (the MoE experts' hub layout) against f64 sums: every row
    /// count, k over several tasks with a short last one, a width with vector tails; the f32
    /// sums of the dispatched and the portable loop, and the bf16 outputs of the parallel
    /// (`linear`) and the serial (`linear_serial`) entry points.
    #[test]
    fn hub_layout_gemv_matches_f64_sums() -> Result<()> {
        let dev = Device::Cpu;
        let (k, n) = (3 * COLS_TASK_ROWS + 5, 37);
        let w_kn = Tensor::randn(0f32, 1.0, (k, n), &dev)?.to_dtype(DType::BF16)?;
        let w = w_kn.t()?;
        assert_eq!(weight_layout(&w), Some(WeightLayout::Cols));
        let wb: Vec<bf16> = w_kn.flatten_all()?.to_vec1()?;
        let tol = |want: f64| 1e-5 * (k as f64).sqrt() * (1.0 + want.abs());
        for m in 1..=GEMV_MAX_ROWS {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?.to_dtype(DType::BF16)?;
            let xb: Vec<bf16> = x.flatten_all()?.to_vec1()?;
            let xf: Vec<f32> = xb.iter().map(|v| v.to_f32()).collect();
            let want = |r: usize, j: usize| -> f64 {
                (0..k)
                    .map(|i| xf[r * k + i] as f64 * wb[i * n + j].to_f64())
                    .sum()
            };
            for portable in [false, true] {
                let mut acc = vec![0f32; m * n];
                if portable {
                    axpy_rows_generic(&xf, &wb, (m, k, n), 0..k, &mut acc);
                } else {
                    axpy_rows(&xf, &wb, (m, k, n), 0..k, &mut acc);
                }
                for (i, &got) in acc.iter().enumerate() {
                    let want = want(i / n, i % n);
                    let err = (got as f64 - want).abs();
                    assert!(
                        err <= tol(want),
                        "m {m} portable {portable} [{i}]: {got} vs {want}"
                    );
                }
            }
            let parallel: Vec<f32> = linear(&x, &w)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()?;
            let serial = linear_serial(&xb, m, &w)?;
            for (i, (&p, s)) in parallel.iter().zip(&serial).enumerate() {
                let want = want(i / n, i % n);
                for (what, got) in [("linear", p as f64), ("linear_serial", s.to_f64())] {
                    // One bf16 rounding of the output.
                    let err = (got - want).abs();
                    assert!(
                        err <= want.abs() / 256.0 + tol(want),
                        "m {m} {what} [{i}]: {got} vs {want}"
                    );
                }
            }
        }
        Ok(())
    }

    /// A linear layer with a bias, on every path (GEMV, column split, row split): the f32
    /// product plus bias, within one bf16 rounding of the output — with a bias large against
    /// the product, so a bias dropped or added twice would show.
    #[test]
    fn bias_is_added_once_on_every_path() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (150, 70), &dev)?.to_dtype(DType::BF16)?;
        let b = (Tensor::randn(0f32, 1.0, 150, &dev)? * 30.0)?.to_dtype(DType::BF16)?;
        let layer = candle_nn::Linear::new(w.clone(), Some(b.clone()));
        for rows in [1usize, 9, 300] {
            let x = Tensor::randn(0f32, 1.0, (rows, 70), &dev)?.to_dtype(DType::BF16)?;
            let want = x
                .to_dtype(DType::F32)?
                .matmul(&w.to_dtype(DType::F32)?.t()?)?
                .broadcast_add(&b.to_dtype(DType::F32)?)?;
            let got = linear_layer(&layer, &x)?;
            assert_eq!(got.dims(), &[rows, 150]);
            let err = max_rel(&got, &want);
            assert!(err < 1e-2, "rows {rows}: {err}");
        }
        Ok(())
    }
}
