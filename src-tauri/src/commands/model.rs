//! Loading and unloading the model.

use std::path::PathBuf;
use std::time::Instant;

use glimpse_models::engine::{DeviceKind, Engine, LoadOptions};
use glimpse_models::qwen3_vl::config::Architecture;
use glimpse_models::qwen3_vl::Quant;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use crate::chat::run::{lock, LoadedModel};
use crate::error::{AppError, Result};
use crate::models::load_check::{
    self, dtype_name, engine_stage, preflight, resident_bytes, Backends, LoadProgress, Preflight,
};
use crate::models::local::display_name;
use crate::models::system::{detect_gpu, SystemInfo};
use crate::state::{AppState, ModelInfo};

/// Loads the checkpoint in `path` on a blocking thread, replacing the loaded model. The folder
/// is validated and the device, dtype and memory checked first (a refusal says why; without a
/// dtype, or with `auto`, the CPU gets f32 when it fits, else bf16; `quant` (none, q8_0, q4k)
/// quantizes the text decoder and counts in the memory check); the old
/// model is dropped before the new one loads so two never share memory. Stages stream through
/// `on_progress`; the answer includes the memory the model took.
#[tauri::command]
pub async fn load_model(
    state: State<'_, AppState>,
    path: String,
    device: Option<String>,
    dtype: Option<String>,
    quant: Option<String>,
    on_progress: Channel<LoadProgress>,
) -> Result<ModelInfo> {
    let device: DeviceKind = device.as_deref().unwrap_or("cpu").parse()?;
    let quant: Quant = quant.as_deref().unwrap_or("none").parse()?;
    let dtype = match dtype.as_deref() {
        None | Some("auto") => None,
        Some(text) => Some(load_check::parse_dtype(text).ok_or_else(|| {
            glimpse_models::Error::bad_config(
                "dtype",
                format!("`{text}` is not one of f32, bf16, f16"),
            )
        })?),
    };
    let _busy = state.slot.begin()?;
    let send = move |p: LoadProgress| {
        let _ = on_progress.send(p);
    };
    send(load_check::progress("checking"));
    let dir = PathBuf::from(&path);
    let name = display_name(&dir);
    let freed_by_unload = lock(&state.model_info)
        .as_ref()
        .and_then(|m| m.memory_bytes)
        .unwrap_or(0);
    let engine = state.engine.clone();
    let check_dir = dir.clone();
    let Preflight { dtype, warnings } = tauri::async_runtime::spawn_blocking(move || {
        let gpu = (device == DeviceKind::Cuda).then(detect_gpu).flatten();
        let system = SystemInfo::detect(gpu);
        preflight(
            &check_dir,
            device,
            dtype,
            quant,
            Backends::compiled(),
            &system,
            freed_by_unload,
        )
    })
    .await
    .map_err(|e| AppError::TaskFailed(e.to_string()))??;
    let candle_dtype = glimpse_models::engine::parse_dtype(dtype_name(dtype))?;

    *lock(&state.model_info) = None;
    *lock(&state.vision) = None;
    let (loaded, load_ms, memory_bytes) = tauri::async_runtime::spawn_blocking(move || {
        send(load_check::progress("unloading"));
        *lock(&engine) = None;
        let before = resident_bytes();
        let start = Instant::now();
        let loaded = Engine::load_with(
            &dir,
            &LoadOptions {
                device,
                dtype: candle_dtype,
                quant,
            },
            &mut |stage| send(engine_stage(stage)),
        )?;
        let load_ms = start.elapsed().as_millis() as u64;
        let memory = before
            .zip(resident_bytes())
            .map(|(b, a)| a.saturating_sub(b));
        let loaded = LoadedModel::new(loaded, name);
        let out = (
            loaded.engine.config.architecture,
            loaded.vision_budget(),
            loaded.name.clone(),
        );
        *lock(&engine) = Some(loaded);
        Ok::<_, AppError>((out, load_ms, memory))
    })
    .await
    .map_err(|e| AppError::TaskFailed(e.to_string()))??;
    let (architecture, budget, name) = loaded;
    let info = ModelInfo {
        path,
        name,
        architecture: match architecture {
            Architecture::Dense => "dense",
            Architecture::Moe => "moe",
        },
        device: match device {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Metal => "metal",
        },
        dtype: dtype_name(dtype),
        quant: quant.name(),
        load_ms,
        memory_bytes,
        warnings,
    };
    *lock(&state.vision) = Some(budget);
    *lock(&state.model_info) = Some(info.clone());
    Ok(info)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unloaded {
    /// How much the process's resident memory shrank (`None` where not measurable).
    pub freed_bytes: Option<u64>,
}

/// Drops the loaded model and frees its memory; refused while an answer is being generated.
#[tauri::command]
pub async fn unload_model(state: State<'_, AppState>) -> Result<Unloaded> {
    let _busy = state.slot.begin()?;
    *lock(&state.model_info) = None;
    *lock(&state.vision) = None;
    let engine = state.engine.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let before = resident_bytes();
        *lock(&engine) = None;
        let freed_bytes = before
            .zip(resident_bytes())
            .map(|(b, a)| b.saturating_sub(a));
        Unloaded { freed_bytes }
    })
    .await
    .map_err(|e| AppError::TaskFailed(e.to_string()))
}

#[tauri::command]
pub fn loaded_model(state: State<'_, AppState>) -> Option<ModelInfo> {
    lock(&state.model_info).clone()
}
