//! `--model` is a folder or a Hub id resolved from the local Hugging Face cache (no network).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use glimpse_models::hub;

pub fn resolve(model: &str) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let looks_like_id = model.split('/').count() == 2 && !model.starts_with(['.', '/']);
    if !looks_like_id {
        bail!("model folder {model} does not exist");
    }
    let cache = hub::default_hub_cache()
        .context("no HOME, HF_HOME or HF_HUB_CACHE to find the Hugging Face cache")?;
    Ok(hub::snapshot_dir(&cache, model)?)
}
