//! [`super`]'s kernels with AVX-512: sixteen lanes, sixteen keys' sums reduced across lanes
//! together, head sizes 64 and 128 for the scores (any multiple of 16 for P·V).

use super::Element;
use crate::qwen3_vl::q8_packed::x86::row_sums;
use std::arch::x86_64::*;

/// Query rows handled together: their accumulators stay in registers.
const ROWS: usize = 8;
/// Keys per block: a block of value rows (32 KB at hd 128 in bf16) stays in L1 while each
/// 16-lane column of it is read.
const KEYS: usize = 64;

/// `scores[r·keys + s]` = query row `r` of `q` `[rows, hd]` · key `s` of `k` `[keys, hd]`,
/// for a head size of 64 or 128 (false, nothing written, for any other).
///
/// Each key is widened once into registers for all the rows, and sixteen keys' products
/// are summed across their lanes together: one horizontal sum per key, a dependent chain,
/// was half the kernel's time.
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn scores<T: Element>(
    q: &[f32],
    k: &[T],
    (rows, keys, hd): (usize, usize, usize),
    scores: &mut [f32],
) -> bool {
    match hd {
        128 => scores_c::<T, 8>(q, k, (rows, keys), scores),
        64 => scores_c::<T, 4>(q, k, (rows, keys), scores),
        _ => return false,
    }
    true
}

#[target_feature(enable = "avx512f")]
unsafe fn scores_c<T: Element, const C: usize>(
    q: &[f32],
    k: &[T],
    (rows, keys): (usize, usize),
    scores: &mut [f32],
) {
    let hd = 16 * C;
    assert!(q.len() == rows * hd && k.len() == keys * hd && scores.len() == rows * keys);
    let (q, k) = (q.as_ptr(), k.as_ptr());
    let mut part = [[_mm512_setzero_ps(); 16]; ROWS];
    for r0 in (0..rows).step_by(ROWS) {
        let n = ROWS.min(rows - r0);
        for s0 in (0..keys).step_by(16) {
            let m = 16.min(keys - s0);
            for i in 0..m {
                let key = k.add((s0 + i) * hd);
                let mut kv = [_mm512_setzero_ps(); C];
                for (c, kv) in kv.iter_mut().enumerate() {
                    *kv = T::load16(key.add(16 * c));
                }
                for (r, part) in part.iter_mut().enumerate().take(n) {
                    let qr = q.add((r0 + r) * hd);
                    // Two chains, so each add waits on the one before last.
                    let mut acc = [_mm512_setzero_ps(); 2];
                    for (c, &kc) in kv.iter().enumerate() {
                        let x = _mm512_loadu_ps(qr.add(16 * c));
                        acc[c % 2] = _mm512_fmadd_ps(x, kc, acc[c % 2]);
                    }
                    part[i] = _mm512_add_ps(acc[0], acc[1]);
                }
            }
            for (r, part) in part.iter().enumerate().take(n) {
                let out = &mut scores[(r0 + r) * keys + s0..][..m];
                row_sums::<1>(out, |i| [part[i]]);
            }
        }
    }
}

/// `acc` `[rows, hd]` += `p` `[rows, keys]` · `v` `[keys, hd]` (hd a multiple of 16).
///
/// Column by column of sixteen lanes, the rows' accumulators in registers: each value load
/// serves every row, and each probability is one broadcast operand of a fused multiply-add.
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn weighted_values<T: Element>(
    p: &[f32],
    v: &[T],
    (rows, keys, hd): (usize, usize, usize),
    acc: &mut [f32],
) {
    assert!(hd % 16 == 0 && p.len() == rows * keys && v.len() == keys * hd);
    assert!(acc.len() == rows * hd);
    row_blocks!(weighted_rows, p, v, (rows, keys, hd), acc)
}

#[target_feature(enable = "avx512f")]
unsafe fn weighted_rows<T: Element, const R: usize>(
    p: *const f32,
    v: *const T,
    (keys, hd): (usize, usize),
    acc: *mut f32,
) {
    for s0 in (0..keys).step_by(KEYS) {
        let s1 = (s0 + KEYS).min(keys);
        for c in (0..hd).step_by(16) {
            let mut a = [_mm512_setzero_ps(); R];
            for (r, a) in a.iter_mut().enumerate() {
                *a = _mm512_loadu_ps(acc.add(r * hd + c));
            }
            for s in s0..s1 {
                let x = T::load16(v.add(s * hd + c));
                for (r, a) in a.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(*p.add(r * keys + s)), x, *a);
                }
            }
            for (r, a) in a.iter().enumerate() {
                _mm512_storeu_ps(acc.add(r * hd + c), *a);
            }
        }
    }
}
