//! Attention on the CPU in blocks of query rows, for bf16 models where oneDNN's native bf16 GEMM
//! is available (see `onednn`): the vision tower's per-image attention and the text prefill.
//!
//! Why: at screenshot size (8160 patches) the vision tower's scores are heads × N × N = 1 G
//! elements per layer. Materialising them (plus their casts and a separate softmax pass) was most
//! of the tower's time and needed gigabytes. Here each task takes a block of query rows of one
//! head, computes their scores with one GEMM into a small f32 buffer that stays in cache, turns
//! them into probabilities in place with a vectorised exp, and multiplies by V with a second
//! GEMM straight into the output — the shape of torch's CPU flash attention, without the
//! online-softmax rescaling (a block row holds all its keys).
//!
//! Numerics follow transformers' eager attention for bf16: scores accumulated in f32, softmax in
//! f32, probabilities rounded to bf16 before the product with V, f32 accumulation, one rounding.
//! (Eager additionally rounds the scores to bf16 before the softmax; this keeps them in f32.)

use half::bf16;
use rayon::prelude::*;

use super::cpu_ops::{exp, simd_dispatch, to_bf16};
use super::onednn::{self, Elem, Gemm};
use crate::{Error, Result};

/// Query rows per task: the f32 score block (rows × keys) should stay within a core's L2 at
/// screenshot sizes (128 × 8160 × 4 B = 4 MB spills, but the GEMM writes it once and the
/// softmax reads it once, row by row); smaller blocks make the second GEMM too skinny.
const BLOCK_ROWS: usize = 128;

/// Where one attention problem's groups (heads, frames) sit in flat bf16 buffers.
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    /// Element offset of each group's first query row in `q` (and in the output).
    pub q_offsets: &'a [usize],
    /// Element offset of each group's first key/value row in `k` and `v`.
    pub kv_offsets: &'a [usize],
    /// Query rows per group.
    pub rows: usize,
    /// Key/value rows per group.
    pub keys: usize,
    pub head_dim: usize,
    pub scale: f32,
    /// Causal: query row i sees keys `0..=offset + i` (the offset is the length of the cache
    /// before this prompt). None: every query sees every key.
    pub causal_offset: Option<usize>,
}

/// `softmax(q·kᵀ·scale [causal]) · v` per group; rows of q, k, v and the output are `head_dim`
/// contiguous elements. The output has q's layout; elements outside the groups are left as given.
pub fn attention(p: &Problem, q: &[bf16], k: &[bf16], v: &[bf16], out: &mut [bf16]) -> Result<()> {
    let hd = p.head_dim;
    let bad = |reason: String| Error::BadInput {
        what: "attention problem".into(),
        reason,
    };
    if p.q_offsets.len() != p.kv_offsets.len() {
        return Err(bad("one key/value offset per query group is needed".into()));
    }
    if let Some(c) = p.causal_offset {
        if c + p.rows > p.keys {
            return Err(bad(format!(
                "causal rows {} after {c} cached need {} keys, have {}",
                p.rows,
                c + p.rows,
                p.keys
            )));
        }
    }
    let q_len = p.rows * hd;
    let kv_len = p.keys * hd;
    if out.len() != q.len()
        || p.q_offsets.iter().any(|&o| o + q_len > q.len())
        || p.kv_offsets
            .iter()
            .any(|&o| o + kv_len > k.len() || o + kv_len > v.len())
    {
        return Err(bad("a group reaches past its buffer".into()));
    }
    // Output blocks are written from several threads: they must not overlap.
    let mut sorted: Vec<usize> = p.q_offsets.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] + q_len > w[1]) {
        return Err(bad("query groups overlap".into()));
    }

    // Tasks: (group, first row) blocks, all disjoint output ranges.
    let tasks: Vec<(usize, usize)> = (0..p.q_offsets.len())
        .flat_map(|g| (0..p.rows).step_by(BLOCK_ROWS).map(move |r| (g, r)))
        .collect();
    let out_ptr = SendPtr(out.as_mut_ptr());
    tasks.into_par_iter().try_for_each_init(
        || (Vec::<f32>::new(), Vec::<bf16>::new()),
        |(scores, probs), (g, r0)| -> Result<()> {
            let rows = BLOCK_ROWS.min(p.rows - r0);
            // Keys the last row of the block can see; earlier rows mask the rest themselves.
            let keys = p.causal_offset.map_or(p.keys, |c| c + r0 + rows);
            scores.resize(rows * keys, 0.0);
            probs.resize(rows * keys, bf16::ZERO);
            let qo = p.q_offsets[g] + r0 * hd;
            let kvo = p.kv_offsets[g];
            // S = Q_blk · K[..keys]ᵀ: K's rows read as the columns of a [hd, keys] matrix.
            let s = Gemm {
                b_strides: [1, hd],
                ..Gemm::linear(rows, keys, hd, Elem::Bf16, Elem::Bf16, Elem::F32)
            };
            onednn::gemm(
                &s,
                &q[qo..qo + rows * hd],
                &k[kvo..kvo + keys * hd],
                scores,
                1,
            )?;
            for (i, (srow, prow)) in scores
                .chunks_exact_mut(keys)
                .zip(probs.chunks_exact_mut(keys))
                .enumerate()
            {
                let visible = p.causal_offset.map_or(keys, |c| c + r0 + i + 1);
                softmax_row(&mut srow[..visible], p.scale, &mut prow[..visible]);
                prow[visible..].fill(bf16::ZERO);
            }
            // O_blk = P · V[..keys], rounded once into the output.
            let o = Gemm {
                b_strides: [hd, 1],
                ..Gemm::linear(rows, hd, keys, Elem::Bf16, Elem::Bf16, Elem::Bf16)
            };
            // SAFETY: this task's output rows [qo, qo + rows·hd) lie inside `out` (checked above)
            // and no other task writes them (groups do not overlap; blocks split a group).
            let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(qo), rows * hd) };
            onednn::gemm(&o, probs, &v[kvo..kvo + keys * hd], dst, 1)
        },
    )
}

#[derive(Clone, Copy)]
struct SendPtr(*mut bf16);
// SAFETY: used only to hand disjoint output ranges to rayon tasks (see `attention`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut bf16 {
        self.0
    }
}

// `out = softmax(s · scale)` over one row, in f32, rounded to bf16.
simd_dispatch!(fn softmax_row(s: &mut [f32], scale: f32, out: &mut [bf16]) => softmax_generic);

/// Written so that each loop vectorises: lanes of independent accumulators, a branch-free exp.
/// The exponentials overwrite the scores.
#[inline(always)]
fn softmax_generic(s: &mut [f32], scale: f32, out: &mut [bf16]) {
    const L: usize = 16;
    let split = s.len() / L * L;
    let mut m = [f32::NEG_INFINITY; L];
    for c in s[..split].chunks_exact(L) {
        for l in 0..L {
            m[l] = m[l].max(c[l]);
        }
    }
    let max = s[split..]
        .iter()
        .chain(&m)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    // exp((x - max)·scale) = exp(x·scale - max·scale); scale > 0 keeps the maximum.
    let shift = max * scale;
    let mut acc = [0f32; L];
    let (body, tail) = s.split_at_mut(split);
    for c in body.chunks_exact_mut(L) {
        for l in 0..L {
            c[l] = exp(c[l].mul_add(scale, -shift));
            acc[l] += c[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for x in tail.iter_mut() {
        *x = exp(x.mul_add(scale, -shift));
        sum += *x;
    }
    let inv = 1.0 / sum;
    for (x, o) in s.iter().zip(out.iter_mut()) {
        *o = to_bf16(x * inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32, amp: f32) -> Vec<bf16> {
        (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16;
                bf16::from_f32(amp * (x as f32 / 32768.0 - 1.0))
            })
            .collect()
    }

    /// The textbook computation in f64 on the same bf16 inputs.
    fn reference(p: &Problem, q: &[bf16], k: &[bf16], v: &[bf16], g: usize) -> Vec<f64> {
        let hd = p.head_dim;
        let mut out = vec![0f64; p.rows * hd];
        for i in 0..p.rows {
            let qi = &q[p.q_offsets[g] + i * hd..][..hd];
            let visible = p.causal_offset.map_or(p.keys, |c| c + i + 1);
            let s: Vec<f64> = (0..visible)
                .map(|j| {
                    let kj = &k[p.kv_offsets[g] + j * hd..][..hd];
                    let d: f64 = qi
                        .iter()
                        .zip(kj)
                        .map(|(a, b)| a.to_f64() * b.to_f64())
                        .sum();
                    d * p.scale as f64
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for (j, w) in e.iter().enumerate() {
                let vj = &v[p.kv_offsets[g] + j * hd..][..hd];
                for d in 0..hd {
                    out[i * hd + d] += w / z * vj[d].to_f64();
                }
            }
        }
        out
    }

    /// Several groups sharing key/value groups (GQA), a block boundary inside a group, causal
    /// with a cache offset and without — against f64 on the same inputs, within bf16 roundings.
    #[test]
    fn matches_reference_when_onednn_is_available() -> Result<()> {
        if !onednn::available() {
            assert!(
                std::env::var_os("GLIMPSE_REQUIRE_ONEDNN").is_none(),
                "GLIMPSE_REQUIRE_ONEDNN is set but {}",
                onednn::describe()
            );
            eprintln!("skipped: {}", onednn::describe());
            return Ok(());
        }
        let hd = 24;
        for (rows, keys, causal) in [(150, 150, None), (130, 140, Some(10)), (3, 7, Some(4))] {
            let groups = 4;
            // Query groups 0,1 use kv group 0; 2,3 use kv group 1; padding between groups.
            let q_offsets: Vec<usize> = (0..groups).map(|g| g * (rows + 2) * hd).collect();
            let kv_offsets: Vec<usize> = (0..groups).map(|g| (g / 2) * (keys + 1) * hd).collect();
            let p = Problem {
                q_offsets: &q_offsets,
                kv_offsets: &kv_offsets,
                rows,
                keys,
                head_dim: hd,
                scale: (hd as f32).powf(-0.5),
                causal_offset: causal,
            };
            let q = values(groups * (rows + 2) * hd, 1, 2.0);
            let k = values(2 * (keys + 1) * hd, 2, 2.0);
            let v = values(2 * (keys + 1) * hd, 3, 1.0);
            let mut out = vec![bf16::from_f32(7.0); q.len()];
            attention(&p, &q, &k, &v, &mut out)?;
            for g in 0..groups {
                let want = reference(&p, &q, &k, &v, g);
                let got = &out[q_offsets[g]..][..rows * hd];
                for (x, y) in got.iter().zip(&want) {
                    // bf16 probabilities and a bf16 result: a few units of 2⁻⁸ relative.
                    assert!(
                        (x.to_f64() - y).abs() < 2e-2 * (0.1 + y.abs()),
                        "{x} vs {y}"
                    );
                }
                // The padding row after each group is untouched.
                assert_eq!(out[q_offsets[g] + rows * hd], bf16::from_f32(7.0));
            }
        }
        // Overlapping groups are refused rather than raced.
        let p = Problem {
            q_offsets: &[0, 4],
            kv_offsets: &[0, 0],
            rows: 2,
            keys: 2,
            head_dim: 4,
            scale: 1.0,
            causal_offset: None,
        };
        let b = values(16, 0, 1.0);
        let mut out = vec![bf16::ZERO; 16];
        assert!(attention(&p, &b, &b, &b, &mut out).is_err());
        Ok(())
    }
}
