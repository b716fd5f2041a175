//! `glimpse bench`: how fast the engine encodes images, prefills and decodes, on a synthetic
//! checkpoint with a released model's real layer sizes (no download) or on real weights.
//!
//! Every figure is the median of `--repeats` runs. The table goes to stdout, then the same
//! numbers as one JSON object on the last stdout line. Timings on a shared machine are noisy;
//! compare runs made in the same time window.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use glimpse_models::engine::{parse_dtype, DeviceKind};
use glimpse_models::qwen3_vl::kv_cache::grown_capacity;
use glimpse_models::qwen3_vl::moe::ExpertLayout;
use glimpse_models::qwen3_vl::quant::decode_weight_bytes;
use glimpse_models::qwen3_vl::synthetic::{Preset, Synthetic};
use glimpse_models::qwen3_vl::{
    get_rope_index, Checkpoint, Config, LogitsFor, NoProbe, Prompt, Quant, Qwen3VLModel,
    VisionTokenIds, VisualInput,
};
use serde_json::json;

mod bandwidth;
mod table;

/// The read-bandwidth probe's buffer: 16 times a large server's L3 slice, so the reads come
/// from memory; and its passes (before and after the decode runs, each).
const BANDWIDTH_BUFFER_BYTES: usize = 512 << 20;
const BANDWIDTH_PASSES: usize = 7;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Random weights with a released model's layer sizes: qwen3-vl-2b, qwen3-vl-4b,
    /// qwen3-vl-8b, qwen3-vl-30b-a3b.
    #[arg(long, conflicts_with = "model")]
    synthetic: Option<String>,
    /// A checkpoint folder (or Hub id in the local cache) instead of synthetic weights.
    #[arg(long)]
    model: Option<String>,
    /// Keep only the first N decoder layers of the synthetic model (default: all).
    #[arg(long)]
    layers: Option<usize>,
    /// Keep only the first N vision blocks of the synthetic model (default: all).
    #[arg(long)]
    vision_layers: Option<usize>,
    /// Where synthetic checkpoints are written once and reused.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    #[arg(long, default_value = "bf16")]
    dtype: String,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Quantize the text decoder at load: none, q8_0 or q4k.
    #[arg(long, default_value = "none")]
    quant: String,
    /// Compute threads (default: what the machine offers).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Small sizes for a fast smoke run: 256×256 and 480×270 images, prefill 64/128, decode 16.
    #[arg(long)]
    quick: bool,
    /// Images to encode, as WxH (comma separated). Default 1024x1024,1920x1080.
    #[arg(long, value_delimiter = ',')]
    images: Option<Vec<String>>,
    /// Prompt lengths to prefill (comma separated). Default 512,2048.
    #[arg(long, value_delimiter = ',')]
    prefill: Option<Vec<usize>>,
    /// Tokens to decode. Default 128.
    #[arg(long)]
    decode_tokens: Option<usize>,
    /// Text tokens already in the cache when decoding starts. Default 512.
    #[arg(long)]
    decode_context: Option<usize>,
    /// Skip the time-to-first-token run (a full image prompt).
    #[arg(long)]
    no_ttft: bool,
    /// How the synthetic MoE model stores its experts: `linear` (transformers 5's
    /// save_pretrained) or `hub` (the released Qwen3-VL-30B-A3B files).
    #[arg(long, default_value = "linear")]
    expert_layout: String,
}

/// The sizes one run measures.
struct Work {
    images: Vec<(usize, usize)>,
    prefill: Vec<usize>,
    decode_tokens: usize,
    decode_context: usize,
}

impl Work {
    fn from_args(a: &BenchArgs) -> Result<Self> {
        let (images, prefill, decode, context) = if a.quick {
            (vec![(256, 256), (480, 270)], vec![64, 128], 16, 64)
        } else {
            (vec![(1024, 1024), (1920, 1080)], vec![512, 2048], 128, 512)
        };
        let images = match &a.images {
            Some(list) => list.iter().map(|s| parse_size(s)).collect::<Result<_>>()?,
            None => images,
        };
        Ok(Self {
            images,
            prefill: a.prefill.clone().unwrap_or(prefill),
            decode_tokens: a.decode_tokens.unwrap_or(decode),
            decode_context: a.decode_context.unwrap_or(context),
        })
    }
}

fn parse_size(s: &str) -> Result<(usize, usize)> {
    let (w, h) = s
        .split_once('x')
        .with_context(|| format!("image size `{s}` is not WxH"))?;
    let (w, h): (usize, usize) = (w.parse()?, h.parse()?);
    if w == 0 || h == 0 {
        bail!("image size `{s}` has no pixels");
    }
    Ok((w, h))
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        // candle and rayon both read this before their first parallel op.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let threads = candle_core::utils::get_num_threads();
    let work = Work::from_args(&args)?;
    let dtype = parse_dtype(&args.dtype)?;
    let quant: Quant = args.quant.parse()?;
    let device = args.device.parse::<DeviceKind>()?.open()?;

    // 1. The checkpoint: synthetic (written once, then reused) or a folder.
    let (dir, label) = match (&args.synthetic, &args.model) {
        (Some(name), _) => {
            let preset: Preset = name.parse()?;
            // Stored in the run's dtype, so loading converts nothing.
            let experts = match args.expert_layout.as_str() {
                "linear" => ExpertLayout::Linear,
                "hub" => ExpertLayout::Hub,
                other => bail!("--expert-layout: `{other}` is not linear or hub"),
            };
            let synth = Synthetic::new(preset, args.layers, args.vision_layers, dtype)?
                .with_expert_layout(experts);
            let root = args.cache_dir.clone().unwrap_or_else(default_cache);
            let t = Instant::now();
            let dir = synth.ensure(&root).with_context(|| {
                format!("writing the synthetic checkpoint under {}", root.display())
            })?;
            eprintln!(
                "synthetic checkpoint {} ({:.2} GB) ready in {:.1} s",
                dir.display(),
                synth.weight_bytes() as f64 / 1e9,
                t.elapsed().as_secs_f64()
            );
            (dir, synth.dir_name())
        }
        (None, Some(m)) => {
            let dir = crate::model_dir::resolve(m)?;
            (dir.clone(), dir.display().to_string())
        }
        (None, None) => bail!("give --synthetic NAME or --model DIR"),
    };

    // 2. Load, with the resident memory it took and the most it needed on the way.
    let rss_before = rss_kb("VmRSS");
    let peak_reset = reset_peak_rss();
    let c = Clock::start();
    let (cfg, mut model) = Qwen3VLModel::load_with(&dir, dtype, &device, quant)
        .with_context(|| format!("loading {}", dir.display()))?;
    let (load_ms, load_cpu_ms) = c.stop();
    let rss_loaded = rss_kb("VmRSS");
    let load_peak = rss_kb("VmHWM").filter(|_| peak_reset);
    let checkpoint_bytes = checkpoint_bytes(&dir, dtype)?;
    eprintln!("loaded in {load_ms:.0} ms");
    let mut memory = Memory {
        before_kb: rss_before,
        loaded_kb: rss_loaded,
        load_peak_kb: load_peak,
        checkpoint_bytes,
        decode_peak_kb: None,
        earlier_peak_kb: None,
        kv_capacity: 0,
    };

    let mut rng = 0x1234_5678u64;
    let mut report = Report::default();

    // 3. Vision encode, one image at a time.
    for &(w, h) in &work.images {
        let grid = image_grid(&cfg, w, h)?;
        let n = grid[1] * grid[2];
        let pixels =
            random_tensor(&mut rng, (n, cfg.vision.patch_dim()), &device)?.to_dtype(dtype)?;
        let runs = repeat(args.repeats, || {
            model.visual().forward(&pixels, &[grid])?;
            Ok(None)
        })?;
        eprintln!("vision {w}x{h}: {:.0} ms", runs.wall());
        report.vision.push(json!({
            "width": w, "height": h, "grid_thw": grid, "patches": n,
            "tokens": n / (cfg.vision.spatial_merge_size.pow(2)),
            "ms": runs.wall(), "cpu_ms": runs.cpu(), "runs_ms": runs.wall,
        }));
    }

    // 4. Prefill of text prompts.
    for &len in &work.prefill {
        memory.kv_capacity = grown_capacity(memory.kv_capacity, len);
        let ids = random_ids(&mut rng, len, &cfg);
        let runs = repeat(args.repeats, || {
            prefill_text(&mut model, &ids)?;
            Ok(None)
        })?;
        let tps = len as f64 / (runs.wall() / 1e3);
        eprintln!("prefill {len}: {tps:.1} tok/s");
        report.prefill.push(json!({
            "tokens": len, "ms": runs.wall(), "cpu_ms": runs.cpu(), "tokens_per_s": tps,
            "runs_ms": runs.wall,
        }));
    }

    // 5. Decode after a prefilled context, greedy on the model's own logits.
    if work.decode_tokens > 0 {
        let ids = random_ids(&mut rng, work.decode_context.max(1), &cfg);
        memory.kv_capacity = grown_capacity(memory.kv_capacity, ids.len());
        for len in ids.len() + 1..=ids.len() + work.decode_tokens {
            memory.kv_capacity = grown_capacity(memory.kv_capacity, len);
        }
        // What the memory gives around the decode runs (CPU runs only). The probe's buffer
        // is not the model's memory: it runs outside the windows whose peaks are reported.
        let probe = || {
            device
                .is_cpu()
                .then(|| bandwidth::measure(BANDWIDTH_BUFFER_BYTES, BANDWIDTH_PASSES))
        };
        // The decode window's own peak: images and long prefills before it do not count.
        memory.earlier_peak_kb = rss_kb("VmHWM");
        let before = probe();
        let decode_reset = reset_peak_rss();
        let runs = repeat(args.repeats, || {
            let mut next = prefill_text(&mut model, &ids)?;
            let c = Clock::start();
            for _ in 0..work.decode_tokens {
                next = argmax(&model.decode_one(next)?)?;
            }
            Ok(Some(c.stop()))
        })?;
        memory.decode_peak_kb = rss_kb("VmHWM").filter(|_| decode_reset);
        let tps = work.decode_tokens as f64 / (runs.wall() / 1e3);
        eprintln!("decode {}: {tps:.2} tok/s", work.decode_tokens);
        let bandwidth = before.zip(probe()).map(|(b, a)| b.and(a));
        reset_peak_rss();
        let weight_bytes = decode_weight_bytes(&cfg, dtype.size_in_bytes() as u64, quant) as f64;
        let weight_gb_per_s = weight_bytes * tps / 1e9;
        if let Some(b) = &bandwidth {
            eprintln!(
                "decode reads {weight_gb_per_s:.1} GB/s of weights; read bandwidth {:.1} GB/s",
                b.best()
            );
        }
        report.decode = Some(json!({
            "tokens": work.decode_tokens, "context": work.decode_context,
            "ms": runs.wall(), "cpu_ms": runs.cpu(), "tokens_per_s": tps,
            "runs_ms": runs.wall,
            "weight_mb_per_token": weight_bytes / 1e6,
            "weight_gb_per_s": weight_gb_per_s,
            "read_bandwidth_gb_per_s": bandwidth.as_ref().map(|b| b.best()),
            "read_bandwidth_median_gb_per_s": bandwidth.as_ref().map(|b| b.median()),
            "bandwidth_fraction": bandwidth.as_ref().map(|b| weight_gb_per_s / b.best()),
        }));
    }

    // 6. Time to first token: the last image, spliced into a short question, prefilled whole.
    if !args.no_ttft {
        if let Some(&(w, h)) = work.images.last() {
            let grid = image_grid(&cfg, w, h)?;
            let n = grid[1] * grid[2];
            let pixels = random_tensor(&mut rng, (n, cfg.vision.patch_dim()), &device)?;
            let ids = image_prompt(&mut rng, &cfg, n / cfg.vision.spatial_merge_size.pow(2));
            let tok = VisionTokenIds::from_config(&cfg);
            let rope = get_rope_index(&ids, &[grid], &[], &tok, cfg.vision.spatial_merge_size)?;
            let runs = repeat(args.repeats, || {
                let prompt = Prompt {
                    input_ids: &ids,
                    images: Some(VisualInput {
                        pixel_values: &pixels,
                        grid_thw: &[grid],
                    }),
                    videos: None,
                    positions: [&rope.positions[0], &rope.positions[1], &rope.positions[2]],
                    rope_delta: rope.rope_delta,
                };
                let logits = model.prefill(&prompt, LogitsFor::Last, &mut NoProbe)?;
                argmax(&logits.squeeze(0)?)?;
                Ok(None)
            })?;
            eprintln!("time to first token ({w}x{h} image): {:.0} ms", runs.wall());
            report.ttft = Some(json!({
                "width": w, "height": h, "prompt_tokens": ids.len(),
                "ms": runs.wall(), "cpu_ms": runs.cpu(), "runs_ms": runs.wall,
            }));
        }
    }

    let out = json!({
        "model": label,
        "dtype": args.dtype,
        "quant": quant.name(),
        "device": args.device,
        "threads": threads,
        "cpu_bf16_gemm": glimpse_models::qwen3_vl::onednn::describe(),
        "repeats": args.repeats,
        "load_ms": load_ms,
        "load_cpu_ms": load_cpu_ms,
        "rss_after_load_mb": rss_loaded.map(|k| k as f64 / 1024.0),
        "peak_rss_mb": memory.process_peak_kb().map(|k| k as f64 / 1024.0),
        "memory": memory.report(&cfg, dtype),
        "vision": report.vision,
        "prefill": report.prefill,
        "decode": report.decode,
        "ttft": report.ttft,
    });
    table::print_table(&out);
    println!("{out}");
    Ok(())
}

#[derive(Default)]
struct Report {
    vision: Vec<serde_json::Value>,
    prefill: Vec<serde_json::Value>,
    decode: Option<serde_json::Value>,
    ttft: Option<serde_json::Value>,
}

fn default_cache() -> PathBuf {
    std::env::var_os("GLIMPSE_BENCH_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/glimpse/bench")))
        .unwrap_or_else(|| std::env::temp_dir().join("glimpse-bench"))
}

/// Wall and CPU milliseconds of each run. CPU time (user + system, this process) is the
/// steadier figure on a shared machine; wall time is what a user waits.
#[derive(Default)]
struct Runs {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Runs {
    fn wall(&self) -> f64 {
        median(&self.wall)
    }
    fn cpu(&self) -> f64 {
        median(&self.cpu)
    }
}

/// A stopwatch for both clocks.
struct Clock {
    wall: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_ms(),
        }
    }
    fn stop(&self) -> (f64, f64) {
        (ms(self.wall), cpu_ms() - self.cpu)
    }
}

/// Runs `f` `n` times; each run's times are what `f` returns, or else its whole duration.
fn repeat<F: FnMut() -> Result<Option<(f64, f64)>>>(n: usize, mut f: F) -> Result<Runs> {
    let mut runs = Runs::default();
    for _ in 0..n {
        let c = Clock::start();
        let (wall, cpu) = match f()? {
            Some(t) => t,
            None => c.stop(),
        };
        runs.wall.push(wall);
        runs.cpu.push(cpu);
    }
    Ok(runs)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// User + system CPU time of this process so far, in ms (Linux `/proc`, 100 ticks a second;
/// NaN elsewhere).
fn cpu_ms() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) * 10.0,
        _ => f64::NAN,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The patch grid the processor gives a `w`×`h` image under the released models' budget
/// (longest_edge 16777216 pixels, spec §6.2).
fn image_grid(cfg: &Config, w: usize, h: usize) -> Result<[usize; 3]> {
    let p = cfg.vision.patch_size;
    let factor = p * cfg.vision.spatial_merge_size;
    let (rh, rw) = glimpse_models::processor::resize::smart_resize(h, w, factor, 65536, 16777216)?;
    Ok([1, rh / p, rw / p])
}

fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

fn random_tensor(rng: &mut u64, shape: (usize, usize), device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| (next(rng) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect();
    Ok(Tensor::from_vec(v, shape, device)?)
}

/// Token ids that are none of the vision placeholders.
fn random_ids(rng: &mut u64, n: usize, cfg: &Config) -> Vec<u32> {
    let special = [
        cfg.image_token_id,
        cfg.video_token_id,
        cfg.vision_start_token_id,
        cfg.vision_end_token_id,
    ];
    let vocab = cfg.text.vocab_size as u64;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let id = (next(rng) % vocab) as u32;
        if !special.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// 16 text tokens, the image block (`<vision_start>`, pads, `<vision_end>`), 16 text tokens.
fn image_prompt(rng: &mut u64, cfg: &Config, image_tokens: usize) -> Vec<u32> {
    let mut ids = random_ids(rng, 16, cfg);
    ids.push(cfg.vision_start_token_id);
    ids.extend(std::iter::repeat_n(cfg.image_token_id, image_tokens));
    ids.push(cfg.vision_end_token_id);
    ids.extend(random_ids(rng, 16, cfg));
    ids
}

fn prefill_text(model: &mut Qwen3VLModel, ids: &[u32]) -> Result<u32> {
    let pos: Vec<i64> = (0..ids.len() as i64).collect();
    let prompt = Prompt {
        input_ids: ids,
        images: None,
        videos: None,
        positions: [&pos, &pos, &pos],
        rope_delta: 0,
    };
    let logits = model.prefill(&prompt, LogitsFor::Last, &mut NoProbe)?;
    argmax(&logits.squeeze(0)?)
}

fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.to_dtype(DType::F32)?.argmax(0)?.to_scalar::<u32>()?)
}

/// Resident memory around the load and the decode window, in the process's own terms.
struct Memory {
    before_kb: Option<u64>,
    loaded_kb: Option<u64>,
    load_peak_kb: Option<u64>,
    /// The checkpoint's tensors at the load dtype: what an unquantized load holds.
    checkpoint_bytes: u64,
    decode_peak_kb: Option<u64>,
    /// The peak of what ran between the load and the decode window (read before resetting).
    earlier_peak_kb: Option<u64>,
    /// Positions the KV cache buffer holds by the end of the decode window.
    kv_capacity: usize,
}

impl Memory {
    /// The process's peak so far: the largest of the windows the counter was reset between.
    fn process_peak_kb(&self) -> Option<u64> {
        [
            self.load_peak_kb,
            self.earlier_peak_kb,
            self.decode_peak_kb,
            rss_kb("VmHWM"),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// Peaks as growth over the RSS before the load, against what stays resident once loaded
    /// (`weights`); the decode peak also against the KV cache's buffers.
    fn report(&self, cfg: &Config, dtype: DType) -> serde_json::Value {
        let mb = |b: f64| b / (1 << 20) as f64;
        let t = &cfg.text;
        let kv = (2
            * t.num_hidden_layers
            * t.num_key_value_heads
            * t.head_dim
            * self.kv_capacity
            * dtype.size_in_bytes()) as f64;
        let grown = |kb: Option<u64>| {
            self.before_kb
                .zip(kb)
                .map(|(b, a)| a.saturating_sub(b) as f64 * 1024.0)
        };
        let weights = grown(self.loaded_kb);
        let load_peak = grown(self.load_peak_kb);
        let decode_peak = grown(self.decode_peak_kb);
        json!({
            "checkpoint_weights_mb": mb(self.checkpoint_bytes as f64),
            "resident_weights_mb": weights.map(mb),
            "load_peak_growth_mb": load_peak.map(mb),
            "load_peak_ratio": load_peak.zip(weights).map(|(p, w)| p / w),
            "kv_cache_mb": mb(kv),
            "decode_peak_growth_mb": decode_peak.map(mb),
            "decode_peak_ratio": decode_peak.zip(weights).map(|(p, w)| p / (w + kv)),
        })
    }
}

/// Bytes of every tensor of the checkpoint in `dir` at `dtype` (headers only).
fn checkpoint_bytes(dir: &std::path::Path, dtype: DType) -> Result<u64> {
    let ck = Checkpoint::open(dir)?;
    Ok(ck
        .names()
        .filter_map(|n| ck.shape(n))
        .map(|s| (s.iter().product::<usize>() * dtype.size_in_bytes()) as u64)
        .sum())
}

/// Restarts the kernel's peak-RSS counter (`VmHWM`) at the current RSS, so a later reading is
/// the peak of what ran in between. Linux only; false where it cannot.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `kB` value of a `/proc/self/status` line (Linux only; None elsewhere).
fn rss_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
