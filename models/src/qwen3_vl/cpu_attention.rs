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

/// Where one operand's groups (heads, frames) sit in a flat bf16 buffer.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// Element offset of each group's first row.
    pub offsets: &'a [usize],
    /// Elements from one row of a group to the next: `head_dim` when a group's rows are
    /// adjacent, more when heads are interleaved within each token's row (a fused qkv
    /// projection read in place, an output laid out as `[tokens, heads·hd]`).
    pub stride: usize,
}

impl<'a> Rows<'a> {
    /// Groups whose rows are adjacent (`[.., rows, hd]` blocks).
    pub fn dense(offsets: &'a [usize], head_dim: usize) -> Self {
        Self {
            offsets,
            stride: head_dim,
        }
    }

    /// Elements past the last one that group `g` touches with `rows` rows of `hd`.
    fn end(&self, g: usize, rows: usize, hd: usize) -> usize {
        self.offsets[g] + rows.saturating_sub(1) * self.stride + hd
    }
}

/// One attention problem: groups of query rows, each with its key/value group.
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    pub q: Rows<'a>,
    /// Each query group's keys and values (one offset per query group; groups may share them).
    pub k: Rows<'a>,
    pub v: Rows<'a>,
    pub out: Rows<'a>,
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

/// `softmax(q·kᵀ·scale [causal]) · v` per group; each row of q, k, v and the output is
/// `head_dim` contiguous elements. Elements of `out` outside the groups are left as given.
pub fn attention(p: &Problem, q: &[bf16], k: &[bf16], v: &[bf16], out: &mut [bf16]) -> Result<()> {
    let hd = p.head_dim;
    let bad = |reason: String| Error::BadInput {
        what: "attention problem".into(),
        reason,
    };
    let groups = p.q.offsets.len();
    if [&p.k, &p.v, &p.out]
        .iter()
        .any(|r| r.offsets.len() != groups)
    {
        return Err(bad(
            "one key, value and output offset per query group are needed".into(),
        ));
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
    if p.rows == 0 || groups == 0 {
        return Ok(());
    }
    if p.keys == 0 {
        return Err(bad("queries without keys".into()));
    }
    if [&p.q, &p.k, &p.v, &p.out].iter().any(|r| r.stride < hd)
        || (0..groups).any(|g| {
            p.q.end(g, p.rows, hd) > q.len()
                || p.k.end(g, p.keys, hd) > k.len()
                || p.v.end(g, p.keys, hd) > v.len()
                || p.out.end(g, p.rows, hd) > out.len()
        })
    {
        return Err(bad(
            "a group reaches past its buffer, or its rows overlap".into()
        ));
    }
    // Output blocks are written from several threads: they must not overlap.
    if !disjoint(&p.out, p.rows, hd) {
        return Err(bad("output groups overlap".into()));
    }

    // Tasks: (group, first row) blocks, all disjoint output ranges.
    let tasks: Vec<(usize, usize)> = (0..groups)
        .flat_map(|g| (0..p.rows).step_by(BLOCK_ROWS).map(move |r| (g, r)))
        .collect();
    let (out_ptr, out_len) = (SendPtr(out.as_mut_ptr()), out.len());
    tasks.into_par_iter().try_for_each_init(
        || (Vec::<f32>::new(), Vec::<bf16>::new()),
        |(scores, probs), (g, r0)| -> Result<()> {
            let rows = BLOCK_ROWS.min(p.rows - r0);
            // Keys the last row of the block can see; earlier rows mask the rest themselves.
            let keys = p.causal_offset.map_or(p.keys, |c| c + r0 + rows);
            scores.resize(rows * keys, 0.0);
            probs.resize(rows * keys, bf16::ZERO);
            let qo = p.q.offsets[g] + r0 * p.q.stride;
            let (ko, vo) = (p.k.offsets[g], p.v.offsets[g]);
            // S = Q_blk · K[..keys]ᵀ: K's rows read as the columns of a [hd, keys] matrix.
            let s = Gemm {
                a_strides: [p.q.stride, 1],
                b_strides: [1, p.k.stride],
                ..Gemm::linear(rows, keys, hd, Elem::Bf16, Elem::Bf16, Elem::F32)
            };
            onednn::gemm(&s, &q[qo..], &k[ko..], scores, 1)?;
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
                b_strides: [p.v.stride, 1],
                c_row_stride: p.out.stride,
                ..Gemm::linear(rows, hd, keys, Elem::Bf16, Elem::Bf16, Elem::Bf16)
            };
            let oo = p.out.offsets[g] + r0 * p.out.stride;
            // SAFETY: the rows this task writes lie inside `out` (checked above), and no other
            // task writes them: groups are disjoint and blocks split a group by rows. Reading
            // the pointer range as a slice would alias other tasks' interleaved rows, so oneDNN
            // gets the pointer itself.
            unsafe {
                onednn::gemm_raw(
                    &o,
                    probs,
                    &v[vo..],
                    None,
                    out_ptr.get().add(oo),
                    out_len - oo,
                    1,
                )
            }
        },
    )
}

/// Whether groups of `rows` rows of `hd` elements, laid out as `r`, touch no element twice.
fn disjoint(r: &Rows, rows: usize, hd: usize) -> bool {
    if r.stride == hd || rows == 1 {
        // Each group is one interval.
        let mut starts: Vec<usize> = r.offsets.to_vec();
        starts.sort_unstable();
        return starts.windows(2).all(|w| w[0] + rows * hd <= w[1]);
    }
    // Strided: a group is a column band [c, c + hd) of the rows [r0, r0 + rows) of a
    // `stride`-wide matrix. Bands must stay inside a row; bands that share columns must not
    // share rows.
    let mut bands: Vec<(usize, usize)> = r
        .offsets
        .iter()
        .map(|&o| (o % r.stride, o / r.stride))
        .collect();
    if bands.iter().any(|&(c, _)| c + hd > r.stride) {
        return false;
    }
    bands.sort_unstable();
    let mut i = 0;
    while i < bands.len() {
        let c = bands[i].0;
        let j = i + bands[i..].iter().take_while(|b| b.0 == c).count();
        if bands[i..j].windows(2).any(|w| w[0].1 + rows > w[1].1) {
            return false;
        }
        if j < bands.len() && bands[j].0 < c + hd {
            // A band starting inside this one's columns: refuse rather than compare rows.
            return false;
        }
        i = j;
    }
    true
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
            // Not `f32::max`: its NaN rule costs two more instructions per vector.
            m[l] = if c[l] > m[l] { c[l] } else { m[l] };
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

    use crate::qwen3_vl::cpu_ops::{skip_without_bf16_kernels, test_values as values};

    /// The textbook computation in f64 on the same bf16 inputs.
    fn reference(p: &Problem, q: &[bf16], k: &[bf16], v: &[bf16], g: usize) -> Vec<f64> {
        let hd = p.head_dim;
        let mut out = vec![0f64; p.rows * hd];
        for i in 0..p.rows {
            let qi = &q[p.q.offsets[g] + i * p.q.stride..][..hd];
            let visible = p.causal_offset.map_or(p.keys, |c| c + i + 1);
            let s: Vec<f64> = (0..visible)
                .map(|j| {
                    let kj = &k[p.k.offsets[g] + j * p.k.stride..][..hd];
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
                let vj = &v[p.v.offsets[g] + j * p.v.stride..][..hd];
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
        if skip_without_bf16_kernels(!onednn::available(), &onednn::describe()) {
            return Ok(());
        }
        let hd = 24;
        for (rows, keys, causal) in [(150, 150, None), (130, 140, Some(10)), (3, 7, Some(4))] {
            let groups = 4;
            // Query groups 0,1 use kv group 0; 2,3 use kv group 1; padding between groups.
            let q_offsets: Vec<usize> = (0..groups).map(|g| g * (rows + 2) * hd).collect();
            let kv_offsets: Vec<usize> = (0..groups).map(|g| (g / 2) * (keys + 1) * hd).collect();
            let p = Problem {
                q: Rows::dense(&q_offsets, hd),
                k: Rows::dense(&kv_offsets, hd),
                v: Rows::dense(&kv_offsets, hd),
                out: Rows::dense(&q_offsets, hd),
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
            q: Rows::dense(&[0, 4], 4),
            k: Rows::dense(&[0, 0], 4),
            v: Rows::dense(&[0, 0], 4),
            out: Rows::dense(&[0, 4], 4),
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

    /// Heads read in place from a fused `[N, 3, H, hd]` projection and written to `[N, H, hd]`:
    /// the same numbers as the reference, every output element written exactly once.
    #[test]
    fn interleaved_heads_match_reference() -> Result<()> {
        if skip_without_bf16_kernels(!onednn::available(), &onednn::describe()) {
            return Ok(());
        }
        let (n, h, hd) = (140, 3, 16);
        let d = h * hd;
        let qkv = values(n * 3 * d, 5, 2.0);
        let q_off: Vec<usize> = (0..h).map(|i| i * hd).collect();
        let k_off: Vec<usize> = (0..h).map(|i| d + i * hd).collect();
        let v_off: Vec<usize> = (0..h).map(|i| 2 * d + i * hd).collect();
        let out_off: Vec<usize> = (0..h).map(|i| i * hd).collect();
        let p = Problem {
            q: Rows {
                offsets: &q_off,
                stride: 3 * d,
            },
            k: Rows {
                offsets: &k_off,
                stride: 3 * d,
            },
            v: Rows {
                offsets: &v_off,
                stride: 3 * d,
            },
            out: Rows {
                offsets: &out_off,
                stride: d,
            },
            rows: n,
            keys: n,
            head_dim: hd,
            scale: (hd as f32).powf(-0.5),
            causal_offset: None,
        };
        let mut out = vec![bf16::from_f32(7.0); n * d];
        attention(&p, &qkv, &qkv, &qkv, &mut out)?;
        for g in 0..h {
            let want = reference(&p, &qkv, &qkv, &qkv, g);
            for i in 0..n {
                for j in 0..hd {
                    let (x, y) = (out[i * d + g * hd + j].to_f64(), want[i * hd + j]);
                    assert!((x - y).abs() < 2e-2 * (0.1 + y.abs()), "{x} vs {y}");
                }
            }
        }
        assert!(out.iter().all(|x| *x != bf16::from_f32(7.0)));
        // Two heads in overlapping columns are refused.
        let bad_off = [0, hd / 2];
        let bad = Problem {
            q: Rows {
                offsets: &q_off[..2],
                stride: 3 * d,
            },
            k: Rows {
                offsets: &k_off[..2],
                stride: 3 * d,
            },
            v: Rows {
                offsets: &v_off[..2],
                stride: 3 * d,
            },
            out: Rows {
                offsets: &bad_off,
                stride: d,
            },
            ..p.clone()
        };
        assert!(attention(&bad, &qkv, &qkv, &qkv, &mut out).is_err());
        Ok(())
    }
}
