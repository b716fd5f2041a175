//! Q8_0 weights repacked for `vpdpbusd` (AVX512-VNNI), for quantized decode.
//!
//! Why: in ggml's layout a Q8_0 block is an f16 scale and 32 quants, and every block's sum has
//! to be scaled before the next is added. The four-row kernel in [`super::qgemv`] spends about
//! ten instructions per block and row (sign tricks, one dot, a scalar scale conversion, a
//! broadcast, a multiply-add) and decoded the 30B-A3B shape at 0.45× llama.cpp's Q8_0, bound
//! by arithmetic at a third of the memory bandwidth.
//!
//! Here the blocks of a row are taken sixteen at a time, one f32 lane per block: the quants
//! are stored so that one 64-byte load holds the same four bytes of each of the sixteen
//! blocks, so eight `vpdpbusd` complete the sixteen block sums with no horizontal step, and
//! one conversion, one multiply and one multiply-add scale and add them. A row's last group
//! may have fewer blocks (masked loads, no padding). `vpdpbusd` multiplies unsigned by signed
//! bytes, so the weights are stored offset by 128 (`q + 128`, 1..=255) and each activation
//! block's `128·Σx` is subtracted, through the initial value of its sum — exact in i32.
//!
//! Memory order matters as much as the arithmetic: a task reads its weight rows one at a
//! time, each front to back, and each group starts with its scales, so every thread reads one
//! sequential stream. Four rows side by side (four streams per thread) decoded the 30B-A3B
//! shape at 27–33 tok/s, one row at a time at 46–56.
//!
//! Numbers: the blocks are exactly ggml's (quantized by candle, then moved), the activations
//! are quantized per 32 values as candle does, and each block's integer sum is exact; only the
//! f32 accumulation over blocks differs from candle's kernel (one term per block here, one
//! per four quants there). The scales stay f16, so a weight takes ggml's 34 bytes per block.

use candle_core::quantized::k_quants::BlockQ8_0;
use half::{bf16, f16};
use rayon::prelude::*;

use super::q8_acts::{ActRow, Acts};

/// Values per block.
pub(super) const QK: usize = 32;
/// Blocks per group: one f32 lane each.
pub(super) const GROUP: usize = 16;

/// Whether this CPU runs the kernel (detected once). Where it does not, Q8_0 weights stay in
/// ggml's layout for [`super::qgemv`]'s kernels.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512vnni")
                && std::is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Where quant `e` of block `b` of an activation row of `kb` blocks lives: group `b / 16`
/// (of `g` blocks), then 4-byte column `e / 4` of the group (`4·g` bytes), then the block's
/// lane. A weight row's groups hold their quants in the same order, after their scales.
#[inline(always)]
pub(super) fn offset(kb: usize, b: usize, e: usize) -> usize {
    let (j, lane) = (b / GROUP, b % GROUP);
    let g = GROUP.min(kb - j * GROUP);
    j * GROUP * QK + in_group(g, lane, e)
}

/// Where byte `e` of the block in lane `lane` lives in a group of `g` blocks' quants.
#[inline(always)]
pub(super) fn in_group(g: usize, lane: usize, e: usize) -> usize {
    4 * g * (e / 4) + 4 * lane + e % 4
}

/// Block `b` of a packed weight row of `kb` blocks: where its group starts, the group's
/// block count, and the block's lane.
#[inline(always)]
fn group_of(kb: usize, b: usize) -> (usize, usize, usize) {
    let (j, lane) = (b / GROUP, b % GROUP);
    (j * GROUP * (QK + 2), GROUP.min(kb - j * GROUP), lane)
}

/// A block's scale and quants. candle's `BlockQ8_0` is `#[repr(C)]` `{ d: f16, qs: [i8; 32] }`
/// with private fields.
pub(super) fn parts(b: &BlockQ8_0) -> (f16, [i8; QK]) {
    const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 2 + QK);
    let p = (b as *const BlockQ8_0).cast::<u8>();
    // SAFETY: the block is 34 bytes (asserted): 2 of f16 scale, then 32 quants.
    unsafe {
        let d = f16::from_bits(p.cast::<u16>().read_unaligned());
        let qs = p.add(2).cast::<[i8; QK]>().read_unaligned();
        (d, qs)
    }
}

/// A `[rows, cols]` Q8_0 weight in the packed layout.
#[derive(Debug)]
pub struct PackedQ8 {
    /// Row after row; each row group after group (sixteen blocks, the last maybe fewer), each
    /// group its blocks' f16 scales (little-endian) and then their quants (`q + 128`, in
    /// [`offset`]'s order within the group), so that a row is read as one stream, front to
    /// back.
    data: Vec<u8>,
    rows: usize,
    cols: usize,
}

impl PackedQ8 {
    /// An all-zero weight, to be filled by [`PackedQ8::pack_rows`].
    pub fn zeroed(rows: usize, cols: usize) -> Self {
        assert!(
            cols.is_multiple_of(QK),
            "Q8_0 needs a width that is a multiple of 32"
        );
        Self {
            data: vec![0; rows * (cols + 2 * (cols / QK))],
            rows,
            cols,
        }
    }

    /// Bytes per packed row.
    fn stride(&self) -> usize {
        self.cols + 2 * (self.cols / QK)
    }

    /// Rows `first..` from ggml blocks (`cols / 32` per row).
    pub fn pack_rows(&mut self, first: usize, blocks: &[BlockQ8_0]) {
        let kb = self.cols / QK;
        assert!(blocks.len().is_multiple_of(kb) && first + blocks.len() / kb <= self.rows);
        let stride = self.stride();
        for (i, row) in blocks.chunks_exact(kb).enumerate() {
            let dst = &mut self.data[(first + i) * stride..][..stride];
            for (b, block) in row.iter().enumerate() {
                let (d, qs) = parts(block);
                let (group, g, lane) = group_of(kb, b);
                let scale = group + 2 * lane;
                dst[scale..scale + 2].copy_from_slice(&d.to_le_bytes());
                for (e, &q) in qs.iter().enumerate() {
                    dst[group + 2 * g + in_group(g, lane, e)] = (q as i16 + 128) as u8;
                }
            }
        }
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes held (quants and scales: ggml's 34 per block).
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The weight as bf16 `[rows, cols]`: each `q·d` in f32, rounded once.
    pub fn dequantize_bf16(&self) -> Vec<bf16> {
        let (k, kb) = (self.cols, self.cols / QK);
        let mut out = vec![bf16::ZERO; self.rows * k];
        out.par_chunks_mut(k)
            .zip(self.data.par_chunks(self.stride()))
            .for_each(|(out, row)| {
                #[cfg(target_arch = "x86_64")]
                if available() {
                    // SAFETY: the features are present; the slices are one row's.
                    return unsafe { x86::dequantize_row(row, out) };
                }
                for (b, out) in out.chunks_exact_mut(QK).enumerate() {
                    let (group, g, lane) = group_of(kb, b);
                    let scale = group + 2 * lane;
                    let d = f16::from_le_bytes([row[scale], row[scale + 1]]).to_f32();
                    for (e, o) in out.iter_mut().enumerate() {
                        let q = row[group + 2 * g + in_group(g, lane, e)] as i32 - 128;
                        *o = bf16::from_f32(q as f32 * d);
                    }
                }
            });
        out
    }

    /// `dst[r, c] = Σ x[r]·w[c]` for `m` activation rows quantized by [`super::q8_acts::quantize`] into `dst`
    /// `[m, rows]`.
    pub fn matmul(&self, acts: &Acts, m: usize, dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        let kernel: Kernel = x86::dots;
        #[cfg(not(target_arch = "x86_64"))]
        let kernel: Kernel = |_, _, _| unreachable!("no packed weights without AVX512-VNNI");
        products(
            acts,
            (m, self.rows, self.cols),
            dst,
            (&self.data, self.stride()),
            kernel,
        );
    }
}

/// A packed format's kernel: `out[i·xs.len() + j]` = the dot product of weight row `i` of
/// `rows` with activation row `xs[j]`, for one to [`XS`] activation rows. Unsafe: it needs
/// AVX512-VNNI ([`available`]).
pub(super) type Kernel = unsafe fn(&[u8], &[ActRow], &mut [f32]);

/// Every element of `dst` `[m, n]` from the packed weight `data` (rows of `stride` bytes, of
/// `k` values each) through `kernel`, as rayon tasks.
///
/// One weight row at a time: a task then reads its rows as one sequential stream. (Two or four
/// rows side by side, as separate streams, decoded the 30B-A3B shape at 27–33 tok/s where one
/// row at a time reached 46–56.) With several activation rows (a short prompt, or an expert's
/// share of one), a task takes a tile of rows by a run of weight rows, and each weight load
/// serves up to [`XS`] activation rows.
pub(super) fn products(
    acts: &Acts,
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (data, stride): (&[u8], usize),
    kernel: Kernel,
) {
    use super::qgemv::{Out, COLS_PER_TASK, ROWS_PER_TILE};
    assert!(acts.k == k, "activations of another width");
    assert!(acts.m >= m && dst.len() >= m * n);
    assert!(available(), "packed weights on a CPU without AVX512-VNNI");
    // Weight rows c0.. with the activation rows xs, into out ([rows, xs.len()]).
    let dots = |c0: usize, xs: &[ActRow], out: &mut [f32]| {
        let rows = &data[c0 * stride..][..out.len() / xs.len() * stride];
        // SAFETY: the CPU has AVX512-VNNI (asserted above); the kernel checks the widths.
        unsafe { kernel(rows, xs, out) }
    };
    if m <= 1 {
        let x = [acts.row(0)];
        super::qgemv::tiled(m, n, dst, |_, c0, c1, out| {
            dots(c0, &x, &mut out[..c1 - c0])
        });
        return;
    }
    let col_tasks = n.div_ceil(COLS_PER_TASK);
    let out = Out(dst.as_mut_ptr());
    (0..m.div_ceil(ROWS_PER_TILE) * col_tasks)
        .into_par_iter()
        .for_each(|item| {
            let (tile, task) = (item / col_tasks, item % col_tasks);
            let (c0, c1) = (task * COLS_PER_TASK, ((task + 1) * COLS_PER_TASK).min(n));
            let r0 = tile * ROWS_PER_TILE;
            let rows: Vec<ActRow> = (r0..(r0 + ROWS_PER_TILE).min(m))
                .map(|r| acts.row(r))
                .collect();
            let mut block = vec![0f32; (c1 - c0) * XS];
            for (j, xs) in rows.chunks(XS).enumerate() {
                let block = &mut block[..(c1 - c0) * xs.len()];
                dots(c0, xs, block);
                for (i, values) in block.chunks_exact(xs.len()).enumerate() {
                    for (l, &v) in values.iter().enumerate() {
                        let r = r0 + j * XS + l;
                        // SAFETY: row r (< m), column c0 + i (< n) belong to this item alone.
                        unsafe { *out.at(r * n + c0 + i) = v };
                    }
                }
            }
        });
}

/// Activation rows that share each weight load in a product of several rows.
pub(super) const XS: usize = 4;

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::{bf16, ActRow, GROUP, QK};
    use std::arch::x86_64::*;

    /// `$kernel::<R>(rows, xs, out)` with `R = xs.len()`, from 1 to [`super::XS`] (the
    /// kernels are const-generic in the number of activation rows they share loads between).
    macro_rules! by_row_count {
        ($kernel:ident, $rows:expr, $xs:expr, $out:expr) => {
            match $xs.len() {
                1 => $kernel::<1>($rows, $xs, $out),
                2 => $kernel::<2>($rows, $xs, $out),
                3 => $kernel::<3>($rows, $xs, $out),
                4 => $kernel::<4>($rows, $xs, $out),
                n => panic!("{n} activation rows at once"),
            }
        };
    }
    pub(in super::super) use by_row_count;

    /// `out[i·R + j]` = the dot product of packed weight row `i` of `rows` with activation row
    /// `xs[j]` (all of the same width), for `R = xs.len()` from 1 to [`super::XS`].
    ///
    /// # Safety
    /// The CPU has AVX512-VNNI ([`super::available`]).
    pub(super) unsafe fn dots(rows: &[u8], xs: &[ActRow], out: &mut [f32]) {
        by_row_count!(dots_r, rows, xs, out)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn dots_r<const R: usize>(rows: &[u8], xs: &[ActRow], out: &mut [f32]) {
        let xs: &[ActRow; R] = xs.try_into().expect("R activation rows");
        let kb = xs[0].d.len();
        let stride = kb * (QK + 2);
        for x in xs {
            assert!(x.q.len() == kb * QK && x.sums.len() == kb && x.d.len() == kb);
        }
        assert!(rows.len() * R == out.len() * stride);
        row_sums::<R>(out, |i| {
            let row = &rows[i * stride..][..stride];
            let mut acc = [_mm512_setzero_ps(); R];
            let mut b = 0;
            // Full groups with the group size a constant (plain loads, fixed offsets), then
            // the row's last group, if shorter, through masks.
            while b + GROUP <= kb {
                group(row, xs, b, GROUP, !0, &mut acc);
                b += GROUP;
            }
            if b < kb {
                let g = kb - b;
                group(row, xs, b, g, (1 << g) - 1, &mut acc);
            }
            acc
        });
    }

    /// `out[i·R + j]` = the sum of the lanes of `row(i)[j]`, sixteen sums at a time: each
    /// accumulator is kept, and sixteen are summed across their lanes together (fifteen adds
    /// and thirty shuffles, where one at a time takes about eight dependent steps each; a
    /// 2048-wide Q4_K row has only four groups, so that reduction was a fifth of its time).
    #[inline(always)]
    pub(in super::super) unsafe fn row_sums<const R: usize>(
        out: &mut [f32],
        mut row: impl FnMut(usize) -> [__m512; R],
    ) {
        let per_batch = 16 / R;
        for (batch, out) in out.chunks_mut(per_batch * R).enumerate() {
            let mut acc = [_mm512_setzero_ps(); 16];
            for i in 0..out.len() / R {
                acc[i * R..][..R].copy_from_slice(&row(per_batch * batch + i));
            }
            let mask = if out.len() == 16 {
                !0
            } else {
                (1u16 << out.len()) - 1
            };
            _mm512_mask_storeu_ps(out.as_mut_ptr(), mask, lane_sums(&acc));
        }
    }

    /// Lane `i` = the sum of the sixteen lanes of `v[i]`.
    #[inline(always)]
    unsafe fn lane_sums(v: &[__m512; 16]) -> __m512 {
        // Halve the lanes per vector while doubling the vectors per register: 256-bit halves,
        // then 128-bit quarters, then pairs within quarters, then single lanes.
        let w: [__m512; 8] = std::array::from_fn(|i| {
            let (a, b) = (v[2 * i], v[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x44>(a, b),
                _mm512_shuffle_f32x4::<0xEE>(a, b),
            )
        });
        // w[i]: quarters 0–1 hold v[2i], 2–3 hold v[2i + 1].
        let y: [__m512; 4] = std::array::from_fn(|i| {
            let (a, b) = (w[2 * i], w[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(a, b),
                _mm512_shuffle_f32x4::<0xDD>(a, b),
            )
        });
        // y[i]: quarter q holds four partial sums of v[4i + q].
        let z: [__m512; 2] = std::array::from_fn(|i| {
            let (a, b) = (y[2 * i], y[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(a, b),
                _mm512_shuffle_ps::<0xEE>(a, b),
            )
        });
        // z[i]: quarter q holds two partial sums of v[8i + q], then two of v[8i + 4 + q].
        let r = _mm512_add_ps(
            _mm512_shuffle_ps::<0x88>(z[0], z[1]),
            _mm512_shuffle_ps::<0xDD>(z[0], z[1]),
        );
        // r: lane 4q + j holds v[4j + q]; put lane i's own sum in lane i.
        let index = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
        _mm512_permutexvar_ps(index, r)
    }

    /// `acc[j]` plus the sixteen (or `g`) block products of the group starting at block `b`
    /// with activation row `xs[j]`; each weight load serves every row.
    #[inline(always)]
    unsafe fn group<const R: usize>(
        row: &[u8],
        xs: &[ActRow; R],
        b: usize,
        g: usize,
        mask: __mmask16,
        acc: &mut [__m512; R],
    ) {
        let base = b * QK;
        let (scales, w) = (
            row.as_ptr().add(b * (QK + 2)),
            row.as_ptr().add(b * (QK + 2) + 2 * g),
        );
        // Two chains of `vpdpbusd` per activation row (even and odd columns): one chain of
        // eight waits on the instruction's latency (36–43 → 46–56 tok/s on the 30B-A3B
        // shape). Starting from -128·Σx takes the weights' offset out.
        let mut isum = [[_mm512_setzero_si512(); 2]; R];
        for (s, x) in isum.iter_mut().zip(xs) {
            let sums = _mm512_maskz_loadu_epi32(mask, x.sums.as_ptr().add(b));
            s[0] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<7>(sums));
        }
        for t in 0..QK / 4 {
            let wv = _mm512_maskz_loadu_epi32(mask, w.add(4 * g * t).cast());
            for (s, x) in isum.iter_mut().zip(xs) {
                let xv = _mm512_maskz_loadu_epi32(mask, x.q.as_ptr().add(base + 4 * g * t).cast());
                s[t % 2] = _mm512_dpbusd_epi32(s[t % 2], wv, xv);
            }
        }
        let dw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, scales.cast()));
        for ((a, s), x) in acc.iter_mut().zip(&isum).zip(xs) {
            let q = _mm512_cvtepi32_ps(_mm512_add_epi32(s[0], s[1]));
            let dx = _mm512_maskz_loadu_ps(mask, x.d.as_ptr().add(b));
            *a = _mm512_fmadd_ps(q, _mm512_mul_ps(dw, dx), *a);
        }
    }

    /// One packed row (quants, scales) to bf16 values in natural order: `q·d` in f32, rounded
    /// to nearest even (as `half` does; the products are normal numbers, never NaN).
    ///
    /// Each 16-byte quarter of a group's 4-byte column holds four bytes of four blocks; widened
    /// to i32 lanes, those lanes take their block's scale through a permute, and each block's
    /// four values are stored as one 8-byte piece.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn dequantize_row(row: &[u8], out: &mut [bf16]) {
        let kb = out.len() / QK;
        assert!(row.len() == kb * (QK + 2) && out.len() == kb * QK);
        let o = out.as_mut_ptr();
        let lanes = quarter_lanes();
        let mut b = 0;
        while b < kb {
            let g = GROUP.min(kb - b);
            let mask: __mmask16 = if g == GROUP { !0 } else { (1 << g) - 1 };
            let group = row.as_ptr().add(b * (QK + 2));
            let d = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, group.cast()));
            for t in 0..QK / 4 {
                let column = group.add(2 * g + 4 * g * t);
                for (quarter, lanes) in lanes.iter().enumerate().take(g.div_ceil(4)) {
                    let blocks = (g - 4 * quarter).min(4);
                    let bytes = load_quarter(column, quarter, blocks);
                    let i = _mm512_sub_epi32(_mm512_cvtepu8_epi32(bytes), _mm512_set1_epi32(128));
                    let f = _mm512_mul_ps(_mm512_cvtepi32_ps(i), _mm512_permutexvar_ps(*lanes, d));
                    store_quarter(f, blocks, o.add((b + 4 * quarter) * QK + 4 * t), QK);
                }
            }
            b += g;
        }
    }

    /// For quarter j of a group's 4-byte column (16 bytes: four bytes of blocks 4j..4j+4),
    /// the lane → block index vector: lane i holds a byte of block 4j + i/4, to permute the
    /// blocks' scales onto the widened bytes.
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn quarter_lanes() -> [__m512i; 4] {
        std::array::from_fn(|j| {
            let index: [i32; 16] = std::array::from_fn(|i| (4 * j + i / 4) as i32);
            // SAFETY: 16 i32 read from a local array.
            unsafe { _mm512_loadu_si512(index.as_ptr().cast()) }
        })
    }

    /// Quarter `quarter` of the column at `column`, in a group whose quarter holds `blocks`
    /// (1..=4) blocks (the rest of the 16 bytes zero, never read).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(in super::super) unsafe fn load_quarter(
        column: *const u8,
        quarter: usize,
        blocks: usize,
    ) -> __m128i {
        _mm_maskz_loadu_epi8(
            ((1u32 << (4 * blocks)) - 1) as __mmask16,
            column.add(16 * quarter).cast(),
        )
    }

    /// Sixteen f32 values — four of each of `blocks` blocks — rounded to bf16 (nearest even,
    /// as `half` does for the finite values here) and stored as four values at
    /// `dst + i·stride` for block i.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(in super::super) unsafe fn store_quarter(
        f: __m512,
        blocks: usize,
        dst: *mut bf16,
        stride: usize,
    ) {
        let bits = _mm512_castps_si512(f);
        let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
        let rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
        let h = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(rounded));
        let mut pieces = [0u64; 4];
        _mm256_storeu_si256(pieces.as_mut_ptr().cast(), h);
        for (i, piece) in pieces.iter().enumerate().take(blocks) {
            dst.add(i * stride).cast::<u64>().write_unaligned(*piece);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::quantized::k_quants::GgmlType;

    /// `n` values uniform in ±scale/2 from a fixed LCG (also the Q4_K tests' inputs).
    pub(crate) fn values(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }

    fn blocks(w: &[f32]) -> Vec<BlockQ8_0> {
        let mut b = vec![BlockQ8_0::zeros(); w.len() / QK];
        BlockQ8_0::from_float(w, &mut b);
        b
    }

    /// Every byte of every block lands in its own place: the layout is a permutation.
    #[test]
    fn offsets_are_a_permutation_of_the_row() {
        for kb in [1, 3, 15, 16, 17, 24, 64, 70] {
            let mut seen = vec![false; kb * QK];
            for b in 0..kb {
                for e in 0..QK {
                    let o = offset(kb, b, e);
                    assert!(!seen[o], "kb {kb}: block {b} byte {e} collides");
                    seen[o] = true;
                }
            }
        }
    }

    /// The packed products against f64 sums of the same quantized values (exact integer block
    /// sums, f32 scale products), for widths with full and partial groups, one row and several,
    /// and column counts that leave 1–3 columns after the quads; and within f32 rounding of
    /// candle's own Q8_0 matmul. Dequantization gives back each `q·d`.
    #[test]
    fn products_match_the_quantized_values() {
        let why = "no AVX512-VNNI on this CPU";
        if super::super::cpu_ops::skip_without_bf16_kernels(!available(), why) {
            return;
        }
        for (k, n) in [(32, 5), (512, 67), (768, 130), (2048, 131)] {
            let kb = k / QK;
            let w = values(n * k, 3, 0.1);
            let wb = blocks(&w);
            let mut p = PackedQ8::zeroed(n, k);
            p.pack_rows(0, &wb[..kb * (n / 2)]);
            p.pack_rows(n / 2, &wb[kb * (n / 2)..]);
            let deq = p.dequantize_bf16();
            for (i, v) in deq.iter().enumerate() {
                let (d, qs) = parts(&wb[i / QK]);
                assert_eq!(*v, bf16::from_f32(qs[i % QK] as f32 * d.to_f32()));
            }
            for m in [1, 3, 20] {
                let mut x = values(m * k, 11 + m as u32, 2.0);
                x[5] = 0.0;
                x[..QK].fill(0.0); // a zero block: scale 0
                let acts = super::super::q8_acts::quantize(&x, m, k);
                let mut ours = vec![0f32; m * n];
                p.matmul(&acts, m, &mut ours);
                let mut candle = vec![0f32; m * n];
                candle_core::quantized::k_quants::matmul((m, k, n), &x, &wb, &mut candle).unwrap();
                let xb = blocks(&x);
                for r in 0..m {
                    for c in 0..n {
                        // The exact sum of the block terms, their magnitude, and that of
                        // all the products (candle sums partial sums of four products per lane,
                        // so its rounding scales with the latter).
                        let (mut want, mut mag, mut products) = (0f64, 0f64, 0f64);
                        for b in 0..kb {
                            let (dw, qw) = parts(&wb[c * kb + b]);
                            let (dx, qx) = parts(&xb[r * kb + b]);
                            let d = (dw.to_f32() * dx.to_f32()) as f64;
                            let prods = qw.iter().zip(&qx).map(|(&a, &b)| a as i32 * b as i32);
                            let isum: i32 = prods.clone().sum();
                            want += isum as f64 * d;
                            mag += (isum as f64 * d).abs();
                            products += prods.map(|p| p.abs() as f64).sum::<f64>() * d.abs();
                        }
                        let got = ours[r * n + c] as f64;
                        let tol = mag * 1e-6 + 1e-12;
                        assert!(
                            (got - want).abs() <= tol,
                            "{m}x{k}x{n} [{r},{c}]: {got} vs {want}"
                        );
                        let theirs = candle[r * n + c] as f64;
                        let tol = products * 1e-6 + 1e-12;
                        assert!((got - theirs).abs() <= tol, "vs candle: {got} vs {theirs}");
                    }
                }
            }
        }
    }
}
