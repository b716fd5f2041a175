//! Products of one to four bf16 rows with a bf16 weight on CPUs with AVX512-BF16, where one
//! `vdpbf16ps` does 32 multiply-adds of bf16 pairs into f32 lanes.
//!
//! Why: decoding multiplies a single row by every weight of the model, so it should be bound by
//! reading the weights. The portable GEMV widens each weight to f32 and multiplies and adds
//! separately; on the 30B-A3B shape it ran at ~23 GB/s of weights where llama.cpp, reading the same
//! bf16 weights, reached ~36 GB/s (37 vs 58 tok/s, same window).
//!
//! Numerics: products of bf16 values are exact in f32; each instruction adds two of them to an
//! f32 lane with round-to-nearest (denormals flushed), and lanes are summed at the end — an f32
//! accumulation in a different order from the portable loop, as oneDNN's bf16 GEMM does it.

use half::bf16;

/// Whether this CPU has the instructions (detected once).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Weight `[n, k]` row-major: `out_t[c·m + r] = Σ_i x[r·k + i] · w[(j0 + c)·k + i]` for every
/// `c < out_t.len() / m`. `x` holds `m` rows of `k`.
pub fn rows_block(x: &[bf16], m: usize, k: usize, w: &[bf16], j0: usize, out_t: &mut [f32]) {
    assert!(available() && x.len() >= m * k && m > 0);
    let cols = out_t.len() / m;
    assert!(w.len() >= (j0 + cols) * k);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the features are present (asserted) and every index is within the slices
    // (asserted above; the kernel reads rows of k from the given starts only).
    unsafe {
        for c in 0..cols {
            let row = &w[(j0 + c) * k..][..k];
            for r in 0..m {
                out_t[c * m + r] = x86::dot(&x[r * k..][..k], row);
            }
        }
    }
}

/// Columns of output per block of the `[k, n]` kernel: four vectors of 16 per row of x, so four
/// rows keep 16 accumulators in registers.
pub const COLS_BLOCK: usize = 64;

/// `m ≤ 4` rows of `x` (`[m, k]`) and a weight `w` stored `[k, n]` row-major (the MoE
/// experts' hub layout).
#[derive(Clone, Copy)]
pub struct ColsProduct<'a> {
    pub x: &'a [bf16],
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub w: &'a [bf16],
}

/// `out_t[c·m + r] = Σ_i x[r·k + i] · w[i·n + j0 + c]` for every `c < out_t.len() / m`.
pub fn cols_block(p: ColsProduct, j0: usize, out_t: &mut [f32]) {
    let ColsProduct { x, m, k, n, w } = p;
    assert!(available() && (1..=4).contains(&m) && x.len() >= m * k);
    let cols = out_t.len() / m;
    assert!(j0 + cols <= n && w.len() >= k * n);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `rows_block`; loads past column `j0 + cols` are masked off.
    unsafe {
        for c0 in (0..cols).step_by(COLS_BLOCK) {
            let width = COLS_BLOCK.min(cols - c0);
            let mut acc = [[0f32; COLS_BLOCK]; 4];
            x86::cols_kernel(p, j0 + c0, width, &mut acc);
            for c in 0..width {
                for r in 0..m {
                    out_t[(c0 + c) * m + r] = acc[r][c];
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{bf16, ColsProduct, COLS_BLOCK};
    use std::arch::x86_64::*;

    /// The first `len` (≤ 32) bf16 values at `p`, zeros after.
    #[inline(always)]
    unsafe fn load(p: *const bf16, len: usize) -> __m512i {
        let mask: __mmask32 = if len >= 32 { !0 } else { (1u32 << len) - 1 };
        _mm512_maskz_loadu_epi16(mask, p as *const i16)
    }

    #[inline(always)]
    unsafe fn dp(acc: __m512, a: __m512i, b: __m512i) -> __m512 {
        _mm512_dpbf16_ps(
            acc,
            std::mem::transmute::<__m512i, __m512bh>(a),
            std::mem::transmute::<__m512i, __m512bh>(b),
        )
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn dot(x: &[bf16], w: &[bf16]) -> f32 {
        let k = x.len();
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 128 <= k {
            for (j, a) in acc.iter_mut().enumerate() {
                let o = i + 32 * j;
                *a = dp(*a, load(xp.add(o), 32), load(wp.add(o), 32));
            }
            i += 128;
        }
        while i < k {
            let len = (k - i).min(32);
            acc[0] = dp(acc[0], load(xp.add(i), len), load(wp.add(i), len));
            i += 32;
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(s)
    }

    /// `acc[r][c] = Σ_i x[r·k + i] · w[i·n + j0 + c]` for `c < width ≤ 64`, `r < m ≤ 4`.
    ///
    /// `vdpbf16ps` multiplies pairs adjacent along k, so rows i and i+1 of the weight are
    /// interleaved (`unpacklo/hi_epi16`), which orders the columns within each 128-bit lane as
    /// {0–3, 8–11, 16–19, 24–27} (lo) and {4–7, ...} (hi); the stores undo that order.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn cols_kernel(
        p: ColsProduct,
        j0: usize,
        width: usize,
        acc_out: &mut [[f32; COLS_BLOCK]; 4],
    ) {
        let ColsProduct { x, m, k, n, w } = p;
        let wp = w.as_ptr();
        let halves = [width.min(32), width.saturating_sub(32)];
        let mut acc = [[_mm512_setzero_ps(); 4]; 4];
        let mut i = 0;
        while i < k {
            let second = i + 1 < k;
            let mut pairs = [_mm512_setzero_si512(); 4];
            for (h, &len) in halves.iter().enumerate() {
                if len == 0 {
                    continue;
                }
                let a = load(wp.add(i * n + j0 + 32 * h), len);
                let b = if second {
                    load(wp.add((i + 1) * n + j0 + 32 * h), len)
                } else {
                    _mm512_setzero_si512()
                };
                pairs[2 * h] = _mm512_unpacklo_epi16(a, b);
                pairs[2 * h + 1] = _mm512_unpackhi_epi16(a, b);
            }
            for r in 0..m {
                let lo = x[r * k + i].to_bits() as u32;
                let hi = if second {
                    x[r * k + i + 1].to_bits() as u32
                } else {
                    0
                };
                let xv = _mm512_set1_epi32((lo | (hi << 16)) as i32);
                for (v, p) in acc[r].iter_mut().zip(&pairs) {
                    *v = dp(*v, xv, *p);
                }
            }
            i += 2;
        }
        let mut lanes = [0f32; 16];
        for r in 0..m {
            for (v, &a) in acc[r].iter().enumerate() {
                _mm512_storeu_ps(lanes.as_mut_ptr(), a);
                let (h, upper) = (v / 2, v % 2);
                for (t, &value) in lanes.iter().enumerate() {
                    let c = 32 * h + 8 * (t / 4) + 4 * upper + t % 4;
                    if c < width {
                        acc_out[r][c] = value;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<bf16> {
        crate::qwen3_vl::cpu_ops::test_values(n, seed, 1.0)
    }

    /// Both layouts, every row count, widths and depths with tails, against f64 sums.
    #[test]
    fn kernels_match_f64_sums() {
        if crate::qwen3_vl::cpu_ops::skip_without_bf16_kernels(!available(), "no AVX512-BF16") {
            return;
        }
        for (k, n) in [(2048, 160), (77, 70), (1, 33), (130, 64)] {
            let w = values(n * k, 7);
            for m in 1..=4 {
                let x = values(m * k, 3);
                let want = |r: usize, j: usize, rows_layout: bool| -> f64 {
                    (0..k)
                        .map(|i| {
                            let wv = if rows_layout {
                                w[j * k + i]
                            } else {
                                w[i * n + j]
                            };
                            x[r * k + i].to_f64() * wv.to_f64()
                        })
                        .sum()
                };
                let j0 = n / 5;
                let cols = n - j0;
                for rows_layout in [true, false] {
                    let mut out_t = vec![f32::NAN; cols * m];
                    if rows_layout {
                        rows_block(&x, m, k, &w, j0, &mut out_t);
                    } else {
                        cols_block(
                            ColsProduct {
                                x: &x,
                                m,
                                k,
                                n,
                                w: &w,
                            },
                            j0,
                            &mut out_t,
                        );
                    }
                    for c in 0..cols {
                        for r in 0..m {
                            let (got, want) =
                                (out_t[c * m + r] as f64, want(r, j0 + c, rows_layout));
                            assert!(
                                (got - want).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + want.abs()),
                                "k {k} n {n} m {m} rows {rows_layout} col {c} row {r}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
