//! `glimpse`: the engine without a window, for scripts, checks and benchmarks.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    /// Check that a model folder holds a usable Qwen3-VL checkpoint and print its shape.
    Inspect {
        #[arg(long)]
        model: PathBuf,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { model } => {
            let cfg = glimpse_models::qwen3_vl::Config::from_dir(&model)?;
            println!("{cfg:#?}");
            Ok(())
        }
    }
}
