//! The IPC commands. Each is thin: gather what it needs from the app, call plain functions,
//! map the error. Their TypeScript mirror is `ui/src/lib/ipc.ts`.

pub mod chat;
pub mod link;
pub mod manager;
pub mod media;
pub mod model;
pub mod video;

use serde::Serialize;
use tauri::{AppHandle, Manager, Runtime};

use crate::error::{AppError, Result};
use crate::model_search::{self, FoundModel, LocationKind, SearchLocation, UnusableModel};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    pub version: String,
    /// Every folder models are looked for in, whether or not it exists yet.
    pub search_locations: Vec<SearchLocation>,
    pub models: Vec<FoundModel>,
    pub unusable: Vec<UnusableModel>,
}

/// Where models are looked for on this machine, in search order.
pub fn search_locations<R: Runtime>(app: &AppHandle<R>) -> Result<Vec<SearchLocation>> {
    let paths = app.path();
    let data = paths
        .app_data_dir()
        .map_err(|e| AppError::NoDataDir(e.to_string()))?;
    let mut locations = vec![SearchLocation::new(
        LocationKind::AppData,
        data.join("models"),
    )];
    let home = paths.home_dir().ok();
    if let Some(hub) = model_search::hf_hub_cache(|k| std::env::var(k).ok(), home.as_deref()) {
        locations.push(SearchLocation::new(LocationKind::HuggingFaceCache, hub));
    }
    // The folders added in the model manager, each one model.
    if let Some(manager) = app.try_state::<crate::models::manager_state::ManagerState>() {
        for folder in manager.folders.list()? {
            locations.push(SearchLocation::new(LocationKind::UserFolder, folder));
        }
    }
    Ok(locations)
}

/// What the first screen needs: the models found, and where they were looked for.
#[tauri::command]
pub async fn app_status<R: Runtime>(app: AppHandle<R>) -> Result<AppStatus> {
    let search_locations = search_locations(&app)?;
    let found = model_search::search(&search_locations)?;
    Ok(AppStatus {
        version: app.package_info().version.to_string(),
        search_locations,
        models: found.models,
        unusable: found.unusable,
    })
}
