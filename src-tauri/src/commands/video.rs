//! Videos: the plan shown before sending (sampled frame times, token cost) and frame previews
//! for the player's hover and scrubber. Both decode on a blocking thread.

use std::sync::TryLockError;

use glimpse_models::processor::config::VideoProcessorConfig;
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

/// The loaded model's video sampling settings. An answer holds the engine while it runs, so then
/// the copy read last time is used, if it is of the model still loaded.
fn video_config(state: &AppState) -> Result<VideoProcessorConfig> {
    let loaded = lock(&state.model_info).as_ref().map(|m| m.path.clone());
    let from_engine = match state.engine.try_lock() {
        Ok(engine) => Some(
            engine
                .as_ref()
                .map(|m| m.engine.processor.config.video.clone()),
        ),
        Err(TryLockError::Poisoned(p)) => Some(
            p.into_inner()
                .as_ref()
                .map(|m| m.engine.processor.config.video.clone()),
        ),
        Err(TryLockError::WouldBlock) => None,
    };
    choose_config(from_engine, loaded, &mut lock(&state.video))
}

/// `from_engine`: what the engine holds (`None` when it was busy); `loaded`: the path of the
/// model the UI was told is loaded; `kept`: the copy from last time, refreshed here.
fn choose_config(
    from_engine: Option<Option<VideoProcessorConfig>>,
    loaded: Option<String>,
    kept: &mut Option<(String, VideoProcessorConfig)>,
) -> Result<VideoProcessorConfig> {
    match (from_engine, loaded) {
        (Some(Some(cfg)), Some(path)) => {
            *kept = Some((path, cfg.clone()));
            Ok(cfg)
        }
        (Some(_), _) | (None, None) => Err(AppError::NoModel),
        (None, Some(path)) => match kept.as_ref() {
            Some((p, cfg)) if *p == path => Ok(cfg.clone()),
            _ => Err(AppError::Busy),
        },
    }
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
        let cfg = video_config(state)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_frames: usize) -> VideoProcessorConfig {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models/dense-v5");
        let mut cfg = glimpse_models::processor::config::ProcessorConfig::from_dir(&dir)
            .unwrap()
            .video;
        cfg.max_frames = max_frames;
        cfg
    }

    #[test]
    fn plans_use_the_loaded_model_or_its_kept_settings_while_an_answer_runs() {
        let mut kept = None;
        let a = || Some("/models/a".to_owned());
        // No model at all, or one still loading (engine free but the UI not told yet).
        assert!(matches!(
            choose_config(Some(None), None, &mut kept),
            Err(AppError::NoModel)
        ));
        assert!(matches!(
            choose_config(Some(Some(config(1))), None, &mut kept),
            Err(AppError::NoModel)
        ));
        assert!(matches!(
            choose_config(None, None, &mut kept),
            Err(AppError::NoModel)
        ));
        // An answer holds the engine before any plan was made: nothing to go by.
        assert!(matches!(
            choose_config(None, a(), &mut kept),
            Err(AppError::Busy)
        ));
        // Read from the engine, and kept.
        assert_eq!(
            choose_config(Some(Some(config(7))), a(), &mut kept)
                .unwrap()
                .max_frames,
            7
        );
        assert_eq!(choose_config(None, a(), &mut kept).unwrap().max_frames, 7);
        // Another model was loaded since: the kept copy is not its settings.
        assert!(matches!(
            choose_config(None, Some("/models/b".into()), &mut kept),
            Err(AppError::Busy)
        ));
        assert_eq!(
            choose_config(Some(Some(config(9))), Some("/models/b".into()), &mut kept)
                .unwrap()
                .max_frames,
            9
        );
    }
}
