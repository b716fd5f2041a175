//! Activation rows quantized for the packed Q8_0 and Q4_K kernels ([`super::q8_packed`],
//! [`super::q4k_packed`]): candle's Q8_0 blocks (per 32 values, an f16 scale of
//! `max|x| / 127`, round half away from zero), each block's sum of quants, and the quants in
//! the packed weights' order, so that one 64-byte load meets the same bytes of sixteen blocks.
//!
//! Every quantized product quantizes its input row first; candle's scalar `from_float` (a
//! `roundf` per value) and the repack were 13–17 % of a one-row 1024 × 2048 product, so on
//! AVX-512 the row is quantized in vectors, to the same bytes.

use candle_core::quantized::k_quants::{BlockQ8_0, GgmlType};

#[cfg(target_arch = "x86_64")]
use super::q8_packed::GROUP;
use super::q8_packed::{available, offset, parts, QK};

/// Activation rows quantized for the packed kernels (this file's and
/// [`super::q4k_packed`]'s).
pub struct Acts {
    /// The quants in [`offset`]'s order, `[m, k]`.
    q: Vec<i8>,
    /// `Σq` of each block, `[m, k / 32]`: for the Q8_0 weights' offset of 128 and the Q4_K
    /// weights' minimums.
    sums: Vec<i32>,
    /// Each block's scale, `[m, k / 32]`.
    d: Vec<f32>,
    pub(super) m: usize,
    pub(super) k: usize,
}

impl Acts {
    /// Row `r`.
    pub(super) fn row(&self, r: usize) -> ActRow<'_> {
        let (k, kb) = (self.k, self.k / QK);
        ActRow {
            q: &self.q[r * k..][..k],
            sums: &self.sums[r * kb..][..kb],
            d: &self.d[r * kb..][..kb],
        }
    }
}

/// `m` rows of `x` `[m, k]` quantized as candle's Q8_0 (per 32 values, an f16 scale of
/// `max|x| / 127`, round half away from zero), laid out for the packed kernel.
pub fn quantize(x: &[f32], m: usize, k: usize) -> Acts {
    assert!(k.is_multiple_of(QK) && x.len() == m * k);
    let kb = k / QK;
    let mut acts = Acts {
        q: vec![0; m * k],
        sums: vec![0; m * kb],
        d: vec![0.0; m * kb],
        m,
        k,
    };
    for (r, row) in x.chunks_exact(k).enumerate() {
        let (q, sums, d) = (
            &mut acts.q[r * k..][..k],
            &mut acts.sums[r * kb..][..kb],
            &mut acts.d[r * kb..][..kb],
        );
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: the features are present; the slices are one row's (k and k / 32).
            unsafe { x86::quantize_row(row, q, sums, d) };
            continue;
        }
        quantize_row(row, q, sums, d);
    }
    acts
}

/// candle's `BlockQ8_0::from_float` of `x` into `out`, in vectors where the CPU has AVX-512
/// (the same bytes: [`x86::blocks`]); the loader's quantizer of Q8_0 weights.
pub(super) fn quantize_blocks(x: &[f32], out: &mut [BlockQ8_0]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the features are present.
        return unsafe { x86::blocks(x, out) };
    }
    BlockQ8_0::from_float(x, out)
}

/// One activation row through candle's quantizer, then moved into [`offset`]'s order.
fn quantize_row(row: &[f32], q: &mut [i8], sums: &mut [i32], d: &mut [f32]) {
    let kb = row.len() / QK;
    let mut blocks = vec![BlockQ8_0::zeros(); kb];
    BlockQ8_0::from_float(row, &mut blocks);
    for (b, block) in blocks.iter().enumerate() {
        let (scale, qs) = parts(block);
        d[b] = scale.to_f32();
        sums[b] = qs.iter().map(|&v| v as i32).sum();
        for (e, &v) in qs.iter().enumerate() {
            q[offset(kb, b, e)] = v;
        }
    }
}

/// One row of [`Acts`].
#[derive(Clone, Copy)]
pub(super) struct ActRow<'a> {
    pub(super) q: &'a [i8],
    pub(super) sums: &'a [i32],
    pub(super) d: &'a [f32],
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BlockQ8_0, GROUP, QK};
    use std::arch::x86_64::*;

    /// [`super::quantize_row`] with the rounding in vectors ([`block`]), so the same quants.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn quantize_row(row: &[f32], q: &mut [i8], sums: &mut [i32], d: &mut [f32]) {
        let kb = row.len() / QK;
        assert!(row.len() == kb * QK && q.len() == kb * QK && sums.len() == kb && d.len() == kb);
        for b in 0..kb {
            let (scale, bytes, sum) = block(row.as_ptr().add(b * QK));
            d[b] = scale.to_f32();
            sums[b] = sum;
            let (j, lane) = (b / GROUP, b % GROUP);
            let g = GROUP.min(kb - j * GROUP);
            let dst = q.as_mut_ptr().add(j * GROUP * QK + 4 * lane);
            for c in 0..QK / 4 {
                dst.add(4 * g * c)
                    .cast::<u32>()
                    .write_unaligned(bytes.as_ptr().add(4 * c).cast::<u32>().read_unaligned());
            }
        }
    }

    /// candle's `BlockQ8_0::from_float` of `row` into `out` (ggml's layout: the load's
    /// quantizer of Q8_0 weights), through [`block`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn blocks(row: &[f32], out: &mut [BlockQ8_0]) {
        const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 2 + QK);
        assert!(row.len() == out.len() * QK);
        for (b, out) in out.iter_mut().enumerate() {
            let (scale, bytes, _) = block(row.as_ptr().add(b * QK));
            // `#[repr(C)] { d: f16, qs: [i8; 32] }` (asserted 34 bytes), fields crate-private.
            let p = (out as *mut BlockQ8_0).cast::<u8>();
            p.cast::<[u8; 2]>().write_unaligned(scale.to_le_bytes());
            p.add(2).cast::<[i8; QK]>().write_unaligned(bytes);
        }
    }

    /// One block of 32 values from `x` as candle quantizes it: the scale (`max|x| / 127` in
    /// f32, kept as f16), the quants of `x · (1 / scale)` rounded half away from zero
    /// (truncate, then step away from zero where the exact remainder is at least one half),
    /// and their sum. NaN inputs are skipped by the maximum and quantize to 0, as candle's
    /// `f32::max` and `as i8` do.
    #[inline(always)]
    unsafe fn block(x: *const f32) -> (half::f16, [i8; QK], i32) {
        let half = _mm512_set1_ps(0.5);
        let x = [_mm512_loadu_ps(x), _mm512_loadu_ps(x.add(16))];
        // max(|x|, acc) returns acc where x is NaN, as f32::max does.
        let amax = _mm512_max_ps(
            _mm512_abs_ps(x[1]),
            _mm512_max_ps(_mm512_abs_ps(x[0]), _mm512_setzero_ps()),
        );
        let amax = _mm512_reduce_max_ps(amax);
        let scale = amax / 127.0;
        let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        let mut bytes = [0i8; QK];
        let mut sum = _mm512_setzero_si512();
        for (h, x) in x.into_iter().enumerate() {
            let v = _mm512_mul_ps(x, _mm512_set1_ps(id));
            let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
            let away = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(_mm512_sub_ps(v, t)), half);
            let step = _mm512_or_ps(_mm512_set1_ps(1.0), _mm512_and_ps(v, _mm512_set1_ps(-0.0)));
            let r = _mm512_cvtps_epi32(_mm512_mask_add_ps(t, away, t, step));
            // NaN became i32::MIN; truncated to a byte that is 0, as `NaN as i8` is.
            sum = _mm512_add_epi32(sum, _mm512_cvtepi8_epi32(_mm512_cvtepi32_epi8(r)));
            _mm_storeu_si128(
                bytes.as_mut_ptr().add(16 * h).cast(),
                _mm512_cvtepi32_epi8(r),
            );
        }
        (
            half::f16::from_f32(scale),
            bytes,
            _mm512_reduce_add_epi32(sum),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::q8_packed::tests::values;
    use super::*;

    /// The vectorised quantizer (activations, and weights at load) gives candle's blocks, ties
    /// and zero blocks included (amax 127 makes the scale 1, so `k + 0.5` values are exact ties).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn activations_quantize_as_candle_does() {
        let why = "no AVX-512 on this CPU";
        if super::super::cpu_ops::skip_without_bf16_kernels(!available(), why) {
            return;
        }
        for kb in [1, 5, 16, 17, 64] {
            let k = kb * QK;
            let mut x = values(k, 5 + kb as u32, 3.0);
            x[..QK].copy_from_slice(&std::array::from_fn::<f32, QK, _>(|e| {
                [127.0, -126.5, 0.5, -0.5, 1.5, -2.5, 3.49999, 0.0][e % 8]
            }));
            if kb > 2 {
                x[QK..2 * QK].fill(0.0);
                x[2 * QK + 3] = f32::NAN;
                x[2 * QK + 4] = -1e30;
            }
            let (mut q, mut sums, mut d) = (vec![0; k], vec![0; kb], vec![0.0; kb]);
            quantize_row(&x, &mut q, &mut sums, &mut d);
            let (mut vq, mut vsums, mut vd) = (vec![0; k], vec![0; kb], vec![0.0; kb]);
            // SAFETY: available() checked above.
            unsafe { x86::quantize_row(&x, &mut vq, &mut vsums, &mut vd) };
            assert_eq!(q, vq, "quants, {kb} blocks");
            let mut want = vec![BlockQ8_0::zeros(); kb];
            BlockQ8_0::from_float(&x, &mut want);
            let mut got = vec![BlockQ8_0::zeros(); kb];
            quantize_blocks(&x, &mut got);
            for (b, (w, g)) in want.iter().zip(&got).enumerate() {
                let ((wd, wq), (gd, gq)) = (parts(w), parts(g));
                assert_eq!((wd.to_bits(), wq), (gd.to_bits(), gq), "block {b} of {kb}");
            }
            assert_eq!(sums, vsums, "sums, {kb} blocks");
            assert_eq!(
                d.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                vd.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "scales, {kb} blocks"
            );
        }
    }
}
