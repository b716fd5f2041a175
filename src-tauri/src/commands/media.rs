//! Attachments: a path (drag-and-drop, pasted path, dialog result), clipboard bytes, or the
//! file dialog. Each is copied into the store under its hash and recorded in the history.

use std::path::PathBuf;

use tauri::{AppHandle, Manager, Runtime};

use crate::attachments::Attachment;
use crate::chat::run::lock;
use crate::chat::AttachmentView;
use crate::error::{AppError, Result};
use crate::state::AppState;

fn record(state: &AppState, attachment: Attachment) -> Result<AttachmentView> {
    lock(&state.history).record_attachment(&attachment)?;
    Ok(AttachmentView::new(
        &attachment,
        &state.store,
        state.vision_budget(),
    ))
}

fn import_path(state: &AppState, path: &std::path::Path) -> Result<AttachmentView> {
    let attachment = state.store.import_path(path)?;
    record(state, attachment)
}

/// Runs `f` with the app state on a blocking thread: hashing, copying and thumbnailing a large
/// file takes a moment, and async command threads must not block.
async fn blocking<R: Runtime, T: Send + 'static>(
    app: AppHandle<R>,
    f: impl FnOnce(&AppState) -> Result<T> + Send + 'static,
) -> Result<T> {
    tauri::async_runtime::spawn_blocking(move || f(app.state::<AppState>().inner()))
        .await
        .map_err(|e| AppError::TaskFailed(e.to_string()))?
}

#[tauri::command]
pub async fn import_attachment<R: Runtime>(
    app: AppHandle<R>,
    path: String,
) -> Result<AttachmentView> {
    blocking(app, move |state| import_path(state, &PathBuf::from(path))).await
}

#[tauri::command]
pub async fn paste_attachment<R: Runtime>(
    app: AppHandle<R>,
    bytes: Vec<u8>,
    name: Option<String>,
) -> Result<AttachmentView> {
    blocking(app, move |state| {
        let attachment = state.store.import_bytes(&bytes, name.as_deref())?;
        record(state, attachment)
    })
    .await
}

/// Opens the native file dialog; an empty list when the user cancels.
#[tauri::command]
pub async fn pick_attachments<R: Runtime>(app: AppHandle<R>) -> Result<Vec<AttachmentView>> {
    let (tx, rx) = std::sync::mpsc::channel();
    // GTK dialogs must run on the main (event loop) thread; elsewhere this is harmless.
    app.run_on_main_thread(move || {
        let picked = rfd::FileDialog::new()
            .set_title("Attach images or videos")
            .add_filter(
                "Images and videos",
                &[
                    "png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff", "mp4", "mkv",
                    "webm", "mov", "avi",
                ],
            )
            .pick_files();
        let _ = tx.send(picked);
    })
    .map_err(|e| AppError::TaskFailed(e.to_string()))?;
    let picked = tauri::async_runtime::spawn_blocking(move || rx.recv())
        .await
        .map_err(|e| AppError::TaskFailed(e.to_string()))?
        .map_err(|_| AppError::TaskFailed("the file dialog closed without an answer".into()))?;
    let paths = picked.unwrap_or_default();
    blocking(app, move |state| {
        paths.iter().map(|p| import_path(state, p)).collect()
    })
    .await
}
