//! Videos: the plan shown before sending (sampled frame times, token cost) and frame previews
//! for the player's hover and scrubber. Both decode on a blocking thread.

use tauri::{AppHandle, Manager, Runtime};

use crate::attachments::{Attachment, AttachmentKind};
use crate::chat::asset_url;
use crate::chat::run::lock;
use crate::error::{AppError, Result};
use crate::state::AppState;
use crate::video::{self, PlanView, VideoRequest};

async fn blocking<R: Runtime, T: Send + 'static>(
    app: AppHandle<R>,
    f: impl FnOnce(&AppState) -> Result<T> + Send + 'static,
) -> Result<T> {
    tauri::async_runtime::spawn_blocking(move || f(app.state::<AppState>().inner()))
        .await
        .map_err(|e| AppError::TaskFailed(e.to_string()))?
}

/// The stored video `hash`; an image or an unknown hash is refused.
fn stored_video(state: &AppState, hash: &str) -> Result<Attachment> {
    let a = lock(&state.history).attachment(hash)?;
    if a.kind != AttachmentKind::Video {
        return Err(AppError::NotAVideo(a.original_name.unwrap_or(a.hash)));
    }
    Ok(a)
}

/// Which frames the model will see of video `hash` sent with `options`, and what they cost.
/// Needs a loaded model (its sampling settings decide both).
#[tauri::command]
pub async fn video_plan<R: Runtime>(
    app: AppHandle<R>,
    hash: String,
    options: VideoRequest,
) -> Result<PlanView> {
    blocking(app, move |state| {
        let a = stored_video(state, &hash)?;
        let cfg = lock(&state.video).clone().ok_or(AppError::NoModel)?;
        let duration = a.duration_ms.map(|ms| ms as f64 / 1000.0);
        video::plan(
            &state.store.resolve(&a.stored_path),
            &options,
            duration,
            &cfg,
        )
    })
    .await
}

/// The asset URL of a small JPEG of video `hash` at `seconds`, decoded once and cached with
/// the thumbnails.
#[tauri::command]
pub async fn video_frame<R: Runtime>(
    app: AppHandle<R>,
    hash: String,
    seconds: f64,
) -> Result<String> {
    blocking(app, move |state| {
        let a = stored_video(state, &hash)?;
        let dest = video::preview_path(&state.data_dir.join("thumbs"), &a.hash, seconds);
        video::preview(&state.store.resolve(&a.stored_path), &dest, seconds)?;
        Ok(asset_url(&dest))
    })
    .await
}
