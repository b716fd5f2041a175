//! The model manager's commands: the catalogue for this machine, the local models, added folders,
//! and downloads streamed through a `Channel`. The logic lives in `crate::models`.

use std::path::PathBuf;

use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};

use super::search_locations;
use crate::error::{AppError, Result};
use crate::models::catalog::catalog;
use crate::models::download::{DownloadEvent, DownloadOutcome, Downloader};
use crate::models::downloads::{discard_download, run_download};
use crate::models::load_check::Backends;
use crate::models::local::{list_local, LocalModels};
use crate::models::manager_state::ManagerState;
use crate::models::overview::{catalog_view, CatalogView};
use crate::models::system::{detect_gpu, SystemInfo};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| AppError::TaskFailed(e.to_string()))?
}

/// Every catalogue checkpoint with what it needs and whether it fits, this machine's RAM and GPU,
/// and the recommendation. Reads no network.
#[tauri::command]
pub async fn model_catalog(state: State<'_, ManagerState>) -> Result<CatalogView> {
    let endpoint = state.hub()?.endpoint.clone();
    blocking(move || {
        let system = SystemInfo::detect(detect_gpu());
        Ok(catalog_view(system, Backends::compiled(), endpoint))
    })
    .await
}

fn local<R: Runtime>(app: &AppHandle<R>) -> Result<LocalModels> {
    list_local(&search_locations(app)?)
}

/// The models on this computer, each validated, and downloads that can be resumed.
#[tauri::command]
pub async fn local_models<R: Runtime>(app: AppHandle<R>) -> Result<LocalModels> {
    blocking(move || local(&app)).await
}

/// Adds a model folder: `path` as typed, or (without one) the one picked in the native folder
/// dialog. `None` when the dialog was cancelled.
#[tauri::command]
pub async fn add_model_folder<R: Runtime>(
    app: AppHandle<R>,
    path: Option<String>,
) -> Result<Option<LocalModels>> {
    let folder = match path {
        Some(p) => PathBuf::from(p.trim()),
        None => {
            let (tx, rx) = std::sync::mpsc::channel();
            // GTK dialogs must run on the main (event loop) thread.
            app.run_on_main_thread(move || {
                let picked = rfd::FileDialog::new()
                    .set_title("Choose a model folder")
                    .pick_folder();
                let _ = tx.send(picked);
            })
            .map_err(|e| AppError::TaskFailed(e.to_string()))?;
            let picked = blocking(move || {
                rx.recv().map_err(|_| {
                    AppError::TaskFailed("the folder dialog closed without an answer".into())
                })
            })
            .await?;
            match picked {
                Some(p) => p,
                None => return Ok(None),
            }
        }
    };
    blocking(move || {
        app.state::<ManagerState>().folders.add(&folder)?;
        local(&app).map(Some)
    })
    .await
}

/// Forgets an added folder (its files stay).
#[tauri::command]
pub async fn remove_model_folder<R: Runtime>(
    app: AppHandle<R>,
    path: String,
) -> Result<LocalModels> {
    blocking(move || {
        app.state::<ManagerState>()
            .folders
            .remove(&PathBuf::from(path))?;
        local(&app)
    })
    .await
}

/// Downloads (or resumes) a catalogue checkpoint into the Hugging Face cache. Progress streams
/// through `on_event`; resolves when the download completes, is paused or cancelled, or fails.
#[tauri::command]
pub async fn start_download<R: Runtime>(
    app: AppHandle<R>,
    repo: String,
    on_event: Channel<DownloadEvent>,
) -> Result<DownloadOutcome> {
    if !catalog().iter().any(|e| e.repo == repo) {
        return Err(AppError::UnknownRepo(repo));
    }
    let state = app.state::<ManagerState>();
    let downloader = Downloader::new(state.hub()?.clone());
    let ticket = state
        .downloads
        .begin(&repo)
        .ok_or_else(|| AppError::AlreadyDownloading(repo.clone()))?;
    blocking(move || {
        let out = run_download(&downloader, &ticket, &mut |e| {
            // A closed window is no reason to stop the download.
            let _ = on_event.send(e);
        })?;
        Ok(out)
    })
    .await
}

/// Stops a download keeping what arrived; downloading again resumes it.
#[tauri::command]
pub fn pause_download(state: State<'_, ManagerState>, repo: String) -> bool {
    state.downloads.pause(&repo)
}

/// Stops a download and deletes what it left (see `discard_download`); with none running (a
/// download stopped in an earlier session), deletes that. Returns whether one was running.
#[tauri::command]
pub async fn cancel_download(state: State<'_, ManagerState>, repo: String) -> Result<bool> {
    if state.downloads.cancel(&repo) {
        return Ok(true);
    }
    let hub = state.hub()?.clone();
    blocking(move || {
        discard_download(&hub, &repo)?;
        Ok(false)
    })
    .await
}
