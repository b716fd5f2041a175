//! [`super`]'s kernels for CPUs with AVX2 and FMA but not AVX-512: eight lanes, eight keys'
//! sums reduced across lanes together, any head size that is a multiple of 8.

use super::Element;
use std::arch::x86_64::*;

/// As in [`super::avx512`]: keys per block.
const KEYS: usize = 64;

/// Lane `i` = the sum of the eight lanes of `v[i]`.
#[inline(always)]
unsafe fn lane_sums(v: &[__m256; 8]) -> __m256 {
    // hadd(a, b) = [a01, a23, b01, b23 | a45, a67, b45, b67]; twice gives each vector's
    // halves' sums, four to a 128-bit half; the halves are then added across.
    let ab = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    let cd = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(ab, cd),
        _mm256_permute2f128_ps::<0x31>(ab, cd),
    )
}

/// `scores[r·keys + s]` = query row `r` · key `s` (hd a multiple of 8).
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn scores<T: Element>(
    q: &[f32],
    k: &[T],
    (rows, keys, hd): (usize, usize, usize),
    scores: &mut [f32],
) {
    assert!(hd % 8 == 0 && q.len() == rows * hd && k.len() == keys * hd);
    assert!(scores.len() == rows * keys);
    let (q, k) = (q.as_ptr(), k.as_ptr());
    for s0 in (0..keys).step_by(8) {
        let m = 8.min(keys - s0);
        for r in 0..rows {
            let qr = q.add(r * hd);
            let mut part = [_mm256_setzero_ps(); 8];
            for (i, part) in part.iter_mut().enumerate().take(m) {
                let key = k.add((s0 + i) * hd);
                let mut acc = [_mm256_setzero_ps(); 2];
                for c in 0..hd / 8 {
                    let x = _mm256_loadu_ps(qr.add(8 * c));
                    acc[c % 2] = _mm256_fmadd_ps(x, T::load8(key.add(8 * c)), acc[c % 2]);
                }
                *part = _mm256_add_ps(acc[0], acc[1]);
            }
            let mut sums = [0f32; 8];
            _mm256_storeu_ps(sums.as_mut_ptr(), lane_sums(&part));
            scores[r * keys + s0..][..m].copy_from_slice(&sums[..m]);
        }
    }
}

/// `acc` `[rows, hd]` += `p` `[rows, keys]` · `v` `[keys, hd]` (hd a multiple of 8).
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn weighted_values<T: Element>(
    p: &[f32],
    v: &[T],
    (rows, keys, hd): (usize, usize, usize),
    acc: &mut [f32],
) {
    assert!(hd % 8 == 0 && p.len() == rows * keys && v.len() == keys * hd);
    assert!(acc.len() == rows * hd);
    row_blocks!(weighted_rows, p, v, (rows, keys, hd), acc)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_rows<T: Element, const R: usize>(
    p: *const f32,
    v: *const T,
    (keys, hd): (usize, usize),
    acc: *mut f32,
) {
    for s0 in (0..keys).step_by(KEYS) {
        let s1 = (s0 + KEYS).min(keys);
        for c in (0..hd).step_by(8) {
            let mut a = [_mm256_setzero_ps(); R];
            for (r, a) in a.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(acc.add(r * hd + c));
            }
            for s in s0..s1 {
                let x = T::load8(v.add(s * hd + c));
                for (r, a) in a.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_set1_ps(*p.add(r * keys + s)), x, *a);
                }
            }
            for (r, a) in a.iter().enumerate() {
                _mm256_storeu_ps(acc.add(r * hd + c), *a);
            }
        }
    }
}
