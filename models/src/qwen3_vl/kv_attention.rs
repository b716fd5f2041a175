//! Attention of new query rows against the KV cache on the CPU: every decode step, and the
//! prefill wherever oneDNN's blocked kernel ([`super::cpu_attention`]) does not run (f32
//! models, CPUs or systems without it).
//!
//! Why: the general path (candle products in f32) widened the whole cache to f32 twice per layer
//! per token and multiplied each head through a GEMM built for large matrices. On the 30B-A3B
//! shape (4 layers, Q8_0) decode ran at 50 tok/s with 256 tokens of context and at 28 with 2048
//! — each layer's attention took ~4 ms at 2048, where its 4 MB of cache reads in ~0.1 ms at the
//! ~35 GB/s measured here. A screenshot's prompt alone is over a thousand tokens, and that
//! path's prefill held every head's full [L, S] scores at once. Here each task takes a block of
//! query rows of one KV head's group (in decode: all the query heads that share it), reads its
//! keys and values in their own dtype, and keeps only the block's scores.
//!
//! The queries are the last `L` of the `S` cached positions and attend causally: query row `i`
//! sees keys `0..=S - L + i` (the decoder's only mask).
//!
//! The arithmetic runs in `avx512` or `avx2` (per key widened once into registers, keys' sums
//! reduced across lanes together, P·V with the rows' accumulators in registers) or in portable
//! loops, whichever the CPU has (`Isa::detect`, once per call).
//!
//! Numerics follow [`super::cpu_attention`] (and transformers' eager attention where they
//! agree): scores accumulated and kept in f32, softmax in f32, probabilities rounded to the
//! cache's dtype before the product with V, f32 accumulation, one rounding of the output.

use candle_core::{DType, Tensor, WithDType};
use half::bf16;
use rayon::prelude::*;

use super::cpu_mm::with_view;
use super::cpu_ops::{exp, simd_dispatch, to_bf16};
use crate::{Error, Result};

/// `$kernel::<T, R>(p, v, (keys, hd), acc)` over the query rows in blocks of up to eight, `R`
/// the block's row count: the SIMD P·V kernels keep a block's accumulators in registers, so
/// the count is a constant. `p` `[rows, keys]`, `acc` `[rows, hd]`.
#[cfg(target_arch = "x86_64")]
macro_rules! row_blocks {
    ($kernel:ident, $p:expr, $v:expr, ($rows:expr, $keys:expr, $hd:expr), $acc:expr) => {{
        let (p, v, acc): (&[f32], &[T], &mut [f32]) = ($p, $v, $acc);
        let (rows, keys, hd) = ($rows, $keys, $hd);
        for r0 in (0..rows).step_by(8) {
            let (p, acc) = (p[r0 * keys..].as_ptr(), acc[r0 * hd..].as_mut_ptr());
            let (v, dims) = (v.as_ptr(), (keys, hd));
            match (rows - r0).min(8) {
                1 => $kernel::<T, 1>(p, v, dims, acc),
                2 => $kernel::<T, 2>(p, v, dims, acc),
                3 => $kernel::<T, 3>(p, v, dims, acc),
                4 => $kernel::<T, 4>(p, v, dims, acc),
                5 => $kernel::<T, 5>(p, v, dims, acc),
                6 => $kernel::<T, 6>(p, v, dims, acc),
                7 => $kernel::<T, 7>(p, v, dims, acc),
                _ => $kernel::<T, 8>(p, v, dims, acc),
            }
        }
    }};
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// The element types of a KV cache this kernel reads.
trait Element: WithDType {
    fn widen(self) -> f32;
    fn round(x: f32) -> Self;
    /// Sixteen elements from `p` widened to f32 lanes.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512;
    /// Eight elements from `p` widened to f32 lanes.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl Element for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
    #[inline(always)]
    fn round(x: f32) -> Self {
        to_bf16(x)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
    }
}

impl Element for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
    #[inline(always)]
    fn round(x: f32) -> Self {
        x
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512 {
        std::arch::x86_64::_mm512_loadu_ps(p)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
}

/// Whether [`attention`] takes `q` (its dtype and device).
pub fn supports(q: &Tensor) -> bool {
    q.device().is_cpu() && matches!(q.dtype(), DType::BF16 | DType::F32)
}

/// Query rows per task in a prefill: a block's f32 scores (rows × keys) stay within a core's L2
/// for prompts of a few thousand tokens.
const TASK_ROWS: usize = 64;

/// Causal `softmax(q·kᵀ·scale)·v` for `q` `(B, Hq, L, hd)`, the last `L` of the positions in
/// the cache views `k`, `v` `(B, Hkv, S, hd)` (rows dense, heads anywhere in their buffers);
/// query head `h` reads KV head `h / (Hq / Hkv)`. Returns `(B, Hq, L, hd)` in `q`'s dtype.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    attention_on(Isa::detect(), q, k, v, scale)
}

/// The vector units the kernels use: chosen once per call from what the CPU has (tests pick
/// each in turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Self::Avx2;
            }
        }
        Self::Portable
    }
}

fn attention_on(isa: Isa, q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    match q.dtype() {
        DType::BF16 => typed(q, k, v, (scale, isa), head_bf16),
        DType::F32 => typed(q, k, v, (scale, isa), head_f32),
        dtype => Err(Error::BadInput {
            what: "cache attention".into(),
            reason: format!("no CPU kernel for {dtype:?}"),
        }),
    }
}

fn typed<T: Element>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (scale, isa): (f32, Isa),
    head: HeadFn<T>,
) -> Result<Tensor> {
    let (b, hq, l, hd) = q.dims4()?;
    let (kb, hkv, keys, khd) = k.dims4()?;
    if l == 0
        || l > keys
        || kb != b
        || khd != hd
        || v.dims() != k.dims()
        || hkv == 0
        || hq % hkv != 0
    {
        return Err(Error::BadInput {
            what: "cache attention".into(),
            reason: format!(
                "q {:?} against k {:?}, v {:?}: no more query rows than keys, the same batch and \
                 head size, and query heads a multiple of KV heads are needed",
                q.dims(),
                k.dims(),
                v.dims()
            ),
        });
    }
    let cached = keys - l;
    // A KV head's group: its query heads' rows, head after head, each head's L positions.
    let group = (hq / hkv) * l;
    let per_task = if l == 1 { group } else { TASK_ROWS.min(group) };
    let q = q.contiguous()?;
    let mut out = vec![T::zero(); q.elem_count()];
    with_view::<T, _>(&q, |qs, ql| {
        let qs = &qs[ql.start_offset()..][..q.elem_count()];
        with_view::<T, _>(k, |ks, kl| {
            with_view::<T, _>(v, |vs, vl| {
                let k_off = super::cpu_mm::group_offsets(kl)?;
                let v_off = super::cpu_mm::group_offsets(vl)?;
                out.par_chunks_mut(group * hd)
                    .zip(qs.par_chunks(group * hd))
                    .enumerate()
                    .for_each(|(g, (out, q))| {
                        let k = &ks[k_off[g]..][..keys * hd];
                        let v = &vs[v_off[g]..][..keys * hd];
                        out.par_chunks_mut(per_task * hd)
                            .zip(q.par_chunks(per_task * hd))
                            .enumerate()
                            .for_each_init(Vec::new, |scratch, (t, (out, q))| {
                                let (row0, rows) = (t * per_task, out.len() / hd);
                                let mut block = Block {
                                    rows,
                                    keys,
                                    hd,
                                    cached,
                                    new: l,
                                    row0,
                                    scale,
                                    isa,
                                };
                                // Only the keys the block's rows see between them.
                                block.keys = (0..rows).map(|r| block.seen(r)).max().unwrap_or(keys);
                                let (k, v) = (&k[..block.keys * hd], &v[..block.keys * hd]);
                                head(q, k, v, block, scratch, out);
                            });
                    });
                Ok(())
            })
        })
    })?;
    Ok(Tensor::from_vec(out, (b, hq, l, hd), q.device())?)
}

/// A block of a KV head's query rows against its keys and values: [`head_generic`] compiled
/// for the CPU's vector units.
type HeadFn<T> = fn(&[T], &[T], &[T], Block, &mut Vec<f32>, &mut [T]);

/// A block of query rows of one KV head's group, and the keys each row sees.
#[derive(Debug, Clone, Copy)]
struct Block {
    rows: usize,
    /// Keys (and values) handed to the block.
    keys: usize,
    hd: usize,
    /// Row `r` is position `(row0 + r) % new` of the `new` tokens, and sees the `cached` keys
    /// before them and its own and the earlier new ones.
    cached: usize,
    new: usize,
    row0: usize,
    scale: f32,
    isa: Isa,
}

impl Block {
    /// Keys row `r` sees.
    fn seen(&self, r: usize) -> usize {
        (self.cached + (self.row0 + r) % self.new + 1).min(self.keys)
    }
}

simd_dispatch!(fn head_bf16(q: &[bf16], k: &[bf16], v: &[bf16], block: Block, scratch: &mut Vec<f32>, out: &mut [bf16]) => head_generic);
simd_dispatch!(fn head_f32(q: &[f32], k: &[f32], v: &[f32], block: Block, scratch: &mut Vec<f32>, out: &mut [f32]) => head_generic);

/// Lanes of the independent accumulators the loops below keep (one AVX-512 register of f32).
const L: usize = 16;

/// The block's query rows `q` `[rows, hd]` against one head's `keys` rows of `k` and `v`
/// `[keys, hd]` into `out` `[rows, hd]`; `scratch` is reused between calls.
#[inline(always)]
fn head_generic<T: Element>(
    q: &[T],
    k: &[T],
    v: &[T],
    block: Block,
    scratch: &mut Vec<f32>,
    out: &mut [T],
) {
    let Block {
        rows,
        keys,
        hd,
        scale,
        isa,
        ..
    } = block;
    scratch.clear();
    scratch.resize(rows * (hd + keys + hd) + hd, 0.0);
    let (qf, rest) = scratch.split_at_mut(rows * hd);
    let (scores, rest) = rest.split_at_mut(rows * keys);
    let (acc, row) = rest.split_at_mut(rows * hd);
    widen(q, qf);
    scores_of(isa, qf, k, (rows, keys, hd), scores);
    for (r, p) in scores.chunks_exact_mut(keys).enumerate() {
        let (seen, unseen) = p.split_at_mut(block.seen(r));
        softmax(seen, scale);
        for p in seen.iter_mut() {
            *p = T::round(*p).widen();
        }
        unseen.fill(0.0);
    }
    // O = P·V, accumulated in f32.
    weighted_values(isa, scores, v, (rows, keys, hd), acc, row);
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = T::round(a);
    }
}

/// `scores[r·keys + s]` = query row `r` · key `s`.
#[inline(always)]
fn scores_of<T: Element>(
    isa: Isa,
    qf: &[f32],
    k: &[T],
    (rows, keys, hd): (usize, usize, usize),
    scores: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (both): the CPU has the features `isa` names (`Isa::detect`).
        if isa == Isa::Avx512 && unsafe { avx512::scores(qf, k, (rows, keys, hd), scores) } {
            return;
        }
        if isa != Isa::Portable && hd.is_multiple_of(8) {
            return unsafe { avx2::scores(qf, k, (rows, keys, hd), scores) };
        }
    }
    for (s, key) in k.chunks_exact(hd).enumerate() {
        for (r, qr) in qf.chunks_exact(hd).enumerate() {
            scores[r * keys + s] = dot(qr, key);
        }
    }
}

/// `acc` `[rows, hd]` += `p` `[rows, keys]` · `v` `[keys, hd]`; `row` is `hd` of scratch.
#[inline(always)]
fn weighted_values<T: Element>(
    isa: Isa,
    p: &[f32],
    v: &[T],
    (rows, keys, hd): (usize, usize, usize),
    acc: &mut [f32],
    row: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (both): the CPU has the features `isa` names; hd is a multiple of the lanes.
        if isa == Isa::Avx512 && hd.is_multiple_of(16) {
            return unsafe { avx512::weighted_values(p, v, (rows, keys, hd), acc) };
        }
        if isa != Isa::Portable && hd.is_multiple_of(8) {
            return unsafe { avx2::weighted_values(p, v, (rows, keys, hd), acc) };
        }
    }
    // Value row by value row, each widened once for all the rows.
    for (s, value) in v.chunks_exact(hd).enumerate() {
        widen(value, row);
        for (r, acc) in acc.chunks_exact_mut(hd).enumerate() {
            let p = p[r * keys + s];
            for (a, &x) in acc.iter_mut().zip(row.iter()) {
                *a += p * x;
            }
        }
    }
}

#[inline(always)]
fn widen<T: Element>(x: &[T], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = x.widen();
    }
}

/// `Σ a·b` with [`L`] lanes of partial sums (so the loop vectorises without reassociating).
#[inline(always)]
fn dot<T: Element>(a: &[f32], b: &[T]) -> f32 {
    let mut lanes = [0f32; L];
    let split = a.len() / L * L;
    for (ca, cb) in a[..split].chunks_exact(L).zip(b[..split].chunks_exact(L)) {
        for l in 0..L {
            lanes[l] += ca[l] * cb[l].widen();
        }
    }
    let tail: f32 = a[split..]
        .iter()
        .zip(&b[split..])
        .map(|(x, y)| x * y.widen())
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// `s ← softmax(s·scale)` in f32.
#[inline(always)]
fn softmax(s: &mut [f32], scale: f32) {
    let max = s
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    // exp((x - max)·scale) = exp(x·scale - max·scale); scale > 0 keeps the maximum.
    let shift = max * scale;
    let mut lanes = [0f32; L];
    let split = s.len() / L * L;
    let (body, tail) = s.split_at_mut(split);
    for c in body.chunks_exact_mut(L) {
        for l in 0..L {
            c[l] = exp(c[l] * scale - shift);
            lanes[l] += c[l];
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for x in tail.iter_mut() {
        *x = exp(*x * scale - shift);
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in s.iter_mut() {
        *x *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qwen3_vl::cpu_ops::test_values as values;
    use candle_core::Device;

    /// (B, Hq, Hkv, hd, keys, new rows L)
    type Case = (usize, usize, usize, usize, usize, usize);

    /// Decode (one new row): GQA with three query heads per KV head, a head size and a key
    /// count that are not multiples of the vector width (the portable loops), two sequences;
    /// the head sizes the x86 kernels take, with more query rows per KV head than they hold in
    /// registers at once (12 = 8 + 4) and key counts around their blocks of 16 and 64. Prefill
    /// (causal): after a cache and from an empty one, groups of more rows than a task takes
    /// (tasks then span two query heads), in the portable and the x86 loops.
    const CASES: [Case; 8] = [
        (2, 6, 2, 40, 37, 1),
        (1, 24, 2, 128, 131, 1),
        (2, 4, 2, 64, 16, 1),
        (1, 8, 8, 128, 1, 1),
        (1, 6, 2, 40, 37, 5),
        (1, 8, 2, 128, 150, 70),
        (2, 4, 2, 64, 20, 20),
        (1, 2, 1, 128, 100, 100),
    ];

    /// q, and k, v as a cache hands them out: the first `keys` rows of buffers with room for
    /// more (heads not adjacent).
    fn operands(case: Case, dtype: DType) -> (Tensor, Tensor, Tensor) {
        let (b, hq, hkv, hd, keys, l) = case;
        let cap = keys + 11;
        let t = |dims: (usize, usize, usize, usize), seed, amp| {
            let n = dims.0 * dims.1 * dims.2 * dims.3;
            Tensor::from_vec(values(n, seed, amp), dims, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
        };
        let q = t((b, hq, l, hd), 1, 2.0);
        let k = t((b, hkv, cap, hd), 2, 2.0).narrow(2, 0, keys).unwrap();
        // Another capacity for v: its heads start at other offsets than k's.
        let v = t((b, hkv, cap + 5, hd), 3, 1.0).narrow(2, 0, keys).unwrap();
        (q, k, v)
    }

    /// The textbook computation in f64 on the same inputs, causal over the last L positions,
    /// the probabilities rounded as the kernel rounds them (to the cache's dtype); with each
    /// element, the slack for probabilities so close to a bf16 rounding midpoint that the
    /// kernel's f32 value may round to the other neighbour (one bf16 step times |v|).
    fn reference(case: Case, q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Vec<(f64, f64)> {
        let (b, hq, hkv, hd, keys, l) = case;
        // Row `r` of head `h` of sequence `i` of a (B, H, R, hd) tensor.
        let rows = |t: &Tensor| {
            let (_, h, r, _) = t.dims4().unwrap();
            let flat = t.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
            let flat = flat.to_vec1::<f64>().unwrap();
            move |i: usize, hi: usize, ri: usize| {
                flat[((i * h + hi) * r + ri) * hd..][..hd].to_vec()
            }
        };
        let bf = q.dtype() == DType::BF16;
        let round = |p: f64| match bf {
            true => bf16::from_f64(p).to_f64(),
            false => p as f32 as f64,
        };
        let step = |p: f64| match bf {
            true => {
                bf16::from_f64(p * (1.0 + 1e-5)).to_f64()
                    - bf16::from_f64(p * (1.0 - 1e-5)).to_f64()
            }
            false => 0.0,
        };
        let (q, k, v) = (rows(q), rows(k), rows(v));
        let mut out = Vec::new();
        for i in 0..b {
            for h in 0..hq {
                let kv = h / (hq / hkv);
                for row in 0..l {
                    let seen = keys - l + row + 1;
                    let qr = q(i, h, row);
                    let s: Vec<f64> = (0..seen)
                        .map(|j| {
                            qr.iter().zip(k(i, kv, j)).map(|(a, b)| a * b).sum::<f64>() * scale
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    let vs: Vec<Vec<f64>> = (0..seen).map(|j| v(i, kv, j)).collect();
                    out.extend((0..hd).map(|d| {
                        let terms = (0..seen).map(|j| (e[j] / sum, vs[j][d]));
                        let value = terms.clone().map(|(p, v)| round(p) * v).sum::<f64>();
                        let slack = terms.map(|(p, v)| step(p) * v.abs()).sum::<f64>();
                        (value, slack)
                    }));
                }
            }
        }
        out
    }

    /// Every kernel set this CPU can run (a CPU with AVX-512 has AVX2 and FMA).
    fn isas() -> Vec<Isa> {
        match Isa::detect() {
            Isa::Avx512 => vec![Isa::Portable, Isa::Avx2, Isa::Avx512],
            Isa::Avx2 => vec![Isa::Portable, Isa::Avx2],
            Isa::Portable => vec![Isa::Portable],
        }
    }

    fn check(dtype: DType, tol: f64) {
        for (isa, case) in isas().into_iter().flat_map(|i| CASES.map(|c| (i, c))) {
            let (q, k, v) = operands(case, dtype);
            let scale = (case.3 as f32).powf(-0.5);
            let got = attention_on(isa, &q, &k, &v, scale).unwrap();
            assert_eq!(got.dims(), q.dims());
            assert_eq!(got.dtype(), dtype);
            let got = got.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
            let want = reference(case, &q, &k, &v, scale as f64);
            for (i, (g, (w, slack))) in got.to_vec1::<f64>().unwrap().iter().zip(&want).enumerate()
            {
                assert!(
                    (g - w).abs() <= tol * w.abs() + slack + 1e-6,
                    "{dtype:?} {isa:?} {case:?} element {i}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn f32_matches_the_textbook() {
        check(DType::F32, 1e-5);
    }

    #[test]
    fn bf16_matches_the_textbook_within_its_rounding() {
        // The output is rounded once: half a bf16 ulp, plus the f32 sums' order.
        check(DType::BF16, 2f64.powi(-8) + 1e-5);
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let (q, k, v) = operands(CASES[0], DType::F32);
        let five = q.narrow(1, 0, 5).unwrap();
        let err = attention(&five, &k, &v, 1.0).unwrap_err();
        assert!(err.to_string().contains("multiple of KV heads"), "{err}");
        // More new rows than the cache holds.
        let rows = Tensor::cat(&vec![&q; 38], 2).unwrap();
        let err = attention(&rows, &k, &v, 1.0).unwrap_err();
        assert!(
            err.to_string().contains("no more query rows than keys"),
            "{err}"
        );
    }
}
