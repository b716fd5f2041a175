//! Q4_K weights repacked for `vpdpbusd` (AVX512-VNNI), as [`super::q8_packed`] does for Q8_0.
//!
//! Why: Q4_K is the format that fits the 30B-A3B into a 24 GiB machine, and candle's kernel
//! for it (unpack the nibbles, then 16-bit products per super-block of 256) is bound by
//! arithmetic, not by the quarter of the bytes that Q4_K reads: quantized decode and prefill
//! trailed llama.cpp (0.91× and 0.43–0.82×).
//!
//! A ggml super-block is 256 values in eight sub-blocks of 32, each with a 6-bit scale and a
//! 6-bit minimum, under an f16 `d` and `dmin`: `value = d·sc·q − dmin·m` with `q` in 0..=15.
//! Here two super-blocks make a group of sixteen sub-blocks, one f32 lane each, as Q8_0's
//! blocks are grouped: a sub-block's 32 nibbles are 16 bytes (byte e holds values e and
//! e + 16), stored in the interleaved order of [`super::q8_packed::in_group`], so one 64-byte
//! load masked to its low and high nibbles gives four values of every sub-block for each of
//! two `vpdpbusd`. The scales and minimums are unpacked once, at load, into one byte each.
//!
//! The activations are those of the Q8_0 kernel (quantized per 32 values with an f16 scale,
//! and each block's sum for the minimums), where ggml quantizes them per 256 (Q8_K) with one
//! f32 scale: per-block scales are the finer of the two, so the products are at least as
//! close to the dense ones as candle's. A row is read as one stream, front to back: group
//! after group, each the super-blocks' `d` and `dmin`, the sub-blocks' scales and minimums,
//! then the quants (148 bytes per 256 values, ggml's 144 plus the unpacked scales). Keeping
//! the scales beside their quants matters: with the quants first and the scales at the end of
//! the row, every group waited on a load from the far end of the row (37 % of the kernel's
//! samples on one instruction).

use candle_core::quantized::k_quants::BlockQ4K;
use half::{bf16, f16};
use rayon::prelude::*;

use super::q8_acts::Acts;
use super::q8_packed::Kernel;
use super::q8_packed::{in_group, GROUP, QK};

/// Values per super-block (ggml's `QK_K`).
const QK_K: usize = 256;
/// Sub-blocks per super-block.
const SUBS: usize = QK_K / QK;
/// Bytes of a sub-block's quants (two per byte).
const SUB_BYTES: usize = QK / 2;

/// Whether this CPU runs the kernels: that of [`super::q8_packed::available`].
pub fn available() -> bool {
    super::q8_packed::available()
}

/// One super-block unpacked: `d`, `dmin`, each sub-block's scale and minimum (6 bits each),
/// and each sub-block's 32 quants.
struct Unpacked {
    d: f16,
    dmin: f16,
    scales: [u8; SUBS],
    mins: [u8; SUBS],
    quants: [[u8; QK]; SUBS],
}

/// candle's `BlockQ4K` is `#[repr(C)]` `{ d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128] }`
/// with private fields; the 6-bit scales are packed as ggml's `get_scale_min_k4` reads them,
/// and the quants of sub-blocks 2j and 2j + 1 are the low and high nibbles of `qs[32j..]`.
fn unpack(b: &BlockQ4K) -> Unpacked {
    const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 4 + 12 + QK_K / 2);
    let p = (b as *const BlockQ4K).cast::<u8>();
    // SAFETY: the block is 144 bytes (asserted) in the order above.
    let (d, dmin, sc, qs) = unsafe {
        (
            f16::from_bits(p.cast::<u16>().read_unaligned()),
            f16::from_bits(p.add(2).cast::<u16>().read_unaligned()),
            p.add(4).cast::<[u8; 12]>().read_unaligned(),
            p.add(16).cast::<[u8; QK_K / 2]>().read_unaligned(),
        )
    };
    let mut u = Unpacked {
        d,
        dmin,
        scales: [0; SUBS],
        mins: [0; SUBS],
        quants: [[0; QK]; SUBS],
    };
    for j in 0..SUBS {
        (u.scales[j], u.mins[j]) = if j < 4 {
            (sc[j] & 63, sc[j + 4] & 63)
        } else {
            (
                (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4),
                (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4),
            )
        };
        let shift = 4 * (j % 2);
        for (i, q) in u.quants[j].iter_mut().enumerate() {
            *q = (qs[QK * (j / 2) + i] >> shift) & 0xf;
        }
    }
    u
}

/// A `[rows, cols]` Q4_K weight in the packed layout.
#[derive(Debug)]
pub struct PackedQ4K {
    data: Vec<u8>,
    rows: usize,
    cols: usize,
}

/// Bytes of a packed group of `g` sub-blocks (8 or 16: one or two super-blocks).
const fn group_bytes(g: usize) -> usize {
    4 * (g / SUBS) + 2 * g + SUB_BYTES * g
}

/// Sub-block `s` of a packed row of `subs`: where its group starts, the group's sub-block
/// count, and the sub-block's lane. Within a group: the `d` of its one or two super-blocks,
/// their `dmin`, the `g` scales, the `g` minimums, and the quants.
#[inline(always)]
fn group_of(subs: usize, s: usize) -> (usize, usize, usize) {
    let (j, lane) = (s / GROUP, s % GROUP);
    (j * group_bytes(GROUP), GROUP.min(subs - j * GROUP), lane)
}

impl PackedQ4K {
    /// An all-zero weight, to be filled by [`PackedQ4K::pack_rows`].
    pub fn zeroed(rows: usize, cols: usize) -> Self {
        assert!(
            cols.is_multiple_of(QK_K),
            "Q4_K needs a width that is a multiple of 256"
        );
        let mut p = Self {
            data: Vec::new(),
            rows,
            cols,
        };
        p.data = vec![0; rows * p.stride()];
        p
    }

    /// Bytes per packed row: quants, a scale and a minimum per sub-block, `d` and `dmin` per
    /// super-block.
    fn stride(&self) -> usize {
        let (subs, supers) = (self.cols / QK, self.cols / QK_K);
        self.cols / 2 + 2 * subs + 4 * supers
    }

    fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.stride()..][..self.stride()]
    }

    /// Rows `first..` from ggml blocks (`cols / 256` per row).
    pub fn pack_rows(&mut self, first: usize, blocks: &[BlockQ4K]) {
        let (kb, subs, stride) = (self.cols / QK_K, self.cols / QK, self.stride());
        assert!(blocks.len().is_multiple_of(kb) && first + blocks.len() / kb <= self.rows);
        for (i, row) in blocks.chunks_exact(kb).enumerate() {
            let dst = &mut self.data[(first + i) * stride..][..stride];
            for (b, block) in row.iter().enumerate() {
                let u = unpack(block);
                let (group, g, lane) = group_of(subs, SUBS * b);
                // The block's place among the group's one or two super-blocks.
                let (at, supers) = (2 * (lane / SUBS), 2 * (g / SUBS));
                dst[group + at..][..2].copy_from_slice(&u.d.to_le_bytes());
                dst[group + supers + at..][..2].copy_from_slice(&u.dmin.to_le_bytes());
                let scales = group + 2 * supers;
                let (mins, quants) = (scales + g, scales + 2 * g);
                for j in 0..SUBS {
                    let lane = lane + j;
                    dst[scales + lane] = u.scales[j];
                    dst[mins + lane] = u.mins[j];
                    let q = &u.quants[j];
                    for e in 0..SUB_BYTES {
                        dst[quants + in_group(g, lane, e)] = q[e] | (q[e + SUB_BYTES] << 4);
                    }
                }
            }
        }
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The weight as bf16 `[rows, cols]`: each value `(d·sc)·q − dmin·m` in f32 as candle's
    /// `to_float` forms it, rounded once.
    pub fn dequantize_bf16(&self) -> Vec<bf16> {
        let k = self.cols;
        let mut out = vec![bf16::ZERO; self.rows * k];
        out.par_chunks_mut(k).enumerate().for_each(|(r, out)| {
            let row = self.row(r);
            #[cfg(target_arch = "x86_64")]
            if available() {
                // SAFETY: the features are present; the row and out are one row's.
                return unsafe { x86::dequantize_row(row, out) };
            }
            let subs = k / QK;
            for (s, out) in out.chunks_exact_mut(QK).enumerate() {
                let (group, g, lane) = group_of(subs, s);
                let (at, supers) = (group + 2 * (lane / SUBS), 2 * (g / SUBS));
                let half = |p: usize| f16::from_le_bytes([row[p], row[p + 1]]).to_f32();
                let scales = group + 2 * supers;
                let d1 = half(at) * row[scales + lane] as f32;
                let m1 = half(at + supers) * row[scales + g + lane] as f32;
                let quants = scales + 2 * g;
                for (i, o) in out.iter_mut().enumerate() {
                    let byte = row[quants + in_group(g, lane, i % SUB_BYTES)];
                    let q = if i < SUB_BYTES { byte & 0xf } else { byte >> 4 };
                    *o = bf16::from_f32(d1 * q as f32 - m1);
                }
            }
        });
        out
    }

    /// `dst[r, c] = Σ x[r]·w[c]` for `m` activation rows quantized by
    /// [`super::q8_acts::quantize`] into `dst` `[m, rows]` (see
    /// [`super::q8_packed::products`]).
    pub fn matmul(&self, acts: &Acts, m: usize, dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        let kernel: Kernel = x86::dots;
        #[cfg(not(target_arch = "x86_64"))]
        let kernel: Kernel = |_, _, _| unreachable!("no packed weights without AVX512-VNNI");
        super::q8_packed::products(
            acts,
            (m, self.rows, self.cols),
            dst,
            (&self.data, self.stride()),
            kernel,
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::q8_acts::ActRow;
    use super::super::q8_packed::x86::{
        by_row_count, load_quarter, quarter_lanes, row_sums, store_quarter,
    };
    use super::super::q8_packed::GROUP;
    use super::{bf16, group_bytes, QK, SUBS, SUB_BYTES};
    use std::arch::x86_64::*;

    /// The group of `g` (8 or 16) sub-blocks at `p`: its lane mask, per lane the sub-block's
    /// `d·sc` and `dmin·m` (f32 products, as candle forms them), and its quants.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn group(p: *const u8, g: usize) -> (__mmask16, __m512, __m512, *const u8) {
        let mask: __mmask16 = if g == GROUP { !0 } else { (1 << g) - 1 };
        let supers = 2 * (g / SUBS);
        let (scales, mins) = (p.add(2 * supers), p.add(2 * supers + g));
        let d1 = _mm512_mul_ps(per_super(p, g), per_sub(scales, mask));
        let m1 = _mm512_mul_ps(per_super(p.add(supers), g), per_sub(mins, mask));
        (mask, d1, m1, p.add(2 * supers + 2 * g))
    }

    /// The f16 values (`d` or `dmin`) of a group's one or two super-blocks at `p`, one per
    /// lane: lanes 0–7 belong to the first super-block, 8–15 to the second.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn per_super(p: *const u8, g: usize) -> __m512 {
        let sel = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let supers = ((1u32 << (g / SUBS)) - 1) as __mmask8;
        let h = _mm_maskz_loadu_epi16(supers, p.cast());
        _mm512_permutexvar_ps(sel, _mm512_castps128_ps512(_mm_cvtph_ps(h)))
    }

    /// The bytes (scales or minimums) of a group's sub-blocks at `p` as f32 lanes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn per_sub(p: *const u8, mask: __mmask16) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, p.cast())))
    }

    /// `out[i·R + j]` = the dot product of packed weight row `i` of `rows` with activation row
    /// `xs[j]` (all of the same width), for `R = xs.len()` from 1 to
    /// [`super::super::q8_packed::XS`].
    ///
    /// # Safety
    /// The CPU has AVX512-VNNI and F16C ([`super::available`]).
    pub(super) unsafe fn dots(rows: &[u8], xs: &[ActRow], out: &mut [f32]) {
        by_row_count!(dots_r, rows, xs, out)
    }

    /// Each weight load (and its two nibble masks) and each group's scales serve every
    /// activation row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
    unsafe fn dots_r<const R: usize>(rows: &[u8], xs: &[ActRow], out: &mut [f32]) {
        let xs: &[ActRow; R] = xs.try_into().expect("R activation rows");
        let subs = xs[0].d.len();
        let stride = subs / SUBS * group_bytes(SUBS);
        for x in xs {
            assert!(x.q.len() == subs * QK && x.sums.len() == subs && x.d.len() == subs);
        }
        assert!(rows.len() * R == out.len() * stride);
        let nibble = _mm512_set1_epi8(0xf);
        row_sums::<R>(out, |i| {
            let row = rows.as_ptr().add(i * stride);
            let mut acc = [_mm512_setzero_ps(); R];
            let mut s = 0;
            while s < subs {
                let g = GROUP.min(subs - s);
                let (mask, d1, m1, w) = group(row.add(s / GROUP * group_bytes(GROUP)), g);
                let mut isum = [[_mm512_setzero_si512(); 2]; R];
                for t in 0..SUB_BYTES / 4 {
                    let wv = _mm512_maskz_loadu_epi32(mask, w.add(4 * g * t).cast());
                    let lo = _mm512_and_si512(wv, nibble);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(wv), nibble);
                    // Low nibbles are values 4t.., high ones 16 + 4t.. of each sub-block.
                    for (sum, x) in isum.iter_mut().zip(xs) {
                        let xq = x.q.as_ptr().add(s * QK);
                        let xlo = _mm512_maskz_loadu_epi32(mask, xq.add(4 * g * t).cast());
                        let xhi = _mm512_maskz_loadu_epi32(mask, xq.add(4 * g * (t + 4)).cast());
                        sum[0] = _mm512_dpbusd_epi32(sum[0], lo, xlo);
                        sum[1] = _mm512_dpbusd_epi32(sum[1], hi, xhi);
                    }
                }
                for ((a, sum), x) in acc.iter_mut().zip(&isum).zip(xs) {
                    let q = _mm512_cvtepi32_ps(_mm512_add_epi32(sum[0], sum[1]));
                    let xs =
                        _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, x.sums.as_ptr().add(s)));
                    let dx = _mm512_maskz_loadu_ps(mask, x.d.as_ptr().add(s));
                    // Per sub-block: dx·(d·sc·Σq·x − dmin·m·Σx).
                    let t = _mm512_fmsub_ps(d1, q, _mm512_mul_ps(m1, xs));
                    *a = _mm512_fmadd_ps(dx, t, *a);
                }
                s += g;
            }
            acc
        });
    }

    /// One packed row to bf16 values in natural order (see
    /// [`super::super::q8_packed`]'s `dequantize_row`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub(super) unsafe fn dequantize_row(row: &[u8], out: &mut [bf16]) {
        let subs = out.len() / QK;
        assert!(row.len() == subs / SUBS * group_bytes(SUBS) && out.len() == subs * QK);
        let lanes = quarter_lanes();
        let nibble = _mm_set1_epi8(0xf);
        let o = out.as_mut_ptr();
        let mut s = 0;
        while s < subs {
            let g = GROUP.min(subs - s);
            let (_, d1, m1, w) = group(row.as_ptr().add(s / GROUP * group_bytes(GROUP)), g);
            for t in 0..SUB_BYTES / 4 {
                let column = w.add(4 * g * t);
                for (quarter, lanes) in lanes.iter().enumerate().take(g.div_ceil(4)) {
                    let blocks = (g - 4 * quarter).min(4);
                    let bytes = load_quarter(column, quarter, blocks);
                    let d = _mm512_permutexvar_ps(*lanes, d1);
                    let m = _mm512_permutexvar_ps(*lanes, m1);
                    let first = o.add((s + 4 * quarter) * QK + 4 * t);
                    let halves = [
                        _mm_and_si128(bytes, nibble),
                        _mm_and_si128(_mm_srli_epi16::<4>(bytes), nibble),
                    ];
                    for (half, q) in halves.into_iter().enumerate() {
                        let q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q));
                        let f = _mm512_sub_ps(_mm512_mul_ps(d, q), m);
                        store_quarter(f, blocks, first.add(half * SUB_BYTES), QK);
                    }
                }
            }
            s += g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::q8_packed::tests::values;
    use super::*;
    use candle_core::quantized::k_quants::GgmlType;

    /// Dequantization gives candle's `to_float` values rounded to bf16, bit for bit; the
    /// products equal f64 sums over the dequantized weights and the per-32 quantized
    /// activations within f32 rounding, for widths of one, two and three super-blocks per
    /// group (full and half groups), one row and several, and row counts that span tasks.
    #[test]
    fn products_and_values_match_candles_blocks() {
        let why = "no AVX512-VNNI on this CPU";
        if super::super::cpu_ops::skip_without_bf16_kernels(!available(), why) {
            return;
        }
        for (k, n) in [(256, 3), (768, 67), (2048, 130)] {
            let mut w = values(n * k, 5, 0.1);
            w[..QK].iter_mut().for_each(|v| *v = v.abs()); // a sub-block with a zero minimum
            let mut blocks = vec![BlockQ4K::zeros(); n * k / QK_K];
            BlockQ4K::from_float(&w, &mut blocks);
            let mut p = PackedQ4K::zeroed(n, k);
            let kb = k / QK_K;
            p.pack_rows(0, &blocks[..kb]);
            p.pack_rows(1, &blocks[kb..]);
            let mut want = vec![0f32; n * k];
            BlockQ4K::to_float(&blocks, &mut want);
            let deq = p.dequantize_bf16();
            for (i, (got, want)) in deq.iter().zip(&want).enumerate() {
                assert_eq!(*got, bf16::from_f32(*want), "value {i} of {n}x{k}");
            }
            // The weights' values and magnitudes (|d·sc·q| + |dmin·m|) in f64.
            let mut exact_w = vec![(0f64, 0f64); n * k];
            for (b, block) in blocks.iter().enumerate() {
                let u = unpack(block);
                let (d, dmin) = (u.d.to_f64(), u.dmin.to_f64());
                for j in 0..SUBS {
                    for (i, &q) in u.quants[j].iter().enumerate() {
                        let (a, m) = (d * u.scales[j] as f64 * q as f64, dmin * u.mins[j] as f64);
                        exact_w[b * QK_K + j * QK + i] = (a - m, a.abs() + m.abs());
                    }
                }
            }
            for m in [1, 2, 19] {
                let x = values(m * k, 9 + m as u32, 2.0);
                let acts = super::super::q8_acts::quantize(&x, m, k);
                let mut ours = vec![0f32; m * n];
                p.matmul(&acts, m, &mut ours);
                for r in 0..m {
                    let xr = acts.row(r);
                    // The activations' values back from their blocks (offset order).
                    let xv = |i: usize| {
                        let (b, e) = (i / QK, i % QK);
                        let q = xr.q[super::super::q8_packed::offset(k / QK, b, e)];
                        q as f64 * xr.d[b] as f64
                    };
                    for c in 0..n {
                        let (mut exact, mut mag) = (0f64, 0f64);
                        for i in 0..k {
                            let (w, w_mag) = exact_w[c * k + i];
                            exact += w * xv(i);
                            mag += w_mag * xv(i).abs();
                        }
                        let got = ours[r * n + c] as f64;
                        assert!(
                            (got - exact).abs() <= mag * 1e-6 + 1e-9,
                            "{m}x{k}x{n} [{r},{c}]: {got} vs {exact}"
                        );
                    }
                }
            }
        }
    }
}
