//! Q4_K quantization at load: candle's `BlockQ4K::from_float`, bit for bit, eight sub-blocks at
//! a time.
//!
//! Why: candle searches each 32-value sub-block's scale and minimum one sub-block at a time
//! (up to five passes, a heap allocation per sub-block); measured here at 6.6 µs per 256-value
//! block on one core, which is 46 s of a 2-thread load of the 4-layer 30B-A3B shape and about
//! four and a half minutes of the whole model's. The search is the same arithmetic for every
//! sub-block, so here the eight sub-blocks of a block run side by side as the lanes of one
//! vector, each lane doing exactly candle's operations in candle's order (no fused
//! multiply-adds, sums in the same sequence), and a lane that candle would have stopped early
//! keeps its values while the others go on.

use candle_core::quantized::k_quants::BlockQ4K;
use half::f16;

use super::cpu_ops::simd_dispatch;

/// Values per block and per sub-block.
const QK_K: usize = 256;
const SUB: usize = 32;
/// Sub-blocks per block: the lanes.
const N: usize = QK_K / SUB;
/// candle's `make_qkx1_quants(15, 5, ..)`: levels and passes of the search.
const NMAX: f32 = 15.0;
const NTRY: usize = 5;

type Lanes = [f32; N];

// `xs` (a multiple of 256 values) into `ys`, as `BlockQ4K::from_float` does.
simd_dispatch!(pub fn from_float(xs: &[f32], ys: &mut [BlockQ4K]) => from_float_generic);

#[inline(always)]
fn from_float_generic(xs: &[f32], ys: &mut [BlockQ4K]) {
    assert_eq!(xs.len(), ys.len() * QK_K, "Q4_K quantizes whole blocks");
    for (x, y) in xs.chunks_exact(QK_K).zip(ys.iter_mut()) {
        *y = block(x.try_into().expect("256 values"));
    }
}

/// candle's `nearest_int(v).clamp(0, nmax)` in f32: `round` rounds half away from zero, and
/// `max`/`min` send NaN to 0 and ±∞ to the ends, as the saturating `as i32` then `clamp` do.
#[inline(always)]
fn level(v: f32, nmax: f32) -> f32 {
    v.round().max(0.0).min(nmax)
}

/// `make_qkx1_quants(15, 5, x)` of each sub-block: (scale, -min) per lane.
#[inline(always)]
fn search(x: &[Lanes; SUB]) -> (Lanes, Lanes) {
    let mut lo = x[0];
    let mut hi = x[0];
    for v in &x[1..] {
        for j in 0..N {
            lo[j] = if v[j] < lo[j] { v[j] } else { lo[j] };
            hi[j] = if v[j] > hi[j] { v[j] } else { hi[j] };
        }
    }
    let flat: [bool; N] = std::array::from_fn(|j| hi[j] == lo[j]);
    let mut min: Lanes = std::array::from_fn(|j| lo[j].min(0.0));
    let mut iscale: Lanes = std::array::from_fn(|j| NMAX / (hi[j] - min[j]));
    let mut scale: Lanes = std::array::from_fn(|j| 1.0 / iscale[j]);
    let mut l = [[0f32; N]; SUB];
    // A lane stops after the first pass that changes none of its levels (candle's `break`).
    let mut active: [bool; N] = std::array::from_fn(|j| !flat[j]);
    for _ in 0..NTRY {
        if !active.iter().any(|&a| a) {
            break;
        }
        let mut sumlx = [0f32; N];
        let mut suml2 = [0f32; N];
        let mut changed = [false; N];
        for (v, l) in x.iter().zip(l.iter_mut()) {
            for j in 0..N {
                let li = level(iscale[j] * (v[j] - min[j]), NMAX);
                changed[j] |= li != l[j];
                l[j] = if active[j] { li } else { l[j] };
                sumlx[j] += (v[j] - min[j]) * li;
                suml2[j] += li * li;
            }
        }
        let mut sum = [0f32; N];
        for j in 0..N {
            scale[j] = if active[j] {
                sumlx[j] / suml2[j]
            } else {
                scale[j]
            };
        }
        for (v, l) in x.iter().zip(&l) {
            for j in 0..N {
                sum[j] += v[j] - scale[j] * l[j];
            }
        }
        for j in 0..N {
            if active[j] {
                let m = sum[j] / SUB as f32;
                min[j] = if m > 0.0 { 0.0 } else { m };
                iscale[j] = 1.0 / scale[j];
                active[j] = changed[j];
            }
        }
    }
    (
        std::array::from_fn(|j| if flat[j] { 0.0 } else { scale[j] }),
        std::array::from_fn(|j| if flat[j] { 0.0 } else { -min[j] }),
    )
}

/// One block, as candle's `from_float` writes it.
#[inline(always)]
fn block(x: &[f32; QK_K]) -> BlockQ4K {
    // Sub-block j's value i in lane j of row i.
    let mut t = [[0f32; N]; SUB];
    for (j, sub) in x.chunks_exact(SUB).enumerate() {
        for (i, &v) in sub.iter().enumerate() {
            t[i][j] = v;
        }
    }
    let (scales, mins) = search(&t);
    let max_scale = scales.iter().fold(0.0f32, |max, &val| val.max(max));
    let max_min = mins.iter().fold(0.0f32, |max, &val| val.max(max));
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut sc = [0u8; 12];
    for j in 0..N {
        let ls = level(inv_scale * scales[j], f32::INFINITY).min(63.0) as u8;
        let lm = level(inv_min * mins[j], f32::INFINITY).min(63.0) as u8;
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    let mut l = [0u8; QK_K];
    for (j, (x, l)) in x.chunks_exact(SUB).zip(l.chunks_exact_mut(SUB)).enumerate() {
        let (s, m) = scale_min(j, &sc);
        let d = d.to_f32() * s as f32;
        if d != 0.0 {
            let dm = dmin.to_f32() * m as f32;
            for (l, &v) in l.iter_mut().zip(x) {
                *l = level((v + dm) / d, 15.0) as u8;
            }
        }
    }
    let mut bytes = [0u8; 144];
    bytes[0..2].copy_from_slice(&d.to_le_bytes());
    bytes[2..4].copy_from_slice(&dmin.to_le_bytes());
    bytes[4..16].copy_from_slice(&sc);
    for (g, q) in bytes[16..].chunks_exact_mut(32).enumerate() {
        let l = &l[64 * g..];
        for (i, q) in q.iter_mut().enumerate() {
            *q = l[i] | (l[i + 32] << 4);
        }
    }
    from_bytes(&bytes)
}

/// candle's `get_scale_min_k4`: sub-block `j`'s 6-bit scale and minimum.
#[inline(always)]
fn scale_min(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// A block from its 144 bytes. candle's `BlockQ4K` is `#[repr(C)]` `{ d: f16, dmin: f16,
/// scales: [u8; 12], qs: [u8; 128] }` with crate-private fields.
fn from_bytes(bytes: &[u8; 144]) -> BlockQ4K {
    const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
    // SAFETY: 144 bytes (asserted), and every bit pattern is a valid BlockQ4K (two f16 and
    // byte arrays).
    unsafe { bytes.as_ptr().cast::<BlockQ4K>().read_unaligned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::GgmlType;

    fn bytes(b: &[BlockQ4K]) -> &[u8] {
        // SAFETY: plain data, 144 bytes per block.
        unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<u8>(), std::mem::size_of_val(b)) }
    }

    fn candle(x: &[f32]) -> Vec<BlockQ4K> {
        let mut out = vec![BlockQ4K::zeros(); x.len() / QK_K];
        BlockQ4K::from_float(x, &mut out);
        out
    }

    fn ours(x: &[f32]) -> Vec<BlockQ4K> {
        let mut out = vec![BlockQ4K::zeros(); x.len() / QK_K];
        from_float(x, &mut out);
        out
    }

    #[test]
    fn blocks_are_candles_bit_for_bit() {
        // Normal-ish weights at several scales, then the cases the search branches on.
        let mut s = 7u32;
        let mut uniform = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let mut x: Vec<f32> = Vec::new();
        for amp in [0.02f32, 1.0, 300.0, 1e-6] {
            x.extend((0..64 * QK_K).map(|_| amp * (uniform() + uniform() + uniform())));
        }
        // All positive (the minimum clamps to 0), all negative, constant sub-blocks (the
        // search's early return), a zero block, one outlier per sub-block, few distinct levels
        // (the search stops after one pass), ties at half a level.
        x.extend((0..QK_K).map(|i| 1.0 + i as f32 / 256.0));
        x.extend((0..QK_K).map(|i| -1.0 - i as f32 / 256.0));
        x.extend((0..QK_K).map(|i| (i / 32) as f32 * 0.25));
        x.extend(std::iter::repeat_n(0.0, QK_K));
        x.extend((0..QK_K).map(|i| if i % 32 == 5 { 40.0 } else { uniform() }));
        x.extend((0..QK_K).map(|i| (i % 3) as f32));
        x.extend((0..QK_K).map(|i| (i % 31) as f32 * 0.5));
        x.extend((0..QK_K).map(|i| if i < 128 { 0.0 } else { uniform() * 1e-30 }));
        let (want, got) = (candle(&x), ours(&x));
        for (b, (w, g)) in bytes(&want)
            .chunks_exact(144)
            .zip(bytes(&got).chunks_exact(144))
            .enumerate()
        {
            assert_eq!(w, g, "block {b}");
        }
    }
}
