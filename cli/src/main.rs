//! `glimpse`: the engine without a window, for scripts, checks and benchmarks.
//!
//! Output contract of `generate` (other tools depend on it): without `--json` the answer
//! streams to stdout; with `--json` the last stdout line is one JSON object (`text`,
//! `token_ids`, `prompt_tokens`, `generated_tokens`, `prefill_ms`, `decode_tokens_per_s`).
//! Errors go to stderr as one line, with a non-zero exit.

mod bench;
mod model_dir;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use glimpse_models::engine::{parse_dtype, DeviceKind, Engine, LoadOptions, Prepared};
use glimpse_models::generation::{
    CancelToken, Overrides, PrefillProgress, PrefillStage, Segment, StreamEvent,
};
use glimpse_models::processor::{
    Content, ImageInput, Message, PrepareHooks, Processor, RenderOptions, VideoInput, VideoOptions,
};

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
enum Command {
    /// Answer a prompt about images and videos.
    Generate(Box<GenerateArgs>),
    /// Print what a video will cost (sampled frames, their times, grid, vision tokens) as JSON,
    /// from its header alone; `--extract` also decodes the frames and reports the time taken.
    VideoPlan(Box<VideoPlanArgs>),
    /// Measure load, vision encode, prefill, decode and time to first token.
    Bench(Box<bench::BenchArgs>),
    /// Check that a model folder holds a usable Qwen3-VL checkpoint and print its shape.
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
    #[command(flatten)]
    video_options: VideoArgs,
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

/// How videos are sampled (applies to every `--video`).
#[derive(clap::Args, Clone, Default)]
struct VideoArgs {
    /// Frames sampled per second of video (default: the checkpoint's, usually 2).
    #[arg(long)]
    fps: Option<f64>,
    /// At most this many sampled frames (default: the checkpoint's `max_frames`).
    #[arg(long)]
    max_frames: Option<usize>,
    /// Analyse from this time on: seconds (`80`, `80.5`) or a clock (`1:20`, `0:01:20.5`).
    #[arg(long, value_parser = parse_time)]
    start: Option<f64>,
    /// Analyse up to (not including) this time; same forms as `--start`.
    #[arg(long, value_parser = parse_time)]
    end: Option<f64>,
}

impl VideoArgs {
    fn options(&self) -> VideoOptions {
        VideoOptions {
            fps: self.fps,
            max_frames: self.max_frames,
            start: self.start,
            end: self.end,
        }
    }
}

/// Seconds from `80`, `80.5`, `1:20`, `1:20.5` or `0:01:20`.
fn parse_time(s: &str) -> std::result::Result<f64, String> {
    let bad = || format!("`{s}` is not a time: use seconds (80.5) or a clock (1:20.5, 0:01:20)");
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() > 3 {
        return Err(bad());
    }
    let mut total = 0.0;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let v: f64 = p.parse().map_err(|_| bad())?;
        let whole_field = last || !p.contains('.');
        if !v.is_finite() || v < 0.0 || !whole_field || (i > 0 && v >= 60.0) {
            return Err(bad());
        }
        total = total * 60.0 + v;
    }
    Ok(total)
}

#[derive(clap::Args)]
struct VideoPlanArgs {
    /// The checkpoint whose video processor settings apply (folder or Hub id in the HF cache).
    #[arg(long)]
    model: String,
    /// The video file.
    video: PathBuf,
    #[command(flatten)]
    video_options: VideoArgs,
    /// Also decode and process the sampled frames; adds `extract_ms` to the JSON.
    #[arg(long)]
    extract: bool,
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
        Command::VideoPlan(args) => video_plan(*args),
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
    let video_options = args.video_options.options();
    content.extend(args.videos.iter().map(|p| {
        Content::Video(VideoInput::File {
            path: p.clone(),
            options: video_options.clone(),
        })
    }));
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
    // The wait before the first token, on one self-erasing stderr line when a person watches.
    let show_progress = stream && std::io::stderr().is_terminal();
    let mut on_progress = |p: PrefillProgress| {
        if !show_progress {
            return;
        }
        let what = match p.stage {
            PrefillStage::Images => "reading the image",
            PrefillStage::Videos => "reading the video",
            PrefillStage::Prompt => "reading the prompt",
        };
        eprint!("\r\x1b[K{what} {}/{}", p.done, p.total);
        if p.stage == PrefillStage::Prompt && p.done == p.total {
            eprint!("\r\x1b[K");
        }
    };
    let stats =
        engine.generate_with(&prepared, &params, &cancel, &mut on_progress, &mut on_event)?;
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

fn video_plan(args: VideoPlanArgs) -> Result<()> {
    let dir = model_dir::resolve(&args.model)?;
    let processor = Processor::from_dir(&dir)?;
    let options = args.video_options.options();
    let plan = processor.plan_video(&args.video, &options)?;
    let mut out = serde_json::to_value(&plan)?;
    if args.extract {
        let input = VideoInput::File {
            path: args.video.clone(),
            options,
        };
        let t0 = std::time::Instant::now();
        let video = processor.process_video_with(&input, &PrepareHooks::default())?;
        out["extract_ms"] = serde_json::json!(t0.elapsed().as_secs_f64() * 1e3);
        out["pixel_values_len"] = serde_json::json!(video.pixel_values.len());
    }
    println!("{out}");
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

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_in_seconds_and_clocks() {
        assert_eq!(parse_time("80"), Ok(80.0));
        assert_eq!(parse_time("80.5"), Ok(80.5));
        assert_eq!(parse_time("1:20"), Ok(80.0));
        assert_eq!(parse_time("1:20.5"), Ok(80.5));
        assert_eq!(parse_time("0:01:20"), Ok(80.0));
        assert_eq!(parse_time("2:00:00"), Ok(7200.0));
        for bad in ["", "abc", "-3", "1:75", "1.5:20", "1:2:3:4", "nan", "inf"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
