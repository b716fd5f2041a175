//! What the model manager keeps for the app's life: where the Hub is, the downloads running, and
//! the folders the user added.

use std::path::Path;

use super::downloads::ActiveDownloads;
use super::hub::HubConfig;
use super::local::UserFolders;
use crate::error::{AppError, Result};

pub struct ManagerState {
    /// From `HF_ENDPOINT`, `HF_HUB_CACHE`/`HF_HOME` and the token files, read once at start;
    /// `None` when there is no home folder to put a cache in.
    hub: Option<HubConfig>,
    pub downloads: ActiveDownloads,
    pub folders: UserFolders,
}

impl ManagerState {
    /// `env` is the process environment in the app (a map in tests).
    pub fn new(data_dir: &Path, home: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            hub: HubConfig::from_env(env, home),
            downloads: ActiveDownloads::default(),
            folders: UserFolders::new(data_dir.join("model-folders.json")),
        }
    }

    pub fn hub(&self) -> Result<&HubConfig> {
        self.hub
            .as_ref()
            .ok_or_else(|| AppError::NoDataDir("no home folder for the Hugging Face cache".into()))
    }
}
