//! Where the Hub is, where its cache lives, and what a repository holds.
//!
//! The cache layout is `huggingface_hub`'s (and `hf-hub`'s), so Python tools and Glimpse share
//! downloads:
//!
//! ```text
//! <cache>/models--<org>--<name>/
//!     blobs/<etag>                  content, named by its ETag (sha256 for LFS files, git sha1 else)
//!     blobs/<etag>.incomplete       a transfer in progress; resumed with an HTTP Range request
//!     snapshots/<commit>/<file>  -> ../../blobs/<etag>
//!     refs/<branch>                 the commit the branch pointed at when downloaded
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model_search::hf_hub_cache;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Everything needed to talk to a Hub and store what it sends. Built explicitly (see
/// [`HubConfig::from_env`]) so nothing deeper down reads the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Base URL without a trailing slash, e.g. `https://huggingface.co` or a test server.
    pub endpoint: String,
    /// The hub cache folder (`.../huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Bearer token for gated/private repositories.
    pub token: Option<String>,
}

impl HubConfig {
    /// Resolves endpoint, cache and token the way `huggingface_hub` does:
    /// `HF_ENDPOINT`; `HF_HUB_CACHE` / `HF_HOME/hub` / `XDG_CACHE_HOME` / `~/.cache`;
    /// `HF_TOKEN`, else the file at `HF_TOKEN_PATH`, `$HF_HOME/token` or
    /// `~/.cache/huggingface/token`. `None` when no cache folder can be named (no home).
    pub fn from_env(env: impl Fn(&str) -> Option<String>, home: Option<&Path>) -> Option<Self> {
        let set = |key: &str| env(key).filter(|v| !v.trim().is_empty());
        let cache_dir = hf_hub_cache(&env, home)?;
        let endpoint = set("HF_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim_end_matches('/')
            .to_string();
        let token_file = set("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| {
            let hf_home = set("HF_HOME").map(PathBuf::from).or_else(|| {
                let cache = set("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| home.map(|h| h.join(".cache")))?;
                Some(cache.join("huggingface"))
            })?;
            Some(hf_home.join("token"))
        });
        let token = set("HF_TOKEN").map(|t| t.trim().to_string()).or_else(|| {
            let text = std::fs::read_to_string(token_file?).ok()?;
            Some(text.trim().to_string()).filter(|t| !t.is_empty())
        });
        Some(Self {
            endpoint,
            cache_dir,
            token,
        })
    }

    /// `models--org--name` under the cache.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.cache_dir
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    pub(crate) fn listing_url(&self, repo: &str, revision: &str) -> String {
        format!(
            "{}/api/models/{repo}/revision/{}?blobs=true",
            self.endpoint,
            encode_segment(revision)
        )
    }

    pub(crate) fn resolve_url(&self, repo: &str, commit: &str, file: &str) -> String {
        format!("{}/{repo}/resolve/{commit}/{file}", self.endpoint)
    }
}

/// Revisions can be branch names with `/` (`refs/pr/1`); the API wants them percent-encoded.
fn encode_segment(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

/// One file of a repository as the Hub's listing (`?blobs=true`) describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Sibling {
    pub rfilename: String,
    pub size: Option<u64>,
    /// Git blob id: the cache's blob name (and ETag) for files not stored in LFS.
    #[serde(rename = "blobId")]
    pub blob_id: Option<String>,
    pub lfs: Option<LfsInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LfsInfo {
    pub sha256: String,
    pub size: u64,
}

/// `GET /api/models/{repo}/revision/{rev}?blobs=true`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepoListing {
    /// The commit the revision resolves to.
    pub sha: String,
    pub siblings: Vec<Sibling>,
}

/// The files of a Qwen3-VL repository Glimpse needs; everything else (README, images, GGUFs in
/// subfolders, `.gitattributes`) is skipped. Only top-level files count.
pub fn is_needed_file(name: &str) -> bool {
    const EXACT: [&str; 11] = [
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "video_preprocessor_config.json",
        "processor_config.json",
        "chat_template.json",
        "chat_template.jinja",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors.index.json",
        "model.safetensors",
    ];
    if name.contains('/') {
        return false;
    }
    EXACT.contains(&name) || (name.starts_with("model-") && name.ends_with(".safetensors"))
}

/// What the download of one file is: where it goes and how it is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedFile {
    pub name: String,
    pub size: u64,
    /// The blob name in the cache (the Hub's ETag).
    pub etag: String,
    /// For LFS files, the content's sha256 (lowercase hex), verified after the transfer.
    pub sha256: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn config_follows_huggingface_hub_conventions() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path();
        let cfg = HubConfig::from_env(env(&[]), Some(home)).unwrap();
        assert_eq!(cfg.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(cfg.cache_dir, home.join(".cache/huggingface/hub"));
        assert_eq!(cfg.token, None);

        std::fs::create_dir_all(home.join(".cache/huggingface")).unwrap();
        std::fs::write(home.join(".cache/huggingface/token"), "hf_file\n").unwrap();
        let cfg = HubConfig::from_env(env(&[("HF_ENDPOINT", "http://127.0.0.1:9/")]), Some(home))
            .unwrap();
        assert_eq!(cfg.endpoint, "http://127.0.0.1:9");
        assert_eq!(cfg.token.as_deref(), Some("hf_file"));

        let cfg = HubConfig::from_env(env(&[("HF_TOKEN", "hf_env")]), Some(home)).unwrap();
        assert_eq!(cfg.token.as_deref(), Some("hf_env"));

        let hf_home = home.join("hfh");
        std::fs::create_dir_all(&hf_home).unwrap();
        std::fs::write(hf_home.join("token"), "hf_home_token").unwrap();
        let hf_home_s = hf_home.to_str().unwrap();
        let cfg = HubConfig::from_env(env(&[("HF_HOME", hf_home_s)]), Some(home)).unwrap();
        assert_eq!(cfg.token.as_deref(), Some("hf_home_token"));
        assert_eq!(cfg.cache_dir, hf_home.join("hub"));
        assert_eq!(
            cfg.repo_dir("Qwen/Qwen3-VL-2B-Instruct"),
            hf_home.join("hub/models--Qwen--Qwen3-VL-2B-Instruct")
        );
    }

    #[test]
    fn only_checkpoint_files_are_needed() {
        for f in [
            "config.json",
            "model.safetensors",
            "model-00001-of-00004.safetensors",
            "model.safetensors.index.json",
            "chat_template.jinja",
            "video_preprocessor_config.json",
        ] {
            assert!(is_needed_file(f), "{f}");
        }
        for f in [
            "README.md",
            ".gitattributes",
            "onnx/model.safetensors",
            "consolidated.safetensors",
            "model.gguf",
        ] {
            assert!(!is_needed_file(f), "{f}");
        }
    }

    #[test]
    fn listing_parses_the_hub_shape() {
        let json = r#"{"id":"Qwen/x","sha":"abc123","siblings":[
            {"rfilename":"config.json","size":12,"blobId":"0123"},
            {"rfilename":"model.safetensors","size":99,"blobId":"4567",
             "lfs":{"sha256":"ff00","size":99,"pointerSize":134}}]}"#;
        let listing: RepoListing = serde_json::from_str(json).unwrap();
        assert_eq!(listing.sha, "abc123");
        assert_eq!(listing.siblings[1].lfs.as_ref().unwrap().sha256, "ff00");
        let cfg = HubConfig {
            endpoint: "http://h".into(),
            cache_dir: "/c".into(),
            token: None,
        };
        assert_eq!(
            cfg.listing_url("Qwen/x", "refs/pr/1"),
            "http://h/api/models/Qwen/x/revision/refs%2Fpr%2F1?blobs=true"
        );
    }
}
