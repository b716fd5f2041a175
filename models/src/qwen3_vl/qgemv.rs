//! Quantized products on the CPU: ggml blocks (Q8_0, Q4_K) times f32 rows, on rayon.
//!
//! Where the CPU has AVX512-VNNI, weights are instead held in the packed layouts of
//! [`super::q8_packed`] and [`super::q4k_packed`] (several times faster); the ggml-layout
//! path below serves every other CPU, and [`tiled`] splits the work for both.
//!
//! candle 0.11's quantized matmul runs on its own spin-barrier thread pool, and on x86 repacks
//! the blocks into tiles it keeps beside them. Decode is hundreds of small products per token;
//! on a machine whose cores are shared, every product waited at that barrier for a worker the
//! OS had not scheduled (≈ 45% of decode time went to spinning in `BarrierGuard::drop` and the
//! worker's loop), and quantized decode ran at a quarter of bf16's speed. Here the same dot
//! products (candle's public `vec_dot` kernels, AVX2 where the CPU has it, picked at run time)
//! run as rayon tasks, which a thread that is not scheduled cannot hold up: the others steal its
//! share. The blocks are used in place, never repacked, so each weight is held once.
//!
//! Activations are quantized once per product (and once per token for all the MoE experts
//! that share them, [`QWeight::matmul_quantized`]) to the format's dot-product type (Q8_0 rows
//! for Q8_0 weights, Q8_K for Q4_K), exactly as candle's generic CPU matmul does; the products
//! are bit-for-bit those of `candle_core::quantized::k_quants::matmul`.

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ8K, BlockQ8_0, GgmlType};
use candle_core::quantized::GgmlDType;
use rayon::prelude::*;

pub use super::q4k_packed::PackedQ4K;
use super::q8_acts;
pub use super::q8_packed::PackedQ8;

/// Output columns per rayon task (a multiple of 4: the kernels compute column quads).
pub(super) const COLS_PER_TASK: usize = 64;

/// Activation rows per task in a product of many rows: the quantized rows of one tile stay in
/// cache while each weight quad is read once per tile.
pub(super) const ROWS_PER_TILE: usize = 16;

/// A quantized `[rows, cols]` weight held as its ggml blocks, row-major.
#[derive(Debug)]
pub enum QWeight {
    Q8_0 {
        blocks: Vec<BlockQ8_0>,
        rows: usize,
        cols: usize,
    },
    /// Q8_0 repacked for AVX512-VNNI ([`PackedQ8`]), where the CPU has it.
    Q8_0Packed(PackedQ8),
    /// Q4_K repacked for AVX512-VNNI ([`PackedQ4K`]), where the CPU has it.
    Q4KPacked(PackedQ4K),
    Q4K {
        blocks: Vec<BlockQ4K>,
        rows: usize,
        cols: usize,
    },
}

/// Activation rows quantized for one weight format (see [`QWeight::quantize`]).
pub enum QActs {
    Q8_0(Vec<BlockQ8_0>),
    Q8K(Vec<BlockQ8K>),
    Q8Packed(q8_acts::Acts),
}

impl QWeight {
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Self::Q8_0 { rows, cols, .. } | Self::Q4K { rows, cols, .. } => (*rows, *cols),
            Self::Q8_0Packed(p) => p.dims(),
            Self::Q4KPacked(p) => p.dims(),
        }
    }

    pub fn dtype(&self) -> GgmlDType {
        match self {
            Self::Q8_0 { .. } | Self::Q8_0Packed(_) => GgmlDType::Q8_0,
            Self::Q4K { .. } | Self::Q4KPacked(_) => GgmlDType::Q4K,
        }
    }

    /// Bytes of the blocks.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Q8_0 { blocks, .. } => std::mem::size_of_val(blocks.as_slice()),
            Self::Q8_0Packed(p) => p.bytes(),
            Self::Q4KPacked(p) => p.bytes(),
            Self::Q4K { blocks, .. } => std::mem::size_of_val(blocks.as_slice()),
        }
    }

    /// `m` rows of `x` (`[m, cols]`, row-major) quantized for this weight's kernels.
    pub fn quantize(&self, x: &[f32], m: usize) -> QActs {
        let (_, k) = self.dims();
        assert_eq!(x.len(), m * k, "activation rows of the wrong width");
        match self {
            Self::Q8_0 { .. } => QActs::Q8_0(quantize_rows::<BlockQ8_0>(x, m, k)),
            Self::Q8_0Packed(_) | Self::Q4KPacked(_) => QActs::Q8Packed(q8_acts::quantize(x, m, k)),
            Self::Q4K { .. } => QActs::Q8K(quantize_rows::<BlockQ8K>(x, m, k)),
        }
    }

    /// The weight dequantized to bf16 `[rows, cols]`, row-major: for products with many rows,
    /// where a bf16 GEMM on the dequantized weight does far more per byte read than dot
    /// products of quantized blocks. Each value `q·d` is computed in f32 and rounded once.
    pub fn dequantize_bf16(&self) -> Vec<half::bf16> {
        fn each<T: GgmlType + Sync>(blocks: &[T], cols: usize, out: &mut [half::bf16]) {
            const ROWS: usize = 16;
            let kb = cols / T::BLCK_SIZE;
            out.par_chunks_mut(ROWS * cols)
                .zip(blocks.par_chunks(ROWS * kb))
                .for_each(|(out, blocks)| {
                    let mut f = vec![0f32; out.len()];
                    T::to_float(blocks, &mut f);
                    for (o, v) in out.iter_mut().zip(&f) {
                        *o = half::bf16::from_f32(*v);
                    }
                });
        }
        match self {
            Self::Q8_0Packed(p) => return p.dequantize_bf16(),
            Self::Q4KPacked(p) => return p.dequantize_bf16(),
            _ => {}
        }
        let (rows, cols) = self.dims();
        let mut out = vec![half::bf16::ZERO; rows * cols];
        match self {
            Self::Q8_0 { blocks, .. } => each(blocks, cols, &mut out),
            Self::Q8_0Packed(_) | Self::Q4KPacked(_) => unreachable!("returned above"),
            Self::Q4K { blocks, .. } => each(blocks, cols, &mut out),
        }
        out
    }

    /// `x · Wᵀ` for `m` rows of `x` `[m, cols]` into `dst` `[m, rows]`.
    pub fn matmul(&self, x: &[f32], m: usize, dst: &mut [f32]) {
        let acts = self.quantize(x, m);
        self.matmul_quantized(&acts, m, dst);
    }

    /// [`QWeight::matmul`] of rows already quantized by [`QWeight::quantize`] of a weight of
    /// the same format and width (the MoE experts share one quantization of a token).
    pub fn matmul_quantized(&self, acts: &QActs, m: usize, dst: &mut [f32]) {
        match (self, acts) {
            (Self::Q8_0 { blocks, rows, cols }, QActs::Q8_0(a)) => {
                #[cfg(target_arch = "x86_64")]
                if let Some(quad) = x86::q8_0_quad() {
                    return matmul_blocks(blocks, a, (m, *cols, *rows), dst, quad);
                }
                matmul_blocks(blocks, a, (m, *cols, *rows), dst, candle_quad)
            }
            (Self::Q8_0Packed(p), QActs::Q8Packed(a)) => p.matmul(a, m, dst),
            (Self::Q4KPacked(p), QActs::Q8Packed(a)) => p.matmul(a, m, dst),
            (Self::Q4K { blocks, rows, cols }, QActs::Q8K(a)) => {
                matmul_blocks(blocks, a, (m, *cols, *rows), dst, candle_quad)
            }
            _ => panic!("activations quantized for another weight format"),
        }
    }
}

fn quantize_rows<B: GgmlType>(x: &[f32], m: usize, k: usize) -> Vec<B> {
    let kb = k / B::BLCK_SIZE;
    let mut out = vec![B::zeros(); m * kb];
    for (row, blocks) in x.chunks_exact(k).zip(out.chunks_exact_mut(kb.max(1))) {
        B::from_float(row, blocks);
    }
    out
}

/// Raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
pub(super) struct Out(pub(super) *mut f32);
// SAFETY: every task writes only its own (row, column) elements; see `matmul_blocks`.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// Through a method, so closures capture the whole (Sync) wrapper, not its pointer field.
    pub(super) fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Four dot products of weight rows with one activation row (`k` values each).
type Quad<T> = fn(usize, [&[T]; 4], &[<T as GgmlType>::VecDotType]) -> [f32; 4];

/// candle's own kernel for a quad (picked at run time by candle).
fn candle_quad<T: GgmlType>(k: usize, w: [&[T]; 4], x: &[T::VecDotType]) -> [f32; 4] {
    let (a, b, c, d) = T::vec_dot_4(k, w[0], w[1], w[2], w[3], x);
    [a, b, c, d]
}

/// `dst[r, c] = dot(lhs row r, weight row c)` for the `[n, k]` weight `rhs` (row-major blocks)
/// and `m` quantized rows `lhs`, the columns in quads through `quad` and the last 0..=3
/// through `vec_dot_2`/`vec_dot`, as candle's generic matmul does (so the sums are the same).
fn matmul_blocks<T: GgmlType + Sync>(
    rhs: &[T],
    lhs: &[T::VecDotType],
    (m, k, n): (usize, usize, usize),
    dst: &mut [f32],
    quad: Quad<T>,
) where
    T::VecDotType: Sync,
{
    let kb = k / T::BLCK_SIZE;
    assert!(rhs.len() == n * kb && lhs.len() == m * kb && dst.len() >= m * n);
    let w = |c: usize| &rhs[c * kb..(c + 1) * kb];
    let x = |r: usize| &lhs[r * kb..(r + 1) * kb];
    // Columns c0..c1 of row r (c0 a multiple of 4), into `out[0..c1 - c0]`.
    let row_range = |r: usize, c0: usize, c1: usize, out: &mut [f32]| {
        let mut c = c0;
        while c + 4 <= c1 {
            let d = quad(k, [w(c), w(c + 1), w(c + 2), w(c + 3)], x(r));
            out[c - c0..c - c0 + 4].copy_from_slice(&d);
            c += 4;
        }
        if c1 - c >= 2 {
            let (a, b) = T::vec_dot_2(k, w(c), w(c + 1), x(r));
            out[c - c0] = a;
            out[c - c0 + 1] = b;
            c += 2;
        }
        if c < c1 {
            out[c - c0] = T::vec_dot(k, w(c), x(r));
        }
    };
    tiled(m, n, dst, row_range);
}

/// Runs `row_range(r, c0, c1, out)` — columns `c0..c1` of output row `r` into `out` — over
/// every element of `dst` `[m, n]`, as rayon tasks: one row in chunks of [`COLS_PER_TASK`]
/// columns, or tiles of [`ROWS_PER_TILE`] rows by those columns, walked four columns at a
/// time so that each weight quad is read once per tile. `c0` is always a multiple of 4.
pub(super) fn tiled<F>(m: usize, n: usize, dst: &mut [f32], row_range: F)
where
    F: Fn(usize, usize, usize, &mut [f32]) + Sync,
{
    assert!(dst.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if m == 1 {
        dst[..n]
            .par_chunks_mut(COLS_PER_TASK)
            .enumerate()
            .for_each(|(i, out)| {
                let c0 = i * COLS_PER_TASK;
                row_range(0, c0, c0 + out.len(), out)
            });
        return;
    }
    let col_tasks = n.div_ceil(COLS_PER_TASK);
    let row_tiles = m.div_ceil(ROWS_PER_TILE);
    let out = Out(dst.as_mut_ptr());
    (0..row_tiles * col_tasks).into_par_iter().for_each(|item| {
        let (tile, ct) = (item / col_tasks, item % col_tasks);
        let (c0, c1) = (ct * COLS_PER_TASK, ((ct + 1) * COLS_PER_TASK).min(n));
        let mut c = c0;
        while c < c1 {
            let c_end = (c + 4).min(c1);
            for r in tile * ROWS_PER_TILE..((tile + 1) * ROWS_PER_TILE).min(m) {
                // SAFETY: row r, columns c..c_end belong to this item alone, inside dst (m·n).
                let o = unsafe { std::slice::from_raw_parts_mut(out.at(r * n + c), c_end - c) };
                row_range(r, c, c_end, o);
            }
            c = c_end;
        }
    });
}

/// Q8_0 quads on x86: four weight rows against one activation row with four independent
/// accumulators and the activation block loaded once, the f16 scales converted by F16C.
/// candle's AVX2 `vec_dot` (one row at a time, one dependent accumulator, scales through a
/// library call) is compute-bound at about a third of the memory bandwidth. The integer sums,
/// the scale products and the f32 accumulation per row are those of candle's kernel, in the
/// same order, so the results are bit for bit the same.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Quad;
    use candle_core::quantized::k_quants::BlockQ8_0;
    use std::arch::x86_64::*;

    // The block layout read below: the f16 scale, then 32 signed quants.
    const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

    /// The fastest quad this CPU runs, if it has AVX2, FMA and F16C.
    pub fn q8_0_quad() -> Option<Quad<BlockQ8_0>> {
        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        {
            return None;
        }
        if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
            // SAFETY: the features `quad_vnni` enables were detected just above.
            return Some(|k, w, x| unsafe { quad_vnni(k, w, x) });
        }
        // SAFETY: as above, for `quad_avx2`'s features.
        Some(|k, w, x| unsafe { quad_avx2(k, w, x) })
    }

    /// An f16's bits to f32 through F16C (exact, as `half` converts).
    macro_rules! f16_to_f32 {
        ($bits:expr) => {
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128($bits as i32)))
        };
    }

    macro_rules! quad_fn {
        ($name:ident, $features:literal, |$ax:ident, $sy:ident| $isum:expr) => {
            #[target_feature(enable = $features)]
            unsafe fn $name(k: usize, w: [&[BlockQ8_0]; 4], x: &[BlockQ8_0]) -> [f32; 4] {
                let kb = k / 32;
                assert!(x.len() >= kb && w.iter().all(|r| r.len() >= kb));
                let mut acc = [_mm256_setzero_ps(); 4];
                for b in 0..kb {
                    let y = (&x[b] as *const BlockQ8_0).cast::<u8>();
                    let by = _mm256_loadu_si256(y.add(2).cast());
                    let dy = f16_to_f32!(y.cast::<u16>().read_unaligned());
                    for r in 0..4 {
                        let p = (&w[r][b] as *const BlockQ8_0).cast::<u8>();
                        let bx = _mm256_loadu_si256(p.add(2).cast());
                        let $ax = _mm256_sign_epi8(bx, bx);
                        let $sy = _mm256_sign_epi8(by, bx);
                        let q = _mm256_cvtepi32_ps($isum);
                        let d = _mm256_set1_ps(f16_to_f32!(p.cast::<u16>().read_unaligned()) * dy);
                        acc[r] = _mm256_fmadd_ps(d, q, acc[r]);
                    }
                }
                [hsum(acc[0]), hsum(acc[1]), hsum(acc[2]), hsum(acc[3])]
            }
        };
    }

    quad_fn!(quad_avx2, "avx2,fma,f16c", |ax, sy| _mm256_madd_epi16(
        _mm256_set1_epi16(1),
        _mm256_maddubs_epi16(ax, sy)
    ));
    // vpdpbusd forms the same sums of four u8·i8 products without the i16 step (exact: Q8_0
    // quants are within ±127, so the AVX2 path never saturates either).
    quad_fn!(
        quad_vnni,
        "avx2,fma,f16c,avx512f,avx512vl,avx512vnni",
        |ax, sy| _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy)
    );

    /// candle's `hsum_float_8`, in its order.
    #[target_feature(enable = "avx2,fma")]
    fn hsum(x: __m256) -> f32 {
        let res = _mm256_extractf128_ps(x, 1);
        let res = _mm_add_ps(res, _mm256_castps256_ps128(x));
        let res = _mm_add_ps(res, _mm_movehl_ps(res, res));
        let res = _mm_add_ss(res, _mm_movehdup_ps(res));
        _mm_cvtss_f32(res)
    }

    /// Both quads, whichever the CPU runs, give candle's `vec_dot` bit for bit, including
    /// extreme quants (±127) and zero blocks.
    #[cfg(test)]
    #[test]
    fn quads_are_candles_vec_dot() {
        use candle_core::quantized::k_quants::GgmlType;
        let k = 1024;
        let mut seed = 7u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let mut rows: Vec<Vec<BlockQ8_0>> = Vec::new();
        for r in 0..5 {
            let mut v: Vec<f32> = (0..k).map(|_| rnd() * (r + 1) as f32).collect();
            v[..32].fill(0.0);
            v[40] = 100.0;
            let mut b = vec![BlockQ8_0::zeros(); k / 32];
            BlockQ8_0::from_float(&v, &mut b);
            rows.push(b);
        }
        let w = [&rows[0][..], &rows[1][..], &rows[2][..], &rows[3][..]];
        let x = &rows[4];
        let want = w.map(|r| BlockQ8_0::vec_dot(k, r, x));
        let detected = |f: &str| match f {
            "avx2" => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c"),
            _ => is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl"),
        };
        if detected("avx2") {
            // SAFETY: features detected.
            assert_eq!(unsafe { quad_avx2(k, w, x) }, want);
            if detected("vnni") {
                // SAFETY: features detected.
                assert_eq!(unsafe { quad_vnni(k, w, x) }, want);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants;
    use candle_core::{Device, Tensor};

    fn blocks<B: GgmlType>(w: &[f32], k: usize) -> Vec<B> {
        let mut b = vec![B::zeros(); w.len() / B::BLCK_SIZE];
        let _ = k;
        B::from_float(w, &mut b);
        b
    }

    /// Bit for bit candle's generic CPU matmul (the same kernels, the same column grouping),
    /// for one row and for several tiles of rows, with column counts that leave 1, 2 and 3
    /// columns after the quads and span several tasks.
    #[test]
    fn products_are_candles_generic_matmul() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let k = 512;
        for n in [96, 133, 130, 131] {
            let w: Vec<f32> = Tensor::randn(0f32, 0.05, (n, k), &dev)?
                .flatten_all()?
                .to_vec1()?;
            let q8 = QWeight::Q8_0 {
                blocks: blocks::<BlockQ8_0>(&w, k),
                rows: n,
                cols: k,
            };
            let q4 = QWeight::Q4K {
                blocks: blocks::<BlockQ4K>(&w, k),
                rows: n,
                cols: k,
            };
            for m in [1, 3, 37] {
                let x: Vec<f32> = Tensor::randn(0f32, 1.0, (m, k), &dev)?
                    .flatten_all()?
                    .to_vec1()?;
                for q in [&q8, &q4] {
                    let mut ours = vec![0f32; m * n];
                    q.matmul(&x, m, &mut ours);
                    let mut want = vec![0f32; m * n];
                    match q {
                        QWeight::Q8_0 { blocks, .. } => {
                            k_quants::matmul((m, k, n), &x, blocks, &mut want)?
                        }
                        QWeight::Q4K { blocks, .. } => {
                            k_quants::matmul((m, k, n), &x, blocks, &mut want)?
                        }
                        QWeight::Q8_0Packed(_) | QWeight::Q4KPacked(_) => {
                            unreachable!("the packed formats test their own")
                        }
                    }
                    assert!(ours == want, "{:?} {m}x{k}x{n}", q.dtype());
                }
            }
        }
        Ok(())
    }
}
