//! Multimodal rotary position ids (spec §5), a port of transformers 5.24
//! `Qwen3VLModel.get_rope_index` for one unpadded sequence.
//!
//! Text tokens count up on all three rows (T, H, W). The placeholder tokens of one image — or of
//! one temporal group of a video — share the T position of the first of them and spread over H
//! and W by their (merged) row and column; the next token continues at `p + max(h, w) / merge`,
//! not at `p + token count`. That difference is the `rope_delta` decoding carries forward (§5.2).
//!
//! 5.24 walks runs of `mm_token_type_ids` (image 1, video 2) that the processor marks exactly at
//! the `<|image_pad|>` / `<|video_pad|>` tokens, so walking the ids gives the same positions. Each
//! video grid `(t, h, w)` is split into `t` grids `(1, h, w)`, because the processor puts a
//! timestamp and its own `<|vision_start|>`/`<|vision_end|>` around every temporal group (§7.4):
//! those are ordinary text tokens here.

use crate::qwen3_vl::Config;
use crate::{Error, Result};

/// The token ids that mark vision content in a prompt; read them from the checkpoint's config
/// ([`VisionTokenIds::from_config`]), never from constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisionTokenIds {
    pub image_token_id: u32,
    pub video_token_id: u32,
    /// Not needed by the 5.24 walk (the pad tokens alone delimit the vision runs); carried so that
    /// callers splitting a prompt into segments have every marker in one place.
    pub vision_start_token_id: u32,
}

impl VisionTokenIds {
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            image_token_id: cfg.image_token_id,
            video_token_id: cfg.video_token_id,
            vision_start_token_id: cfg.vision_start_token_id,
        }
    }
}

/// Position ids of a prompt: one row each for T, H and W, every row as long as the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RopeIndex {
    pub positions: [Vec<i64>; 3],
    /// `max(positions) + 1 − prompt length`: added to plain positions while decoding (§5.2).
    pub rope_delta: i64,
}

impl RopeIndex {
    /// Positions of `n` new tokens appended after `cache_len` cached ones (same on all rows).
    pub fn decode_positions(&self, cache_len: usize, n: usize) -> Vec<i64> {
        (0..n)
            .map(|i| decode_position(cache_len + i, self.rope_delta))
            .collect()
    }
}

/// The position of the token that follows `cache_len` cached tokens, on all three rows (§5.2):
/// `cache_len + rope_delta`. `cache_len` counts every token in the cache, prompt included.
pub fn decode_position(cache_len: usize, rope_delta: i64) -> i64 {
    cache_len as i64 + rope_delta
}

/// Computes the 3-row position ids and rope delta of `input_ids` (one unpadded sequence).
///
/// `image_grids` and `video_grids` are the processor's `image_grid_thw` / `video_grid_thw` in
/// patches, in prompt order. Fails with [`Error::TokenCountMismatch`] when the placeholder tokens
/// do not match the grids (too many, too few, or a run that ends inside an image), and with
/// [`Error::BadInput`] for a grid that the merge size does not divide.
pub fn get_rope_index(
    input_ids: &[u32],
    image_grids: &[[usize; 3]],
    video_grids: &[[usize; 3]],
    ids: &VisionTokenIds,
    spatial_merge_size: usize,
) -> Result<RopeIndex> {
    let m = spatial_merge_size;
    if m == 0 {
        return Err(Error::BadInput {
            what: "spatial_merge_size".into(),
            reason: "must be positive".into(),
        });
    }
    // Merged (t, h, w) per vision item, in prompt order per kind; a video contributes one item
    // per temporal group (§5.1 step 1).
    let merged = |kind: &str, grids: &[[usize; 3]], split_t: bool| -> Result<Vec<[usize; 3]>> {
        let mut out = Vec::new();
        for (i, &[t, h, w]) in grids.iter().enumerate() {
            if t == 0 || h == 0 || w == 0 || !h.is_multiple_of(m) || !w.is_multiple_of(m) {
                return Err(Error::BadInput {
                    what: format!("{kind} grid {i}"),
                    reason: format!(
                        "({t}, {h}, {w}) needs t ≥ 1 and h, w positive multiples of the merge \
                         size {m}"
                    ),
                });
            }
            if split_t {
                out.extend(std::iter::repeat_n([1, h / m, w / m], t));
            } else {
                out.push([t, h / m, w / m]);
            }
        }
        Ok(out)
    };
    let images = merged("image", image_grids, false)?;
    let videos = merged("video", video_grids, true)?;
    let tokens = |items: &[[usize; 3]]| items.iter().map(|g| g[0] * g[1] * g[2]).sum::<usize>();
    let count = |id: u32| input_ids.iter().filter(|&&t| t == id).count();
    for (what, items, id) in [
        ("image placeholder tokens", &images, ids.image_token_id),
        ("video placeholder tokens", &videos, ids.video_token_id),
    ] {
        let (expected, got) = (tokens(items), count(id));
        if expected != got {
            return Err(Error::TokenCountMismatch {
                what: what.into(),
                expected,
                got,
            });
        }
    }

    let len = input_ids.len();
    let mut rows: [Vec<i64>; 3] = std::array::from_fn(|_| Vec::with_capacity(len));
    let mut pending = [images.iter(), videos.iter()];
    let mut p: i64 = 0;
    let mut i = 0;
    while i < len {
        let tok = input_ids[i];
        let (kind, queue) = if tok == ids.image_token_id {
            ("image", &mut pending[0])
        } else if tok == ids.video_token_id {
            ("video frame group", &mut pending[1])
        } else {
            // A text token (vision_start/end, timestamps and chat markup included).
            for row in rows.iter_mut() {
                row.push(p);
            }
            p += 1;
            i += 1;
            continue;
        };
        // The totals matched, so every placeholder token belongs to some item; an item's tokens
        // must form one unbroken run (5.24 would otherwise mis-assign its positions).
        let &[gt, gh, gw] = queue.next().ok_or_else(|| Error::TokenCountMismatch {
            what: format!("{kind}s for the placeholder tokens at token {i}"),
            expected: 1,
            got: 0,
        })?;
        let n = gt * gh * gw;
        let run = input_ids[i..]
            .iter()
            .take(n)
            .take_while(|&&t| t == tok)
            .count();
        if run != n {
            return Err(Error::TokenCountMismatch {
                what: format!("consecutive placeholder tokens of the {kind} at token {i}"),
                expected: n,
                got: run,
            });
        }
        // Raster order over (tt, hh, ww), as `get_vision_position_ids` with temporal merge 1.
        for tt in 0..gt as i64 {
            for hh in 0..gh as i64 {
                for ww in 0..gw as i64 {
                    rows[0].push(p + tt);
                    rows[1].push(p + hh);
                    rows[2].push(p + ww);
                }
            }
        }
        // 5.24 advances by the spatial extent only, whatever t is.
        p += gh.max(gw) as i64;
        i += n;
    }

    let max = rows.iter().flatten().copied().max().unwrap_or(-1);
    let rope_delta = if len == 0 { 0 } else { max + 1 - len as i64 };
    Ok(RopeIndex {
        positions: rows,
        rope_delta,
    })
}
