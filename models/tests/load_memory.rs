//! Loading a model needs about the size of its weights, not twice: a synthetic checkpoint with
//! real 2B layer sizes (a few hundred MB) is loaded in a child process, whose peak-RSS counter
//! covers only the load, and the peak growth is compared with the bytes the weights take once
//! loaded. Reading tensors out of a memory map (whose pages stay resident) peaked at 2×, and a
//! quantized load that widened whole weights to f32 at nearly 3×.

#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device};
use glimpse_models::qwen3_vl::synthetic::{Preset, Synthetic};
use glimpse_models::qwen3_vl::{Checkpoint, Quant, Qwen3VLModel};

/// Set in the child: `dir|dtype|quant` of the load it measures.
const CHILD: &str = "GLIMPSE_LOAD_MEMORY_CHILD";
const TEST_NAME: &str = "load_peak_stays_near_the_weights";
/// The bound: peak ≤ 1.15 × the weights as loaded.
const BOUND: f64 = 1.15;

fn status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// In the child: load, then print RSS before, the load's peak and RSS after, in bytes.
fn child(spec: &str) {
    let mut it = spec.split('|');
    let (dir, dtype, quant) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let dtype = glimpse_models::engine::parse_dtype(dtype).unwrap();
    let quant: Quant = quant.parse().unwrap();
    let before = status_kb("VmRSS");
    // Restart the peak counter at the current RSS (Linux clear_refs).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let model = Qwen3VLModel::load_with(Path::new(dir), dtype, &Device::Cpu, quant).unwrap();
    let peak = status_kb("VmHWM");
    let after = status_kb("VmRSS");
    println!(
        "LOAD_MEMORY {} {} {}",
        before * 1024,
        peak * 1024,
        after * 1024
    );
    drop(model);
}

#[test]
fn load_peak_stays_near_the_weights() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    let root =
        TempDir(std::env::temp_dir().join(format!("glimpse-load-memory-{}", std::process::id())));
    let root = &root.0;
    // One real-size 2B decoder layer and vision block; a cut vocabulary keeps it ≈ 0.25 GB in bf16.
    let synth = Synthetic::new(Preset::Qwen3Vl2b, Some(1), Some(1), DType::BF16)
        .unwrap()
        .with_vocab(16384);
    let dir = synth.ensure(root).unwrap();
    let ck = Checkpoint::open(&dir).unwrap();
    let elements: u64 = ck
        .names()
        .map(|n| ck.shape(n).unwrap().iter().product::<usize>() as u64)
        .sum();
    assert!(
        elements > 100_000_000,
        "{elements} elements: too small to measure"
    );

    for (dtype, quant) in [("bf16", "none"), ("f32", "none"), ("bf16", "q8_0")] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{}|{dtype}|{quant}", dir.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{dtype}/{quant} child failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nums: Vec<f64> = stdout
            .lines()
            // The harness may print its test line before ours on the same line.
            .find_map(|l| l.split_once("LOAD_MEMORY ").map(|(_, v)| v))
            .unwrap_or_else(|| panic!("no measurement in {stdout}"))
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        let (before, peak, after) = (nums[0], nums[1], nums[2]);
        let resident = after - before;
        // Unquantized, every tensor at the load dtype (the tied lm_head shares the
        // embeddings); Q8_0 (34 bytes per 32 weights), the decoder's projections plus a
        // quantized copy of the tied lm_head, the rest (vision tower, embeddings, norms) bf16.
        let dtype_bytes = glimpse_models::engine::parse_dtype(dtype)
            .unwrap()
            .size_in_bytes() as f64;
        let weights: f64 = ck
            .names()
            .map(|n| {
                let numel = ck.shape(n).unwrap().iter().product::<usize>() as f64;
                let decoder_proj =
                    n.starts_with("model.language_model.layers.") && n.ends_with("_proj.weight");
                let embeddings = n == "model.language_model.embed_tokens.weight";
                match quant {
                    "q8_0" if decoder_proj => numel * 34.0 / 32.0,
                    "q8_0" if embeddings => numel * (dtype_bytes + 34.0 / 32.0),
                    _ => numel * dtype_bytes,
                }
            })
            .sum();
        // The measurement is real: what stayed resident is the weights (plus allocator slack).
        assert!(
            (resident / weights - 1.0).abs() < 0.12,
            "{dtype}/{quant}: resident {resident} vs weights {weights}"
        );
        let ratio = (peak - before) / weights;
        eprintln!(
            "{dtype}/{quant}: weights {:.0} MB, load peak growth {:.0} MB = {ratio:.3}×",
            weights / 1e6,
            (peak - before) / 1e6
        );
        assert!(
            ratio <= BOUND,
            "{dtype}/{quant}: the load peaked at {ratio:.2}× the weights (bound {BOUND})"
        );
    }
}

/// A folder removed when the test ends, passed or failed (the checkpoint is 0.25 GB).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
