//! The models on this computer as the manager lists them: the app's folder and the Hugging Face
//! cache (via [`crate::model_search`]), plus folders the user added, each validated; and the
//! downloads that stopped part-way, offered for resuming.
//!
//! The user's folders are kept in a small JSON file in the app's data folder, replaced atomically
//! (written beside it, then renamed) so a crash mid-write never loses the list.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::validate::{validate, Validation};
use crate::error::{AppError, Result};
use crate::model_search::{self, LocationKind, SearchLocation};

/// Where a listed model lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    AppData,
    HuggingFaceCache,
    UserFolder,
}

impl From<LocationKind> for Source {
    fn from(k: LocationKind) -> Self {
        match k {
            LocationKind::AppData => Self::AppData,
            LocationKind::HuggingFaceCache => Self::HuggingFaceCache,
            LocationKind::UserFolder => Self::UserFolder,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalModel {
    /// Folder name, `org/name` for the hub cache, the full path for a user's folder.
    pub name: String,
    pub path: PathBuf,
    pub source: Source,
    pub validation: Validation,
}

/// A download that stopped part-way; its `.incomplete` blobs are resumed by downloading again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialDownload {
    pub repo: String,
    pub kept_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalModels {
    pub locations: Vec<SearchLocation>,
    pub models: Vec<LocalModel>,
    pub partial_downloads: Vec<PartialDownload>,
}

/// Everything local (`locations` includes the user's folders), validated. A hub repository with
/// a download in progress or stopped is listed under `partial_downloads` only: its snapshot is
/// incomplete by design.
pub fn list_local(locations: &[SearchLocation]) -> Result<LocalModels> {
    let mut partial_downloads = Vec::new();
    for loc in locations
        .iter()
        .filter(|l| l.kind == LocationKind::HuggingFaceCache)
    {
        partial_downloads.extend(partial_downloads_in(&loc.path)?);
    }
    let unfinished = |name: &str| partial_downloads.iter().any(|p| p.repo == name);

    let found = model_search::search(locations)?;
    let source_of = |path: &Path| {
        locations
            .iter()
            .find(|l| l.path == path)
            .or_else(|| locations.iter().find(|l| path.starts_with(&l.path)))
            .map_or(Source::AppData, |l| l.kind.into())
    };
    let mut models = Vec::new();
    for m in found.models {
        if m.location == LocationKind::HuggingFaceCache && unfinished(&m.name) {
            continue;
        }
        let validation = validate(&m.path);
        models.push(LocalModel {
            name: m.name,
            source: m.location.into(),
            validation,
            path: m.path,
        });
    }
    for u in found.unusable {
        let source = source_of(&u.path);
        if source == Source::HuggingFaceCache && unfinished(&u.name) {
            continue;
        }
        models.push(LocalModel {
            name: u.name,
            source,
            validation: Validation::Unusable { reason: u.reason },
            path: u.path,
        });
    }
    Ok(LocalModels {
        locations: locations.to_vec(),
        models,
        partial_downloads,
    })
}

/// How a model folder is named in the UI and the history: `org/name` for a Hugging Face cache
/// snapshot (`models--org--name/snapshots/<commit>`), else the folder's own name.
pub fn display_name(dir: &Path) -> String {
    let hub_repo = || {
        let parent = dir.parent()?;
        if parent.file_name()? != "snapshots" {
            return None;
        }
        let repo = parent
            .parent()?
            .file_name()?
            .to_str()?
            .strip_prefix("models--")?;
        Some(repo.replacen("--", "/", 1))
    };
    hub_repo()
        .or_else(|| Some(dir.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}

/// Repositories under a hub cache with `.incomplete` blobs, and how many bytes those hold.
pub fn partial_downloads_in(cache: &Path) -> Result<Vec<PartialDownload>> {
    let unreadable = |source| AppError::UnreadableFolder {
        path: cache.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(cache) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unreadable(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(unreadable)?;
        let folder = entry.file_name().to_string_lossy().into_owned();
        let Some(repo) = folder.strip_prefix("models--") else {
            continue;
        };
        let Ok(blobs) = std::fs::read_dir(entry.path().join("blobs")) else {
            continue;
        };
        let kept: Vec<u64> = blobs
            .filter_map(|b| b.ok())
            .filter(|b| b.path().extension().is_some_and(|e| e == "incomplete"))
            .map(|b| b.metadata().map_or(0, |m| m.len()))
            .collect();
        if !kept.is_empty() {
            out.push(PartialDownload {
                repo: repo.replacen("--", "/", 1),
                kept_bytes: kept.iter().sum(),
            });
        }
    }
    out.sort_by(|a, b| a.repo.cmp(&b.repo));
    Ok(out)
}

/// The folders the user added, in the order added.
pub struct UserFolders {
    file: PathBuf,
}

#[derive(Serialize, Deserialize, Default)]
struct Stored {
    folders: Vec<PathBuf>,
}

impl UserFolders {
    /// Kept in `file` (a JSON file; missing means none yet).
    pub fn new(file: PathBuf) -> Self {
        Self { file }
    }

    pub fn list(&self) -> Result<Vec<PathBuf>> {
        match std::fs::read(&self.file) {
            Ok(bytes) => Ok(serde_json::from_slice::<Stored>(&bytes)
                .map_err(|source| AppError::StoredJson {
                    what: "the list of added model folders",
                    source,
                })?
                .folders),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(AppError::SettingsIo {
                path: self.file.clone(),
                source,
            }),
        }
    }

    /// Adds an existing folder (absolute, normalised); adding it twice keeps one entry.
    pub fn add(&self, folder: &Path) -> Result<PathBuf> {
        let folder = std::fs::canonicalize(folder)
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| AppError::FolderNotFound(folder.to_path_buf()))?;
        let mut folders = self.list()?;
        if !folders.contains(&folder) {
            folders.push(folder.clone());
            self.save(&folders)?;
        }
        Ok(folder)
    }

    /// Forgets a folder (its files are untouched). Returns whether it was in the list.
    pub fn remove(&self, folder: &Path) -> Result<bool> {
        let mut folders = self.list()?;
        let before = folders.len();
        folders.retain(|f| f != folder);
        if folders.len() == before {
            return Ok(false);
        }
        self.save(&folders)?;
        Ok(true)
    }

    fn save(&self, folders: &[PathBuf]) -> Result<()> {
        let io = |source| AppError::SettingsIo {
            path: self.file.clone(),
            source,
        };
        if let Some(parent) = self.file.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let json = serde_json::to_vec_pretty(&Stored {
            folders: folders.to_vec(),
        })
        .map_err(|source| AppError::StoredJson {
            what: "the list of added model folders",
            source,
        })?;
        let tmp = self.file.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, &self.file).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models")
            .join(name)
    }

    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    #[test]
    fn hub_snapshots_are_named_by_their_repository() {
        let hub = Path::new("/c/hub/models--Qwen--Qwen3-VL-4B-Instruct/snapshots/5b1e0c");
        assert_eq!(display_name(hub), "Qwen/Qwen3-VL-4B-Instruct");
        assert_eq!(display_name(Path::new("/m/my-tiny-vl")), "my-tiny-vl");
        assert_eq!(display_name(Path::new("/x/snapshots/abc")), "abc");
        assert_eq!(display_name(Path::new("/")), "/");
    }

    #[test]
    fn user_folders_persist_dedupe_and_reject_missing_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("data/model-folders.json");
        let folders = UserFolders::new(file.clone());
        assert!(folders.list().unwrap().is_empty());
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let added = folders.add(&a.join("../a")).unwrap();
        assert_eq!(added, std::fs::canonicalize(&a).unwrap());
        folders.add(&a).unwrap();
        // A second handle on the same file (as after a restart) sees one entry.
        assert_eq!(
            UserFolders::new(file.clone()).list().unwrap(),
            vec![added.clone()]
        );
        assert!(!file.with_extension("json.tmp").exists());

        let err = folders.add(&tmp.path().join("nope")).unwrap_err();
        assert_eq!(err.kind(), "folderNotFound");
        assert!(err.to_string().contains("nope"), "{err}");

        assert!(folders.remove(&added).unwrap());
        assert!(!folders.remove(&added).unwrap());
        assert!(folders.list().unwrap().is_empty());

        std::fs::write(&file, "{not json").unwrap();
        assert_eq!(folders.list().unwrap_err().kind(), "storedJson");
    }

    #[test]
    fn lists_every_source_validated_and_unfinished_downloads_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app/models");
        let hub = tmp.path().join("hub");
        copy(&fixture("grounding"), &app.join("grounding"));
        // An app-folder model with a truncated weights file: listed, with the reason.
        let broken = app.join("broken");
        copy(&fixture("grounding"), &broken);
        let w = broken.join("model.safetensors");
        let len = std::fs::metadata(&w).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&w)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        // A complete hub download and one stopped part-way.
        let done = hub.join("models--Qwen--Done/snapshots/c1");
        copy(&fixture("dense-v5"), &done);
        let part = hub.join("models--Qwen--Half");
        copy(&fixture("dense-v5"), &part.join("snapshots/c2"));
        std::fs::remove_file(part.join("snapshots/c2/model.safetensors")).unwrap();
        std::fs::create_dir_all(part.join("blobs")).unwrap();
        std::fs::write(part.join("blobs/abc.incomplete"), vec![0u8; 1234]).unwrap();
        // A user folder outside both, and one that is not a model.
        let mine = tmp.path().join("mine");
        copy(&fixture("grounding"), &mine);
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();

        let locations = [
            SearchLocation::new(LocationKind::AppData, app.clone()),
            SearchLocation::new(LocationKind::HuggingFaceCache, hub.clone()),
            SearchLocation::new(LocationKind::UserFolder, mine.clone()),
            SearchLocation::new(LocationKind::UserFolder, empty.clone()),
        ];
        let local = list_local(&locations).unwrap();
        let by_name = |n: &str| local.models.iter().find(|m| m.name == n);
        let ok = |n: &str| by_name(n).unwrap().validation.is_usable();
        assert!(ok("grounding"));
        assert!(ok("Qwen/Done"));
        assert_eq!(
            by_name("Qwen/Done").unwrap().source,
            Source::HuggingFaceCache
        );
        assert!(ok(&mine.display().to_string()));
        assert_eq!(
            by_name(&mine.display().to_string()).unwrap().source,
            Source::UserFolder
        );
        match &by_name("broken").unwrap().validation {
            Validation::Unusable { reason } => {
                assert!(reason.contains("model.safetensors"), "{reason}")
            }
            v => panic!("broken is usable: {v:?}"),
        }
        match &by_name(&empty.display().to_string()).unwrap().validation {
            Validation::Unusable { reason } => assert!(reason.contains("config.json"), "{reason}"),
            v => panic!("empty is usable: {v:?}"),
        }
        assert!(by_name("Qwen/Half").is_none(), "{:?}", local.models);
        // ui/src/lib/ipc.ts (LocalModels) mirrors these names.
        let json = serde_json::to_value(&local).unwrap();
        assert_eq!(json["partialDownloads"][0]["keptBytes"], 1234);
        let mine_json = json["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["source"] == "userFolder")
            .unwrap();
        assert_eq!(mine_json["validation"]["status"], "usable");
        assert!(mine_json["validation"]["weightBytes"].is_u64());
        assert!(mine_json["validation"]["summary"].is_string());
        assert_eq!(json["locations"][0]["kind"], "appData");
        assert_eq!(
            local.partial_downloads,
            vec![PartialDownload {
                repo: "Qwen/Half".into(),
                kept_bytes: 1234
            }]
        );
    }
}
