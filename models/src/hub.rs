//! The local Hugging Face cache, found and read as `huggingface_hub` does, so Glimpse shares
//! downloads with other tools. Nothing here touches the network.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. `env` is passed in (rather
/// than read here) so the order can be tested without touching the process environment.
pub fn hf_hub_cache(env: impl Fn(&str) -> Option<String>, home: Option<&Path>) -> Option<PathBuf> {
    let set = |key: &str| env(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("HF_HUB_CACHE") {
        return Some(dir);
    }
    if let Some(dir) = set("HF_HOME") {
        return Some(dir.join("hub"));
    }
    let cache = set("XDG_CACHE_HOME").or_else(|| home.map(|h| h.join(".cache")))?;
    Some(cache.join("huggingface").join("hub"))
}

/// [`hf_hub_cache`] for this process's environment.
pub fn default_hub_cache() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    hf_hub_cache(|k| std::env::var(k).ok(), home.as_deref())
}

/// The snapshot folder of `id` (`org/name`) in `cache`: `models--org--name/snapshots/<rev>`,
/// where `<rev>` is `refs/main`, else the only snapshot there is.
pub fn snapshot_dir(cache: &Path, id: &str) -> Result<PathBuf> {
    let missing = |reason: String| Error::MissingFile {
        path: cache.join(repo_folder(id)),
        reason,
    };
    let repo = cache.join(repo_folder(id));
    if !repo.is_dir() {
        return Err(missing(format!(
            "{id} is not in the Hugging Face cache; download it first"
        )));
    }
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs/main")) {
        let dir = snapshots.join(rev.trim());
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    let mut revs: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .map_err(|e| missing(format!("cannot read its snapshots: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    match revs.len() {
        1 => Ok(revs.remove(0)),
        0 => Err(missing(format!("{id} has no snapshot"))),
        n => Err(missing(format!(
            "{id} has {n} snapshots and no refs/main to choose one"
        ))),
    }
}

fn repo_folder(id: &str) -> String {
    format!("models--{}", id.replace('/', "--"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_follows_huggingface_hub_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let home = Path::new("/home/u");
        assert_eq!(
            hf_hub_cache(env(&[]), Some(home)),
            Some(PathBuf::from("/home/u/.cache/huggingface/hub"))
        );
        assert_eq!(
            hf_hub_cache(env(&[("XDG_CACHE_HOME", "/x")]), Some(home)),
            Some(PathBuf::from("/x/huggingface/hub"))
        );
        assert_eq!(
            hf_hub_cache(
                env(&[("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x")]),
                Some(home)
            ),
            Some(PathBuf::from("/h/hub"))
        );
        assert_eq!(
            hf_hub_cache(env(&[("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h")]), None),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(hf_hub_cache(env(&[]), None), None);
    }

    #[test]
    fn resolves_refs_main_then_single_snapshot() {
        let tmp = std::env::temp_dir().join(format!("glimpse-hf-{}", std::process::id()));
        let repo = tmp.join("models--Qwen--Tiny");
        std::fs::create_dir_all(repo.join("snapshots/abc")).unwrap();
        assert_eq!(
            snapshot_dir(&tmp, "Qwen/Tiny").unwrap(),
            repo.join("snapshots/abc")
        );
        std::fs::create_dir_all(repo.join("snapshots/def")).unwrap();
        assert!(snapshot_dir(&tmp, "Qwen/Tiny")
            .unwrap_err()
            .to_string()
            .contains("2 snapshots"));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "def\n").unwrap();
        assert_eq!(
            snapshot_dir(&tmp, "Qwen/Tiny").unwrap(),
            repo.join("snapshots/def")
        );
        assert!(snapshot_dir(&tmp, "Qwen/Other")
            .unwrap_err()
            .to_string()
            .contains("download"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
