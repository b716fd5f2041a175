//! The vision tower and `get_rope_index` against transformers 5.24 references
//! (`tests/fixtures/reference/<model>/<case>.safetensors`, made by `tests/fixtures/generate.py`).
//!
//! Every intermediate the fixtures hold is compared by relative L2 error
//! (`‖ours − ref‖ / ‖ref‖`): patch embedding, position embeddings and all blocks but the last
//! below 1e-5, the last block, DeepStack features and merger below 1e-4. Position ids and rope
//! deltas must be identical. Run with `--nocapture` to see the measured errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use glimpse_models::qwen3_vl::{
    get_rope_index, open_var_builder, Config, VisionModel, VisionTokenIds,
};
use glimpse_models::Error;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The checkpoint's tower through the engine's loader, at `model.visual`.
fn visual_vb(model_dir: &Path, dtype: DType) -> anyhow::Result<VarBuilder<'static>> {
    Ok(open_var_builder(model_dir, dtype, &Device::Cpu)?.pp("model.visual"))
}

fn rel_l2(ours: &Tensor, reference: &Tensor) -> anyhow::Result<f64> {
    anyhow::ensure!(
        ours.dims() == reference.dims(),
        "shape {:?} vs reference {:?}",
        ours.dims(),
        reference.dims()
    );
    let ours = ours.to_dtype(DType::F64)?;
    let reference = reference.to_dtype(DType::F64)?;
    let diff = (&ours - &reference)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f64>()?
        .sqrt();
    let norm = reference.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
    Ok(diff / norm.max(f64::MIN_POSITIVE))
}

fn grids(t: &Tensor) -> anyhow::Result<Vec<[usize; 3]>> {
    Ok(t.to_dtype(DType::I64)?
        .to_vec2::<i64>()?
        .into_iter()
        .map(|r| [r[0] as usize, r[1] as usize, r[2] as usize])
        .collect())
}

/// Runs one modality of one case through the tower and checks every captured intermediate.
/// Returns how many tensors were compared.
fn check_modality(
    model: &VisionModel,
    depth: usize,
    reference: &HashMap<String, Tensor>,
    case: &str,
    prefix: &str,
    pixels_key: &str,
    grid_key: &str,
) -> anyhow::Result<usize> {
    let (Some(pixels), Some(grid)) = (reference.get(pixels_key), reference.get(grid_key)) else {
        return Ok(0);
    };
    let grid = grids(grid)?;
    let mut captured: HashMap<String, Tensor> = HashMap::new();
    let out = model.forward_probed(pixels, &grid, &mut |name, t| {
        captured.insert(format!("{prefix}.{name}"), t.clone());
    })?;
    // The returned tensors are the probed ones.
    assert_eq!(
        rel_l2(&out.embeds, &captured[&format!("{prefix}.merger")])?,
        0.0
    );

    let mut compared = 0;
    let mut failures = Vec::new();
    let mut keys: Vec<_> = reference
        .keys()
        .filter(|k| k.starts_with(&format!("{prefix}.")))
        .collect();
    keys.sort();
    for key in keys {
        let ours = captured
            .get(key)
            .ok_or_else(|| anyhow::anyhow!("{case}: the tower produced no `{key}`"))?;
        let err = rel_l2(ours, &reference[key])?;
        let last_block = format!("{prefix}.blocks.{}", depth - 1);
        let tol = if (key.contains(".blocks.") && key.as_str() != last_block)
            || key.ends_with(".patch_embed")
            || key.ends_with(".pos_embed")
        {
            1e-5
        } else {
            1e-4
        };
        println!("{case:>24} {key:<22} rel L2 {err:.2e} (< {tol:.0e})");
        if err.is_nan() || err >= tol {
            failures.push(format!("{key}: {err:.3e} ≥ {tol:.0e}"));
        }
        compared += 1;
    }
    anyhow::ensure!(failures.is_empty(), "{case}: {}", failures.join("; "));
    // The probe must have covered what the fixtures promise for every media case.
    for key in ["patch_embed", "pos_embed", "merger"] {
        anyhow::ensure!(
            reference.contains_key(&format!("{prefix}.{key}")),
            "{case}: reference lacks {prefix}.{key}"
        );
    }
    Ok(compared)
}

fn check_positions(
    cfg: &Config,
    reference: &HashMap<String, Tensor>,
    case: &str,
) -> anyhow::Result<bool> {
    let (Some(input_ids), Some(position_ids), Some(deltas)) = (
        reference.get("input_ids"),
        reference.get("position_ids"),
        reference.get("rope_deltas"),
    ) else {
        return Ok(false);
    };
    let ids: Vec<u32> = input_ids
        .squeeze(0)?
        .to_vec1::<i64>()?
        .into_iter()
        .map(|t| t as u32)
        .collect();
    let image_grids = match reference.get("image_grid_thw") {
        Some(g) => grids(g)?,
        None => vec![],
    };
    let video_grids = match reference.get("video_grid_thw") {
        Some(g) => grids(g)?,
        None => vec![],
    };
    let r = get_rope_index(
        &ids,
        &image_grids,
        &video_grids,
        &VisionTokenIds::from_config(cfg),
        cfg.vision.spatial_merge_size,
    )?;
    let expected = position_ids.squeeze(1)?.to_vec2::<i64>()?;
    for (row, name) in ["T", "H", "W"].iter().enumerate() {
        anyhow::ensure!(
            r.positions[row] == expected[row],
            "{case}: {name} positions differ\n ours {:?}\n ref  {:?}",
            r.positions[row],
            expected[row]
        );
    }
    let delta = deltas.flatten_all()?.to_vec1::<i64>()?[0];
    anyhow::ensure!(
        r.rope_delta == delta,
        "{case}: rope delta {} vs {delta}",
        r.rope_delta
    );
    println!(
        "{case:>24} position ids ({} tokens) and rope delta {delta} identical",
        ids.len()
    );
    Ok(true)
}

/// Checks every reference case of one fixture model.
fn parity(model_name: &str) -> anyhow::Result<()> {
    let root = fixtures();
    let model_dir = root.join("models").join(model_name);
    let ref_dir = root.join("reference").join(model_name);
    anyhow::ensure!(
        model_dir.is_dir() && ref_dir.is_dir(),
        "fixtures for `{model_name}` are missing under {} (merge the fixtures branch)",
        root.display()
    );
    let cfg = Config::from_dir(&model_dir)?;
    let model = VisionModel::new(&cfg.vision, visual_vb(&model_dir, DType::F32)?)?;

    let mut cases: Vec<PathBuf> = std::fs::read_dir(&ref_dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    cases.retain(|p| p.extension().is_some_and(|e| e == "safetensors"));
    cases.sort();
    let (mut images, mut videos, mut positions) = (0, 0, 0);
    for path in &cases {
        let case = format!(
            "{model_name}/{}",
            path.file_stem().unwrap_or_default().to_string_lossy()
        );
        let reference = candle_core::safetensors::load(path, &Device::Cpu)?;
        let depth = cfg.vision.depth;
        images += check_modality(
            &model,
            depth,
            &reference,
            &case,
            "image",
            "pixel_values",
            "image_grid_thw",
        )?;
        videos += check_modality(
            &model,
            depth,
            &reference,
            &case,
            "video",
            "pixel_values_videos",
            "video_grid_thw",
        )?;
        positions += check_positions(&cfg, &reference, &case)? as usize;
    }
    // Guard against a vacuous pass if the fixture layout changes.
    anyhow::ensure!(
        images > 0 && videos > 0,
        "{model_name}: compared {images} image and {videos} video tensors; expected both"
    );
    anyhow::ensure!(positions > 0, "{model_name}: no case had position ids");
    Ok(())
}

#[test]
fn parity_moe_hub() -> anyhow::Result<()> {
    parity("moe-hub")
}

#[test]
fn parity_dense_v5() -> anyhow::Result<()> {
    parity("dense-v5")
}

/// bf16 weights and activations (the fixtures hold no bf16 vision references): the tower must
/// stay within bf16 rounding of the f32 reference, stage by stage.
#[test]
fn bf16_stays_within_bf16_error() -> anyhow::Result<()> {
    for (model_name, case) in [("dense-v5", "image_video"), ("moe-hub", "video")] {
        let root = fixtures();
        let model_dir = root.join("models").join(model_name);
        let cfg = Config::from_dir(&model_dir)?;
        let model = VisionModel::new(&cfg.vision, visual_vb(&model_dir, DType::BF16)?)?;
        let path = root.join(format!("reference/{model_name}/{case}.safetensors"));
        let reference = candle_core::safetensors::load(&path, &Device::Cpu)?;
        for (prefix, pixels, grid) in [
            ("image", "pixel_values", "image_grid_thw"),
            ("video", "pixel_values_videos", "video_grid_thw"),
        ] {
            let (Some(pixels), Some(grid)) = (reference.get(pixels), reference.get(grid)) else {
                continue;
            };
            let mut captured: HashMap<String, Tensor> = HashMap::new();
            let out = model.forward_probed(pixels, &grids(grid)?, &mut |name, t| {
                captured.insert(format!("{prefix}.{name}"), t.clone());
            })?;
            assert_eq!(out.embeds.dtype(), DType::BF16);
            let mut keys: Vec<_> = captured.keys().cloned().collect();
            keys.sort();
            for key in keys {
                let err = rel_l2(&captured[&key], &reference[&key])?;
                println!("{model_name:>9}/{case} bf16 {key:<22} rel L2 {err:.2e} (< 2e-2)");
                anyhow::ensure!(err < 2e-2, "{model_name}/{case} bf16 {key}: {err:.3e}");
            }
        }
    }
    Ok(())
}

/// Input validation needs no real weights: a zero-filled tower of a tiny config.
#[test]
fn bad_inputs_are_errors_not_panics() -> anyhow::Result<()> {
    let cfg = Config::from_json(
        &serde_json::json!({
            "model_type": "qwen3_vl",
            "image_token_id": 7, "video_token_id": 8,
            "vision_start_token_id": 5, "vision_end_token_id": 6,
            "text_config": {
                "vocab_size": 32, "hidden_size": 16, "intermediate_size": 24,
                "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                "head_dim": 8, "rope_theta": 10000.0,
                "rope_scaling": {"mrope_section": [2, 1, 1]}
            },
            "vision_config": {
                "depth": 2, "hidden_size": 8, "intermediate_size": 12, "num_heads": 2,
                "patch_size": 2, "temporal_patch_size": 2, "spatial_merge_size": 2,
                "out_hidden_size": 16, "num_position_embeddings": 16,
                "deepstack_visual_indexes": [0]
            }
        })
        .to_string(),
    )?;
    let model = VisionModel::new(&cfg.vision, VarBuilder::zeros(DType::F32, &Device::Cpu))?;
    let patch_dim = 3 * 2 * 2 * 2;
    let pixels = |rows: usize, width: usize| Tensor::zeros((rows, width), DType::F32, &Device::Cpu);

    // A well-formed call works and has the documented shapes.
    let out = model.forward(&pixels(16 + 8, patch_dim)?, &[[1, 4, 4], [2, 2, 2]])?;
    assert_eq!(out.embeds.dims(), [6, 16]);
    assert_eq!(out.deepstack.len(), 1);
    assert_eq!(out.deepstack[0].dims(), [6, 16]);

    let cases: Vec<(Tensor, Vec<[usize; 3]>, &str)> = vec![
        (pixels(16, patch_dim + 1)?, vec![[1, 4, 4]], "pixel_values"),
        (pixels(15, patch_dim)?, vec![[1, 4, 4]], "pixel_values"),
        (pixels(12, patch_dim)?, vec![[1, 3, 4]], "grid_thw"),
        (pixels(16, patch_dim)?, vec![[0, 4, 4]], "grid_thw"),
        (pixels(0, patch_dim)?, vec![], "grid_thw"),
        (
            Tensor::zeros(16 * patch_dim, DType::F32, &Device::Cpu)?,
            vec![[1, 4, 4]],
            "pixel_values",
        ),
    ];
    for (pv, grid, what_expected) in cases {
        match model.forward(&pv, &grid) {
            Err(Error::BadInput { what, reason }) => {
                assert_eq!(what, what_expected, "{reason}");
                println!("{grid:?} {:?}: {what}: {reason}", pv.dims());
            }
            other => panic!("{grid:?} {:?}: expected BadInput, got {other:?}", pv.dims()),
        }
    }
    Ok(())
}
