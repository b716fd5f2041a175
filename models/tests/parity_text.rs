//! End-to-end parity of `Qwen3VLModel` with transformers 5.24 (tests/fixtures/reference), for
//! both fixture checkpoints (MoE in the Hub dialect and layout, sharded, untied; dense in the
//! transformers-5 dialect, tied) and every case they have: position ids (exact), the vision
//! splice, every decoder layer, the MoE router logits, the final norm and the logits (relative
//! L2 < 1e-4), then greedy decoding with the KV cache (identical tokens, per-step logits within
//! the same bound). A bf16 run is held against transformers' own bf16 run of the image case.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, IndexOp, Tensor};
use common::*;
use glimpse_models::qwen3_vl::{
    get_rope_index, Config, LogitsFor, NoProbe, Prompt, Qwen3VLModel, RopeIndex, VisionTokenIds,
    VisualInput,
};
use glimpse_models::Error;

/// Relative L2 bound for f32 hidden states and logits (issue 3).
const F32_TOL: f64 = 1e-4;

struct Inputs {
    ids: Vec<u32>,
    pixel_values: Option<Tensor>,
    image_grids: Vec<[usize; 3]>,
    pixel_values_videos: Option<Tensor>,
    video_grids: Vec<[usize; 3]>,
}

impl Inputs {
    fn of(case: &Case) -> Self {
        Self {
            ids: case.input_ids(),
            pixel_values: case.get("pixel_values").cloned(),
            image_grids: case.grids("image_grid_thw"),
            pixel_values_videos: case.get("pixel_values_videos").cloned(),
            video_grids: case.grids("video_grid_thw"),
        }
    }

    fn rope_index(&self, cfg: &Config) -> RopeIndex {
        get_rope_index(
            &self.ids,
            &self.image_grids,
            &self.video_grids,
            &VisionTokenIds::from_config(cfg),
            cfg.vision.spatial_merge_size,
        )
        .expect("get_rope_index")
    }

    fn prompt<'a>(&'a self, rope: &'a RopeIndex) -> Prompt<'a> {
        Prompt {
            input_ids: &self.ids,
            images: self.pixel_values.as_ref().map(|p| VisualInput {
                pixel_values: p,
                grid_thw: &self.image_grids,
            }),
            videos: self.pixel_values_videos.as_ref().map(|p| VisualInput {
                pixel_values: p,
                grid_thw: &self.video_grids,
            }),
            positions: [&rope.positions[0], &rope.positions[1], &rope.positions[2]],
            rope_delta: rope.rope_delta,
        }
    }
}

fn load(model: &str, dtype: DType) -> (Config, Qwen3VLModel) {
    Qwen3VLModel::load(&model_dir(model), dtype, &Device::Cpu)
        .unwrap_or_else(|e| panic!("loading {model}: {e}"))
}

fn f32_cases(model: &str) -> Vec<String> {
    let cases: Vec<String> = case_names(model)
        .into_iter()
        .filter(|c| !c.ends_with("_bf16"))
        .collect();
    assert!(
        cases.len() >= 4,
        "{model}: expected text/image/multi_image/video cases, found {cases:?}"
    );
    cases
}

/// Probe names are per layer; the table groups them (`text.layers.*`).
fn stage_of(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    parts
        .iter()
        .map(|p| if p.parse::<usize>().is_ok() { "*" } else { p })
        .collect::<Vec<_>>()
        .join(".")
}

/// Runs every case of `model` in f32 and checks each stage, then greedy decoding.
fn f32_parity(model: &str) {
    let (cfg, mut m) = load(model, DType::F32);
    let mut table = ErrorTable::default();
    let mut failures = Vec::new();
    for case_name in f32_cases(model) {
        let case = load_case(model, &case_name);
        let inputs = Inputs::of(&case);
        let tag = format!("{model}/{case_name}");

        // 1. Position ids and rope delta: exact.
        let rope = inputs.rope_index(&cfg);
        let want_pos = to_i64(case.need("position_ids"));
        let l = inputs.ids.len();
        let got_pos: Vec<i64> = rope.positions.iter().flatten().copied().collect();
        assert_eq!(got_pos, want_pos, "{tag}: position ids");
        assert_eq!(
            vec![rope.rope_delta],
            to_i64(case.need("rope_deltas")),
            "{tag}: rope delta"
        );

        // 2. Prefill with every intermediate recorded.
        let mut probe: HashMap<String, Tensor> = HashMap::new();
        let logits = m
            .prefill(&inputs.prompt(&rope), LogitsFor::All, &mut probe)
            .unwrap_or_else(|e| panic!("{tag}: prefill: {e}"));
        probe.insert("logits".into(), logits.clone());

        // 3. Every stage the reference has and the model produced; the text stages must all
        //    be there.
        let mut expected: Vec<String> = vec!["text.inputs_embeds".into(), "text.norm".into()];
        for i in 0..cfg.text.num_hidden_layers {
            expected.push(format!("text.layers.{i}"));
            if cfg.text.is_moe_layer(i) {
                expected.push(format!("text.layers.{i}.router_logits"));
            }
        }
        expected.push("logits".into());
        for prefix in ["image", "video"] {
            if case.get(&format!("{prefix}.merger")).is_some() {
                expected.push(format!("{prefix}.merger"));
                for k in 0..cfg.vision.deepstack_visual_indexes.len() {
                    expected.push(format!("{prefix}.deepstack.{k}"));
                }
            }
        }
        for name in &expected {
            let want = case.need(name);
            let got = probe
                .get(name)
                .unwrap_or_else(|| panic!("{tag}: model did not report `{name}`"));
            let err = rel_l2(got, want);
            table.note(&stage_of(name), err);
            if err >= F32_TOL {
                failures.push(format!("{tag}: {name} rel L2 {err:.3e}"));
            }
        }
        // Argmax at every prompt position (random tiny models still have clear maxima here;
        // a flip would show as a rel. error far above the bound anyway).
        let ref_logits = case.need("logits").i(0).unwrap();
        let agree = argmax_rows(&logits)
            .iter()
            .zip(argmax_rows(&ref_logits))
            .filter(|(a, b)| *a == b)
            .count();
        if agree != l {
            failures.push(format!("{tag}: argmax agrees at {agree} of {l} positions"));
        }

        // 4. Greedy decoding with the KV cache and the rope delta.
        let want_tokens = to_i64(case.need("greedy_tokens"));
        let scores = case.need("greedy_scores");
        let mut step_logits = logits.i(l - 1).unwrap();
        let mut got_tokens = Vec::new();
        for (step, _) in want_tokens.iter().enumerate() {
            let err = rel_l2(&step_logits, &scores.i(step).unwrap());
            table.note("greedy_scores (per step)", err);
            if err >= F32_TOL {
                failures.push(format!("{tag}: greedy step {step} logits rel L2 {err:.3e}"));
            }
            let tok = argmax_rows(&step_logits.unsqueeze(0).unwrap())[0] as u32;
            got_tokens.push(tok as i64);
            if step + 1 < want_tokens.len() {
                step_logits = m
                    .decode_one(tok)
                    .unwrap_or_else(|e| panic!("{tag}: decode step {step}: {e}"));
            }
        }
        assert_eq!(
            m.cache_len(),
            l + want_tokens.len() - 1,
            "{tag}: cache length"
        );
        if got_tokens != want_tokens {
            failures.push(format!(
                "{tag}: greedy tokens {got_tokens:?}, reference {want_tokens:?}"
            ));
        }
    }
    table.print(&format!(
        "{model} f32 vs transformers 5.24 (worst over all cases)"
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn moe_hub_f32_matches_transformers() {
    f32_parity("moe-hub");
}

#[test]
fn dense_v5_f32_matches_transformers() {
    f32_parity("dense-v5");
}

/// bf16 weights and activations, held against the f32 reference (bf16 has 8 significant bits:
/// a few 1e-3 per op compounds to ~1e-2 over these 4-layer models, so rel. L2 < 3e-2 and the
/// same argmax at ≥ 90 % of positions) and against transformers' own bf16 run of the same image
/// prompt (`image_bf16`). The MoE model is held to a looser bound against the bf16 reference:
/// there, rounding decides top-2 routing on near-tied tokens, and transformers' bf16 run flips
/// a token in layer 0 that ours does not (measured: its MoE output moves 12 % from f32 on one
/// expert swap; the fixture README found 89 % argmax agreement between transformers' bf16 and
/// f32 runs), so which flips happen depends on bf16 rounding order, not on correctness.
fn bf16_parity(model: &str, max_rel_vs_bf16_ref: f64, min_agree_vs_bf16_ref: f64) {
    let (cfg, mut m) = load(model, DType::BF16);
    let case = load_case(model, "image");
    let bf16_ref = load_case(model, "image_bf16");
    let inputs = Inputs::of(&case);
    let rope = inputs.rope_index(&cfg);
    let logits = m
        .prefill(&inputs.prompt(&rope), LogitsFor::All, &mut NoProbe)
        .unwrap();
    let ref_bf16 = bf16_ref.need("logits").i(0).unwrap();
    let ref_f32 = case.need("logits").i(0).unwrap();
    let rel_bf16 = rel_l2(&logits, &ref_bf16);
    let rel_f32 = rel_l2(&logits, &ref_f32);
    let agree = |a: &Tensor, b: &Tensor| {
        let (x, y) = (argmax_rows(a), argmax_rows(b));
        x.iter().zip(&y).filter(|(p, q)| p == q).count() as f64 / x.len() as f64
    };
    let agree_bf16 = agree(&logits, &ref_bf16);
    let agree_f32 = agree(&logits, &ref_f32);
    println!(
        "{model} bf16 logits: rel L2 {rel_bf16:.3e} vs transformers bf16 ({:.0}% argmax \
         agreement), {rel_f32:.3e} vs f32 ({:.0}%)",
        100.0 * agree_bf16,
        100.0 * agree_f32
    );
    assert!(
        rel_f32 < 3e-2 && agree_f32 >= 0.9,
        "{model}: bf16 logits vs the f32 reference: rel L2 {rel_f32:.3e}, argmax {agree_f32}"
    );
    assert!(
        rel_bf16 < max_rel_vs_bf16_ref && agree_bf16 >= min_agree_vs_bf16_ref,
        "{model}: bf16 logits vs the bf16 reference: rel L2 {rel_bf16:.3e}, argmax {agree_bf16}"
    );

    // Greedy decoding runs in bf16 too; report how far it follows transformers' bf16 tokens.
    let want = to_i64(bf16_ref.need("greedy_tokens"));
    let mut last = logits.i(logits.dim(0).unwrap() - 1).unwrap();
    let mut got = Vec::new();
    for step in 0..want.len() {
        let tok = argmax_rows(&last.unsqueeze(0).unwrap())[0] as u32;
        got.push(tok as i64);
        if step + 1 < want.len() {
            last = m.decode_one(tok).unwrap();
        }
    }
    let same_prefix = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
    println!(
        "{model} bf16 greedy: {got:?}\n  transformers bf16: {want:?} (first {same_prefix} equal)"
    );
    assert!(
        same_prefix >= 1,
        "{model}: bf16 greedy diverges at the first token"
    );
}

#[test]
fn dense_v5_bf16_within_bf16_error() {
    bf16_parity("dense-v5", 3e-2, 0.9);
}

#[test]
fn moe_hub_bf16_within_bf16_error() {
    bf16_parity("moe-hub", 1e-1, 0.8);
}

/// `LogitsFor::Last` and `Positions` compute exactly the rows of `All` they name.
#[test]
fn logits_for_selects_rows() {
    let (cfg, mut m) = load("dense-v5", DType::F32);
    let case = load_case("dense-v5", "image");
    let inputs = Inputs::of(&case);
    let rope = inputs.rope_index(&cfg);
    let all = m
        .prefill(&inputs.prompt(&rope), LogitsFor::All, &mut NoProbe)
        .unwrap();
    let l = inputs.ids.len();
    let last = m
        .prefill(&inputs.prompt(&rope), LogitsFor::Last, &mut NoProbe)
        .unwrap();
    assert_eq!(last.dims(), &[1, cfg.text.vocab_size]);
    assert!(max_abs(&last, &all.i(l - 1..l).unwrap()) < 1e-5);
    let some = m
        .prefill(
            &inputs.prompt(&rope),
            LogitsFor::Positions(vec![3, 0]),
            &mut NoProbe,
        )
        .unwrap();
    let want = Tensor::cat(&[all.i(3..4).unwrap(), all.i(0..1).unwrap()], 0).unwrap();
    assert!(max_abs(&some, &want) < 1e-5);
    // Each prefill starts a new sequence.
    assert_eq!(m.cache_len(), l);
    let err = m
        .prefill(
            &inputs.prompt(&rope),
            LogitsFor::Positions(vec![l]),
            &mut NoProbe,
        )
        .unwrap_err();
    assert!(matches!(err, Error::TokenCountMismatch { .. }), "{err}");
}

/// Placeholder tokens and vision features must pair up; so must positions and ids.
#[test]
fn splice_mismatches_are_errors() {
    let (cfg, mut m) = load("moe-hub", DType::F32);
    let case = load_case("moe-hub", "image");
    let inputs = Inputs::of(&case);
    let rope = inputs.rope_index(&cfg);

    // One image pad token turned into text: 1 feature too many.
    let mut ids = inputs.ids.clone();
    let first_pad = ids.iter().position(|&t| t == cfg.image_token_id).unwrap();
    ids[first_pad] = 0;
    let mut prompt = inputs.prompt(&rope);
    prompt.input_ids = &ids;
    let err = m
        .prefill(&prompt, LogitsFor::Last, &mut NoProbe)
        .unwrap_err();
    match &err {
        Error::TokenCountMismatch { expected, got, .. } => assert_eq!(*expected, got + 1),
        other => panic!("wrong error: {other}"),
    }

    // Image pads without pixels.
    let mut prompt = inputs.prompt(&rope);
    prompt.images = None;
    let err = m
        .prefill(&prompt, LogitsFor::Last, &mut NoProbe)
        .unwrap_err();
    assert!(
        matches!(err, Error::TokenCountMismatch { expected: 0, .. }),
        "{err}"
    );

    // Position rows shorter than the prompt.
    let short = &rope.positions[1][..3];
    let mut prompt = inputs.prompt(&rope);
    prompt.positions[1] = short;
    let err = m
        .prefill(&prompt, LogitsFor::Last, &mut NoProbe)
        .unwrap_err();
    assert!(matches!(err, Error::TokenCountMismatch { .. }), "{err}");

    // An empty prompt, and nothing to decode.
    let mut prompt = inputs.prompt(&rope);
    prompt.input_ids = &[];
    prompt.positions = [&[], &[], &[]];
    prompt.images = None;
    let err = m
        .prefill(&prompt, LogitsFor::Last, &mut NoProbe)
        .unwrap_err();
    assert!(matches!(err, Error::BadInput { .. }), "{err}");
    assert!(matches!(
        m.decode(&[], &mut NoProbe).unwrap_err(),
        Error::BadInput { .. }
    ));

    // A token id outside the vocabulary.
    let err = m
        .decode(&[cfg.text.vocab_size as u32], &mut NoProbe)
        .unwrap_err();
    assert!(matches!(err, Error::TokenOutOfRange { .. }), "{err}");
}

/// Copies a fixture checkpoint to a scratch directory so a test can damage it.
fn scratch_copy(model: &str, tag: &str) -> std::path::PathBuf {
    let dst = std::env::temp_dir().join(format!("glimpse-parity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(model_dir(model)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    dst
}

/// A damaged real checkpoint fails to load with an error naming the tensor and the file.
#[test]
fn damaged_checkpoints_name_tensor_and_file() {
    // Truncated second shard of the sharded MoE checkpoint.
    let dir = scratch_copy("moe-hub", "trunc");
    let shard = dir.join("model-00002-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 100]).unwrap();
    let err = Qwen3VLModel::load(&dir, DType::F32, &Device::Cpu).unwrap_err();
    match &err {
        Error::BadTensor { name, file, reason } => {
            assert_eq!(file, "model-00002-of-00002.safetensors");
            assert!(reason.contains("truncated"), "{reason}");
            assert!(!name.is_empty());
        }
        other => panic!("wrong error: {other}"),
    }

    // A config whose sizes disagree with the tensors: the first misshapen tensor is named.
    let dir = scratch_copy("dense-v5", "shape");
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["text_config"]["intermediate_size"] = 100.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = Qwen3VLModel::load(&dir, DType::F32, &Device::Cpu).unwrap_err();
    match &err {
        Error::BadTensor { name, file, reason } => {
            assert_eq!(name, "model.language_model.layers.0.mlp.gate_proj.weight");
            assert_eq!(file, "model.safetensors");
            assert!(reason.contains("[112, 80]"), "{reason}");
        }
        other => panic!("wrong error: {other}"),
    }

    // A config with more layers than the checkpoint: the missing tensor is named.
    cfg["text_config"]["intermediate_size"] = 112.into();
    cfg["text_config"]["num_hidden_layers"] = 5.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = Qwen3VLModel::load(&dir, DType::F32, &Device::Cpu).unwrap_err();
    match &err {
        Error::MissingTensor { name, file } => {
            assert!(name.starts_with("model.language_model.layers.4."), "{name}");
            assert_eq!(file, "model.safetensors");
        }
        other => panic!("wrong error: {other}"),
    }
}

/// The MoE fixture re-saved in the transformers-5 expert layout (`[E, 2I, D]` / `[E, D, I]`)
/// gives the same logits: orientation is decided from the shapes.
#[test]
fn moe_expert_layouts_agree() {
    let dir = scratch_copy("moe-hub", "layout");
    // Rewrite every expert tensor transposed, through the crate's own loader + candle's writer.
    for shard in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        let path = dir.join(shard);
        let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        for (name, t) in tensors.iter_mut() {
            if name.ends_with("experts.gate_up_proj") || name.ends_with("experts.down_proj") {
                *t = t.transpose(1, 2).unwrap().contiguous().unwrap();
            }
        }
        candle_core::safetensors::save(&tensors, &path).unwrap();
    }
    let (cfg, mut hub) = load("moe-hub", DType::F32);
    let (_, mut v5) = Qwen3VLModel::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let case = load_case("moe-hub", "image");
    let inputs = Inputs::of(&case);
    let rope = inputs.rope_index(&cfg);
    let a = hub
        .prefill(&inputs.prompt(&rope), LogitsFor::All, &mut NoProbe)
        .unwrap();
    let b = v5
        .prefill(&inputs.prompt(&rope), LogitsFor::All, &mut NoProbe)
        .unwrap();
    assert!(max_abs(&a, &b) < 1e-5, "{}", max_abs(&a, &b));
}

/// The trained `grounding` checkpoint (real, peaked activations rather than random ones):
/// the last prompt logits match transformers and greedy decoding reproduces its 34-token answer,
/// EOS included, in f32 and in bf16 (the smallest top-1/top-2 margin on the way is 10.6).
#[test]
fn grounding_model_reproduces_its_answer() {
    let case = load_case("grounding", "answer");
    let inputs = Inputs::of(&case);
    let want = to_i64(case.need("greedy_tokens"));
    for dtype in [DType::F32, DType::BF16] {
        let (cfg, mut m) = load("grounding", dtype);
        let rope = inputs.rope_index(&cfg);
        let last = m
            .prefill(&inputs.prompt(&rope), LogitsFor::Last, &mut NoProbe)
            .unwrap()
            .i(0)
            .unwrap();
        let err = rel_l2(&last, case.need("logits_last_prompt"));
        println!("grounding {dtype:?}: last prompt logits rel L2 {err:.3e}");
        let bound = if dtype == DType::F32 { F32_TOL } else { 3e-2 };
        assert!(err < bound, "{dtype:?}: rel L2 {err:.3e}");
        let mut got = Vec::new();
        let mut logits = last;
        for _ in 0..want.len() {
            let tok = argmax_rows(&logits.unsqueeze(0).unwrap())[0] as u32;
            got.push(tok as i64);
            logits = m.decode_one(tok).unwrap();
        }
        assert_eq!(got, want, "{dtype:?} greedy answer");
    }
}
