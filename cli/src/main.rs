//! `glimpse`: the engine without a window, for scripts, checks and benchmarks.
//!
//! Output contract of `generate` (other tools depend on it): without `--json` the answer
//! streams to stdout; with `--json` the last stdout line is one JSON object (`text`,
//! `token_ids`, `prompt_tokens`, `generated_tokens`, `prefill_ms`, `decode_tokens_per_s`).
//! Errors go to stderr as one line, with a non-zero exit.

mod bench;
mod model_dir;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use glimpse_models::engine::{parse_dtype, DeviceKind, Engine, LoadOptions, Prepared};
use glimpse_models::generation::{CancelToken, Overrides, Segment, StreamEvent};
use glimpse_models::processor::{Content, ImageInput, Message, RenderOptions, VideoInput};

#[derive(Parser)]
#[command(
    name = "glimpse",
    version,
    about = "Local Qwen3-VL: ask about images and videos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once per run; boxing the big variant would buy nothing.
enum Command {
    /// Answer a prompt about images and videos.
    Generate(Box<GenerateArgs>),
    /// Check that a model folder holds a usable Qwen3-VL checkpoint and print its shape.
    /// Measure load, vision encode, prefill, decode and time to first token.
    Bench(Box<bench::BenchArgs>),
    Inspect {
        /// A checkpoint folder, or a Hub id (`Qwen/Qwen3-VL-2B-Instruct`) in the local HF cache.
        #[arg(long)]
        model: String,
    },
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// A checkpoint folder, or a Hub id (`Qwen/Qwen3-VL-2B-Instruct`) in the local HF cache.
    #[arg(long)]
    model: String,
    /// An image for the user message (repeatable; in order, before the videos).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// A video file for the user message (repeatable; after the images).
    #[arg(long = "video")]
    videos: Vec<PathBuf>,
    #[arg(long)]
    system: Option<String>,
    #[arg(long)]
    prompt: String,
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// 0 means greedy. Default: the checkpoint's generation_config.json.
    #[arg(long)]
    temperature: Option<f64>,
    #[arg(long)]
    top_p: Option<f64>,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Quantize the text decoder at load: none, q8_0 or q4k.
    #[arg(long, default_value = "none")]
    quant: String,
    /// Print one JSON object with the answer and timings as the last stdout line.
    #[arg(long)]
    json: bool,
    /// Write the model inputs and the last prompt position's logits to DIR as safetensors.
    #[arg(long)]
    dump: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        // One line: the chain of causes joined, so scripts can grep it.
        eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { model } => {
            let dir = model_dir::resolve(&model)?;
            let cfg = glimpse_models::qwen3_vl::Config::from_dir(&dir)?;
            println!("{cfg:#?}");
            Ok(())
        }
        Command::Generate(args) => generate(*args),
        Command::Bench(args) => bench::run(*args),
    }
}

fn generate(args: GenerateArgs) -> Result<()> {
    let dir = model_dir::resolve(&args.model)?;
    let options = LoadOptions {
        device: args.device.parse::<DeviceKind>()?,
        dtype: parse_dtype(&args.dtype)?,
        quant: args.quant.parse()?,
    };
    let mut engine =
        Engine::load(&dir, &options).with_context(|| format!("loading {}", dir.display()))?;

    let mut messages = vec![];
    if let Some(system) = &args.system {
        messages.push(Message::text("system", system.clone()));
    }
    let mut content: Vec<Content> = args
        .images
        .iter()
        .map(|p| Content::Image(ImageInput::File(p.clone())))
        .collect();
    content.extend(
        args.videos
            .iter()
            .map(|p| Content::Video(VideoInput::File(p.clone()))),
    );
    content.push(Content::Text(args.prompt.clone()));
    messages.push(Message::new("user", content));

    let render = RenderOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    let prepared = engine.prepare(&messages, &render)?;

    if let Some(out) = &args.dump {
        dump(&mut engine, &prepared, out)
            .with_context(|| format!("writing the dump to {}", out.display()))?;
    }

    let overrides = Overrides {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        max_new_tokens: args.max_new_tokens,
        ..Default::default()
    };
    let params = engine.sampling_params(&overrides);
    let cancel = CancelToken::new();
    let stdout = std::io::stdout();
    let stream = !args.json;
    let mut on_event = |event: StreamEvent| {
        if !stream {
            return;
        }
        if let StreamEvent::Token { segments, .. } | StreamEvent::Flush { segments } = event {
            let mut out = stdout.lock();
            for s in segments {
                // Thinking goes to stderr so stdout stays the answer.
                match s {
                    Segment::Answer(t) => drop(write!(out, "{t}")),
                    Segment::Thinking(t) => eprint!("{t}"),
                }
            }
            let _ = out.flush();
        }
    };
    let stats = engine.generate(&prepared, &params, &cancel, &mut on_event)?;
    if args.json {
        let line = serde_json::json!({
            "text": stats.text,
            "token_ids": stats.token_ids,
            "prompt_tokens": stats.prompt_tokens,
            "generated_tokens": stats.token_ids.len(),
            "prefill_ms": stats.prefill_ms,
            "decode_tokens_per_s": stats.decode_tokens_per_s,
            "finish_reason": stats.finish_reason,
        });
        println!("{line}");
    } else {
        println!();
    }
    Ok(())
}

/// `inputs.safetensors` (ids, positions, pixels, grids) and `logits.safetensors` (the logits
/// at the last prompt position), in the dtypes other tools compare against.
fn dump(engine: &mut Engine, p: &Prepared, out: &std::path::Path) -> Result<()> {
    use candle_core::{DType, Device, Tensor};
    use std::collections::HashMap;
    std::fs::create_dir_all(out)?;
    let cpu = Device::Cpu;
    let ids: Vec<i64> = p.input_ids().iter().map(|&t| t as i64).collect();
    let l = ids.len();
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert("input_ids".into(), Tensor::from_vec(ids, (1, l), &cpu)?);
    let pos: Vec<i64> = p.positions.positions.iter().flatten().copied().collect();
    t.insert(
        "position_ids".into(),
        Tensor::from_vec(pos, (3, 1, l), &cpu)?,
    );
    let grid = |g: &[[usize; 3]]| -> candle_core::Result<Tensor> {
        let v: Vec<i64> = g.iter().flatten().map(|&x| x as i64).collect();
        Tensor::from_vec(v, (g.len(), 3), &cpu)
    };
    if let Some(px) = p.pixel_values() {
        t.insert(
            "pixel_values".into(),
            px.to_device(&cpu)?.to_dtype(DType::F32)?,
        );
        t.insert("image_grid_thw".into(), grid(p.image_grid_thw())?);
    }
    if let Some(px) = p.pixel_values_videos() {
        t.insert(
            "pixel_values_videos".into(),
            px.to_device(&cpu)?.to_dtype(DType::F32)?,
        );
        t.insert("video_grid_thw".into(), grid(p.video_grid_thw())?);
    }
    candle_core::safetensors::save(&t, out.join("inputs.safetensors"))?;
    let logits = engine
        .prompt_logits(p)?
        .to_device(&cpu)?
        .to_dtype(DType::F32)?;
    let mut l = HashMap::new();
    l.insert("logits".to_string(), logits);
    candle_core::safetensors::save(&l, out.join("logits.safetensors"))?;
    Ok(())
}
