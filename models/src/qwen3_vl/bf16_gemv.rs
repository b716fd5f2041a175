//! Products of one to four bf16 rows with a bf16 weight stored `[n, k]` on CPUs with
//! AVX512-BF16, where one `vdpbf16ps` does 32 multiply-adds of bf16 pairs into f32 lanes.
//! (Weights stored `[k, n]` go through `cpu_mm`'s row-streaming f32 loop instead: `vdpbf16ps`
//! needs two rows of such a weight side by side, and reading two rows at once halved the
//! read rate.)
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::bf16;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<bf16> {
        crate::qwen3_vl::cpu_ops::test_values(n, seed, 1.0)
    }

    /// Every row count, widths and depths with tails, against f64 sums.
    #[test]
    fn kernel_matches_f64_sums() {
        if crate::qwen3_vl::cpu_ops::skip_without_bf16_kernels(!available(), "no AVX512-BF16") {
            return;
        }
        for (k, n) in [(2048, 160), (77, 70), (1, 33), (130, 64)] {
            let w = values(n * k, 7);
            for m in 1..=4 {
                let x = values(m * k, 3);
                let j0 = n / 5;
                let cols = n - j0;
                let mut out_t = vec![f32::NAN; cols * m];
                rows_block(&x, m, k, &w, j0, &mut out_t);
                for c in 0..cols {
                    for r in 0..m {
                        let want: f64 = (0..k)
                            .map(|i| x[r * k + i].to_f64() * w[(j0 + c) * k + i].to_f64())
                            .sum();
                        let got = out_t[c * m + r] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + want.abs()),
                            "k {k} n {n} m {m} col {c} row {r}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
