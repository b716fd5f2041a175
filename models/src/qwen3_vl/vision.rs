//! The Qwen3-VL vision tower (spec §3; transformers 5.24 `Qwen3VLVisionModel`), identical for the
//! dense and MoE models: patch embedding, learned position embeddings resampled to each grid,
//! `depth` pre-norm ViT blocks with 2-D rotary attention confined to each image / video frame
//! group, DeepStack mergers on chosen block outputs, and the final merger into the text width.

mod grid;
pub mod layers;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

pub use grid::Grid;
use layers::{Segments, VisionBlock, VisionPatchEmbed, VisionPatchMerger, VisionRotaryEmbedding};

use crate::qwen3_vl::VisionConfig;
use crate::{Error, Result};

/// What the tower hands to the decoder.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// `[Nt, D_text]`, Nt = Σ t·h·w / m²: one row per placeholder token, items in input order,
    /// each item's tokens in (t, block row, block column) order.
    pub embeds: Tensor,
    /// One `[Nt, D_text]` per `deepstack_visual_indexes` entry, added after decoder layers 0, 1, ….
    pub deepstack: Vec<Tensor>,
}

/// `model.visual`.
#[derive(Debug, Clone)]
pub struct VisionModel {
    patch_embed: VisionPatchEmbed,
    /// `pos_embed.weight` `[G², Dv]`, row `r·G + c`.
    pos_embed: Tensor,
    rotary_pos_emb: VisionRotaryEmbedding,
    blocks: Vec<VisionBlock>,
    merger: VisionPatchMerger,
    deepstack_merger_list: Vec<VisionPatchMerger>,
    deepstack_visual_indexes: Vec<usize>,
    spatial_merge_size: usize,
    num_grid_per_side: usize,
    patch_dim: usize,
}

impl VisionModel {
    /// `vb` is positioned at `model.visual`. Fails if a tensor is missing or misshapen, or the
    /// activation is not one the tower supports.
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let pos_embed = vb
            .pp("pos_embed")
            .get((cfg.num_position_embeddings, cfg.hidden_size), "weight")?;
        let blocks = (0..cfg.depth)
            .map(|b| VisionBlock::new(cfg, vb.pp(format!("blocks.{b}"))))
            .collect::<Result<_>>()?;
        let deepstack_merger_list = (0..cfg.deepstack_visual_indexes.len())
            .map(|k| VisionPatchMerger::new(cfg, true, vb.pp(format!("deepstack_merger_list.{k}"))))
            .collect::<Result<_>>()?;
        Ok(Self {
            patch_embed: VisionPatchEmbed::new(cfg, vb.pp("patch_embed"))?,
            rotary_pos_emb: VisionRotaryEmbedding::new(cfg, pos_embed.device())?,
            pos_embed,
            blocks,
            merger: VisionPatchMerger::new(cfg, false, vb.pp("merger"))?,
            deepstack_merger_list,
            deepstack_visual_indexes: cfg.deepstack_visual_indexes.clone(),
            spatial_merge_size: cfg.spatial_merge_size,
            num_grid_per_side: cfg.num_grid_per_side(),
            patch_dim: cfg.patch_dim(),
        })
    }

    /// Encodes the patches of one or more images, or of one or more videos.
    ///
    /// `pixel_values` `[Σ t·h·w, C·T·P·P]` in the processor's row layout (§6.4); `grid_thw` one
    /// `(t, h, w)` per item. Fails with [`Error::BadInput`] when they do not fit together.
    pub fn forward(&self, pixel_values: &Tensor, grid_thw: &[Grid]) -> Result<VisionOutput> {
        self.forward_probed(pixel_values, grid_thw, &mut |_, _| {})
    }

    /// [`VisionModel::forward`], handing named intermediates to `probe` as they are computed:
    /// `patch_embed`, `pos_embed` (the interpolated position embeddings alone), `blocks.{b}`,
    /// `deepstack.{k}` and `merger` — transformers' module names, for layer-by-layer parity.
    pub fn forward_probed(
        &self,
        pixel_values: &Tensor,
        grid_thw: &[Grid],
        probe: &mut dyn FnMut(&str, &Tensor),
    ) -> Result<VisionOutput> {
        self.forward_hooked(pixel_values, grid_thw, probe, &mut |_| Ok(()))
    }

    /// The number of ViT blocks: [`VisionModel::forward_hooked`] reports this many steps.
    pub fn depth(&self) -> usize {
        self.blocks.len()
    }

    /// [`VisionModel::forward_probed`], calling `after_block(b + 1)` once each block `b` is
    /// done. An error from it (a cancel between blocks) stops the encode and is returned as is,
    /// so a long encode can be abandoned within one block.
    pub fn forward_hooked(
        &self,
        pixel_values: &Tensor,
        grid_thw: &[Grid],
        probe: &mut dyn FnMut(&str, &Tensor),
        after_block: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<VisionOutput> {
        self.check_inputs(pixel_values, grid_thw)?;
        let m = self.spatial_merge_size;
        let device = pixel_values.device();
        let n = pixel_values.dim(0)?;

        // 1. Patch embedding. [Np, C·T·P·P] → [Np, Dv]
        let mut hidden = self.patch_embed.forward(pixel_values)?;
        probe("patch_embed", &hidden);

        // 2. Learned positions, bilinearly resampled per grid in merge-window order; the taps
        //    are summed in f32 and the sum cast to the hidden dtype (5.24, §3.3).
        let pos = self.interpolated_pos_embed(grid_thw, n)?;
        let pos = pos.to_dtype(hidden.dtype())?;
        probe("pos_embed", &pos);
        hidden = (hidden + pos)?;

        // 3. 2-D rotary tables from each patch's (row, col), f32. [Np, hdv/2] each
        let positions = Tensor::from_vec(grid::rotary_positions(grid_thw, m), (n, 2), device)?;
        let (cos, sin) = self.rotary_pos_emb.forward(&positions)?;

        // 4. Attention segments: every frame group of every item on its own.
        let mut segments = Vec::with_capacity(grid_thw.len());
        let mut start = 0;
        for &[t, h, w] in grid_thw {
            segments.push(Segments {
                start,
                frames: t,
                len: h * w,
            });
            start += t * h * w;
        }

        // 5. Blocks, tapping DeepStack features after the listed ones. [Np, Dv]
        let mut deepstack = Vec::with_capacity(self.deepstack_merger_list.len());
        for (b, block) in self.blocks.iter().enumerate() {
            hidden = block.forward(&hidden, &cos, &sin, &segments)?;
            probe(&format!("blocks.{b}"), &hidden);
            // An index may appear twice in the list; transformers then uses its first merger.
            if let Some(k) = self.deepstack_visual_indexes.iter().position(|&i| i == b) {
                let feature = self.deepstack_merger_list[k].forward(&hidden)?;
                probe(&format!("deepstack.{}", deepstack.len()), &feature);
                deepstack.push(feature);
            }
            after_block(b + 1)?;
        }

        // 6. Final merger. [Np, Dv] → [Np/m², D_text]
        let embeds = self.merger.forward(&hidden)?;
        probe("merger", &embeds);
        Ok(VisionOutput { embeds, deepstack })
    }

    /// `Σ_k w_k · pos_embed[idx_k]` over the four bilinear taps, `[Np, Dv]` f32.
    fn interpolated_pos_embed(&self, grid_thw: &[Grid], n: usize) -> Result<Tensor> {
        let device = self.pos_embed.device();
        let interp = grid::interpolation(grid_thw, self.num_grid_per_side, self.spatial_merge_size);
        let mut acc: Option<Tensor> = None;
        for (idx, w) in interp.indices.into_iter().zip(interp.weights) {
            let idx = Tensor::from_vec(idx, n, device)?;
            let w = Tensor::from_vec(w, (n, 1), device)?;
            let term = self
                .pos_embed
                .index_select(&idx, 0)?
                .to_dtype(DType::F32)?
                .broadcast_mul(&w)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
        acc.ok_or_else(|| Error::BadInput {
            what: "grid_thw".into(),
            reason: "no taps".into(),
        })
    }

    fn check_inputs(&self, pixel_values: &Tensor, grid_thw: &[Grid]) -> Result<()> {
        let bad = |what: &str, reason: String| Error::BadInput {
            what: what.into(),
            reason,
        };
        let (rows, width) = pixel_values.dims2().map_err(|_| {
            bad(
                "pixel_values",
                format!(
                    "must be 2-D [patches, {}], got shape {:?}",
                    self.patch_dim,
                    pixel_values.dims()
                ),
            )
        })?;
        if width != self.patch_dim {
            return Err(bad(
                "pixel_values",
                format!(
                    "rows are {width} wide, the checkpoint's patches are C·T·P·P = {}",
                    self.patch_dim
                ),
            ));
        }
        if grid_thw.is_empty() {
            return Err(bad(
                "grid_thw",
                "is empty: no image or video to encode".into(),
            ));
        }
        let m = self.spatial_merge_size;
        for (i, &[t, h, w]) in grid_thw.iter().enumerate() {
            if t == 0 || h == 0 || w == 0 || !h.is_multiple_of(m) || !w.is_multiple_of(m) {
                return Err(bad(
                    "grid_thw",
                    format!(
                        "item {i} is ({t}, {h}, {w}); t must be ≥ 1 and h, w positive multiples \
                         of the merge size {m}"
                    ),
                ));
            }
        }
        let total: usize = grid_thw.iter().map(|g| g[0] * g[1] * g[2]).sum();
        if total != rows {
            return Err(bad(
                "pixel_values",
                format!("has {rows} patch rows but the grids Σ t·h·w = {total}"),
            ));
        }
        Ok(())
    }
}
