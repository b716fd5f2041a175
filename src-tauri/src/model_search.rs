//! Where Glimpse looks for models, and what it finds there.
//!
//! Two kinds of folder are searched:
//! * the app's own `models/` folder (in the per-user data dir): each subfolder is one model, as
//!   the model manager will download it;
//! * the Hugging Face hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//!   `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`, the same order as
//!   `huggingface_hub`), where `models--<org>--<name>/snapshots/<rev>/` holds a checkpoint.
//!
//! A folder counts as a model when its `config.json` says `qwen3_vl` or `qwen3_vl_moe`, and it is
//! usable when the engine's validated [`Config`] accepts it. Other checkpoints in the hub cache
//! are none of Glimpse's business and are skipped silently; anything in the app's own folder that
//! is not usable is reported, because someone put it there for Glimpse.

use std::path::{Path, PathBuf};

use glimpse_models::qwen3_vl::{Architecture, Config};
use serde::Serialize;

use crate::error::{AppError, Result};

/// The `model_type`s Glimpse runs.
const MODEL_TYPES: [&str; 2] = ["qwen3_vl", "qwen3_vl_moe"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LocationKind {
    /// The app's own `models/` folder.
    AppData,
    /// A Hugging Face hub cache.
    HuggingFaceCache,
    /// A folder the user added in the model manager: the folder itself is one model.
    UserFolder,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchLocation {
    pub kind: LocationKind,
    pub path: PathBuf,
    pub exists: bool,
}

impl SearchLocation {
    pub fn new(kind: LocationKind, path: PathBuf) -> Self {
        let exists = path.is_dir();
        Self { kind, path, exists }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ModelArchitecture {
    Dense,
    Moe,
}

impl From<Architecture> for ModelArchitecture {
    fn from(a: Architecture) -> Self {
        match a {
            Architecture::Dense => Self::Dense,
            Architecture::Moe => Self::Moe,
        }
    }
}

/// A Qwen3-VL checkpoint the engine accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundModel {
    /// Folder name in the app's folder, `org/name` in the hub cache.
    pub name: String,
    pub path: PathBuf,
    pub location: LocationKind,
    pub architecture: ModelArchitecture,
}

/// A folder that looks like it should be a model but cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnusableModel {
    pub name: String,
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub models: Vec<FoundModel>,
    pub unusable: Vec<UnusableModel>,
}

/// The hub cache folder, resolved like `huggingface_hub` does (shared with the engine and CLI).
pub use glimpse_models::hub::hf_hub_cache;

/// Searches every location; a location that does not exist yet simply holds nothing.
pub fn search(locations: &[SearchLocation]) -> Result<SearchResult> {
    let mut out = SearchResult::default();
    for loc in locations {
        match loc.kind {
            LocationKind::AppData => search_app_dir(&loc.path, &mut out)?,
            LocationKind::HuggingFaceCache => search_hub_cache(&loc.path, &mut out)?,
            LocationKind::UserFolder => search_user_folder(&loc.path, &mut out),
        }
    }
    out.models.sort_by(|a, b| a.name.cmp(&b.name));
    out.unusable.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn search_app_dir(root: &Path, out: &mut SearchResult) -> Result<()> {
    for (name, dir) in subfolders(root)? {
        match inspect(&dir) {
            Candidate::Usable(architecture) => out.models.push(FoundModel {
                name,
                path: dir,
                location: LocationKind::AppData,
                architecture,
            }),
            Candidate::Unusable(reason) | Candidate::NotQwen3Vl(reason) => {
                out.unusable.push(UnusableModel {
                    name,
                    path: dir,
                    reason,
                })
            }
        }
    }
    Ok(())
}

fn search_hub_cache(root: &Path, out: &mut SearchResult) -> Result<()> {
    for (folder, repo_dir) in subfolders(root)? {
        let Some(repo) = folder.strip_prefix("models--") else {
            continue; // datasets--*, spaces--*, .locks
        };
        let name = repo.replacen("--", "/", 1);
        let Some(dir) = hub_snapshot(&repo_dir)? else {
            continue;
        };
        match inspect(&dir) {
            Candidate::Usable(architecture) => out.models.push(FoundModel {
                name,
                path: dir,
                location: LocationKind::HuggingFaceCache,
                architecture,
            }),
            Candidate::Unusable(reason) => out.unusable.push(UnusableModel {
                name,
                path: dir,
                reason,
            }),
            Candidate::NotQwen3Vl(_) => {}
        }
    }
    Ok(())
}

/// An added folder is reported whatever it holds: the user pointed Glimpse at it.
fn search_user_folder(dir: &Path, out: &mut SearchResult) {
    let name = dir.display().to_string();
    match inspect(dir) {
        Candidate::Usable(architecture) => out.models.push(FoundModel {
            name,
            path: dir.to_path_buf(),
            location: LocationKind::UserFolder,
            architecture,
        }),
        Candidate::Unusable(reason) | Candidate::NotQwen3Vl(reason) => {
            out.unusable.push(UnusableModel {
                name,
                path: dir.to_path_buf(),
                reason,
            })
        }
    }
}

/// The snapshot `refs/main` points at, else the first snapshot (by name) with a config.json.
fn hub_snapshot(repo_dir: &Path) -> Result<Option<PathBuf>> {
    let snapshots = repo_dir.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo_dir.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if dir.join("config.json").is_file() {
            return Ok(Some(dir));
        }
    }
    Ok(subfolders(&snapshots)?
        .into_iter()
        .map(|(_, dir)| dir)
        .find(|dir| dir.join("config.json").is_file()))
}

/// Subfolders of `root` sorted by name; nothing if `root` does not exist.
fn subfolders(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let unreadable = |source| AppError::UnreadableFolder {
        path: root.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unreadable(e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        // Follows symlinks on purpose: hub snapshots are folders of links into blobs/.
        if path.is_dir() {
            dirs.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    dirs.sort();
    Ok(dirs)
}

enum Candidate {
    Usable(ModelArchitecture),
    /// A Qwen3-VL config the engine rejects.
    Unusable(String),
    /// No config, an unreadable one, or another architecture.
    NotQwen3Vl(String),
}

fn inspect(dir: &Path) -> Candidate {
    let path = dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return Candidate::NotQwen3Vl(format!("cannot read config.json: {e}")),
    };
    let model_type = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("model_type")?.as_str().map(str::to_owned));
    match model_type {
        Some(t) if MODEL_TYPES.contains(&t.as_str()) => match Config::from_dir(dir) {
            Ok(cfg) => Candidate::Usable(cfg.architecture.into()),
            Err(e) => Candidate::Unusable(e.to_string()),
        },
        Some(t) => Candidate::NotQwen3Vl(format!(
            "config.json says model_type `{t}`; Glimpse runs qwen3_vl and qwen3_vl_moe"
        )),
        None => Candidate::NotQwen3Vl("config.json has no readable `model_type`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small but valid dense Qwen3-VL config (odd sizes, non-Qwen token ids).
    fn dense_config() -> serde_json::Value {
        serde_json::json!({
            "architectures": ["Qwen3VLForConditionalGeneration"],
            "model_type": "qwen3_vl",
            "image_token_id": 7, "video_token_id": 8,
            "vision_start_token_id": 5, "vision_end_token_id": 6,
            "tie_word_embeddings": true,
            "text_config": {
                "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "head_dim": 24, "rms_norm_eps": 1e-6, "rope_theta": 5000000.0,
                "rope_scaling": {"rope_type": "default", "mrope_section": [4, 4, 4], "mrope_interleaved": true}
            },
            "vision_config": {
                "model_type": "qwen3_vl", "depth": 2, "hidden_size": 32, "intermediate_size": 48,
                "num_heads": 2, "in_channels": 3, "patch_size": 16, "temporal_patch_size": 2,
                "spatial_merge_size": 2, "out_hidden_size": 64, "num_position_embeddings": 64,
                "deepstack_visual_indexes": [0], "hidden_act": "gelu_pytorch_tanh"
            }
        })
    }

    fn write_config(dir: &Path, json: &serde_json::Value) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    }

    fn locations(app: &Path, hub: &Path) -> Vec<SearchLocation> {
        vec![
            SearchLocation::new(LocationKind::AppData, app.to_path_buf()),
            SearchLocation::new(LocationKind::HuggingFaceCache, hub.to_path_buf()),
        ]
    }

    #[test]
    fn missing_folders_hold_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let locs = locations(&tmp.path().join("models"), &tmp.path().join("hub"));
        assert!(locs.iter().all(|l| !l.exists));
        assert_eq!(search(&locs).unwrap(), SearchResult::default());
    }

    #[test]
    fn finds_models_in_both_locations() {
        let tmp = tempfile::tempdir().unwrap();
        let (app, hub) = (tmp.path().join("models"), tmp.path().join("hub"));
        write_config(&app.join("my-dense"), &dense_config());

        // A hub repo whose refs/main names the second of two snapshots.
        let repo = hub.join("models--Qwen--Qwen3-VL-2B-Instruct");
        let mut old = dense_config();
        old["model_type"] = "llava".into();
        write_config(&repo.join("snapshots/aaa"), &old);
        write_config(&repo.join("snapshots/bbb"), &dense_config());
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "bbb\n").unwrap();

        let found = search(&locations(&app, &hub)).unwrap();
        let names: Vec<_> = found.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["Qwen/Qwen3-VL-2B-Instruct", "my-dense"]);
        assert_eq!(found.models[0].path, repo.join("snapshots/bbb"));
        assert_eq!(found.models[0].location, LocationKind::HuggingFaceCache);
        assert_eq!(found.models[1].architecture, ModelArchitecture::Dense);
        assert!(found.unusable.is_empty());
    }

    #[test]
    fn other_hub_models_are_skipped_but_own_folder_reports_problems() {
        let tmp = tempfile::tempdir().unwrap();
        let (app, hub) = (tmp.path().join("models"), tmp.path().join("hub"));
        let mut llava = dense_config();
        llava["model_type"] = "llava".into();
        write_config(&hub.join("models--x--llava/snapshots/r1"), &llava);
        write_config(&app.join("not-ours"), &llava);
        let mut broken = dense_config();
        broken["text_config"]["rope_scaling"]["mrope_section"] = serde_json::json!([4, 4, 5]);
        write_config(&hub.join("models--x--broken/snapshots/r1"), &broken);
        std::fs::create_dir_all(app.join("empty")).unwrap();

        let found = search(&locations(&app, &hub)).unwrap();
        assert!(found.models.is_empty());
        let unusable: Vec<_> = found
            .unusable
            .iter()
            .map(|u| (u.name.as_str(), u.reason.as_str()))
            .collect();
        assert_eq!(unusable.len(), 3, "{unusable:?}");
        assert_eq!(unusable[0].0, "empty");
        assert!(unusable[0].1.contains("config.json"), "{unusable:?}");
        assert_eq!(unusable[1].0, "not-ours");
        assert!(unusable[1].1.contains("llava"), "{unusable:?}");
        assert_eq!(unusable[2].0, "x/broken");
        assert!(unusable[2].1.contains("mrope_section"), "{unusable:?}");
    }

    #[test]
    fn hub_cache_follows_huggingface_hub_order() {
        let home = Path::new("/home/u");
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let hub = |pairs| hf_hub_cache(env(pairs), Some(home)).unwrap();
        assert_eq!(hub(&[]), Path::new("/home/u/.cache/huggingface/hub"));
        assert_eq!(
            hub(&[("XDG_CACHE_HOME", "/x")]),
            Path::new("/x/huggingface/hub")
        );
        assert_eq!(
            hub(&[("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x")]),
            Path::new("/h/hub")
        );
        assert_eq!(
            hub(&[("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h")]),
            Path::new("/c")
        );
        assert_eq!(
            hub(&[("HF_HOME", "")]),
            Path::new("/home/u/.cache/huggingface/hub")
        );
        assert_eq!(hf_hub_cache(env(&[]), None), None);
    }
}
