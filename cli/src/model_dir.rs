//! `--model` is a folder or a Hub id resolved from the local Hugging Face cache (no network).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The cache root as huggingface_hub computes it: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`.
pub fn hf_cache_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

pub fn resolve(model: &str) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let looks_like_id =
        model.split('/').count() == 2 && !model.starts_with('.') && !model.starts_with('/');
    if !looks_like_id {
        bail!("model folder {model} does not exist");
    }
    let cache = hf_cache_dir().context("no HOME or HF_HOME to find the Hugging Face cache")?;
    resolve_in_cache(&cache, model)
}

/// `models--{org}--{name}/snapshots/<rev>` where `<rev>` is `refs/main`, else the only snapshot.
pub fn resolve_in_cache(cache: &Path, id: &str) -> Result<PathBuf> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    if !repo.is_dir() {
        bail!(
            "{id} is neither a folder nor in the Hugging Face cache ({}); download it first",
            cache.display()
        );
    }
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs/main")) {
        let dir = snapshots.join(rev.trim());
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    let mut revs: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .with_context(|| format!("reading {}", snapshots.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    match revs.len() {
        1 => Ok(revs.remove(0)),
        0 => bail!("{id} has no snapshot in {}", snapshots.display()),
        n => bail!(
            "{id} has {n} snapshots in {} and no refs/main to choose one",
            snapshots.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_refs_main_then_single_snapshot() {
        let tmp = std::env::temp_dir().join(format!("glimpse-hf-{}", std::process::id()));
        let repo = tmp.join("models--Qwen--Tiny");
        std::fs::create_dir_all(repo.join("snapshots/abc")).unwrap();
        assert_eq!(
            resolve_in_cache(&tmp, "Qwen/Tiny").unwrap(),
            repo.join("snapshots/abc")
        );
        std::fs::create_dir_all(repo.join("snapshots/def")).unwrap();
        assert!(resolve_in_cache(&tmp, "Qwen/Tiny")
            .unwrap_err()
            .to_string()
            .contains("2 snapshots"));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "def\n").unwrap();
        assert_eq!(
            resolve_in_cache(&tmp, "Qwen/Tiny").unwrap(),
            repo.join("snapshots/def")
        );
        assert!(resolve_in_cache(&tmp, "Qwen/Other")
            .unwrap_err()
            .to_string()
            .contains("download"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
