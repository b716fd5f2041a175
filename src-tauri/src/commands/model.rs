//! Loading the model.

use std::path::PathBuf;
use std::time::Instant;

use glimpse_models::engine::{parse_dtype, DeviceKind, Engine, LoadOptions};
use glimpse_models::qwen3_vl::config::Architecture;
use tauri::State;

use crate::chat::run::{lock, LoadedModel};
use crate::error::{AppError, Result};
use crate::state::{AppState, ModelInfo};

/// Loads the checkpoint in `path` on a blocking thread, replacing the loaded model. The old
/// one is dropped first so two models never share memory.
#[tauri::command]
pub async fn load_model(
    state: State<'_, AppState>,
    path: String,
    device: Option<String>,
    dtype: Option<String>,
) -> Result<ModelInfo> {
    let device: DeviceKind = device.as_deref().unwrap_or("cpu").parse()?;
    let dtype_name = dtype.unwrap_or_else(|| {
        // Half precision on accelerators; f32 on the CPU, where candle's bf16 matmuls are slow.
        if device == DeviceKind::Cpu {
            "f32"
        } else {
            "bf16"
        }
        .to_owned()
    });
    let dtype = parse_dtype(&dtype_name)?;
    let _busy = state.slot.begin()?;
    *lock(&state.model_info) = None;
    *lock(&state.vision) = None;
    let engine = state.engine.clone();
    let dir = PathBuf::from(&path);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.clone());
    let (loaded, load_ms) = tauri::async_runtime::spawn_blocking(move || {
        *lock(&engine) = None;
        let start = Instant::now();
        let loaded = Engine::load(
            &dir,
            &LoadOptions {
                device,
                dtype,
                ..Default::default()
            },
        )?;
        let load_ms = start.elapsed().as_millis() as u64;
        let loaded = LoadedModel::new(loaded, name);
        let out = (
            loaded.engine.config.architecture,
            loaded.vision_budget(),
            loaded.name.clone(),
        );
        *lock(&engine) = Some(loaded);
        Ok::<_, AppError>((out, load_ms))
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
        dtype: match dtype_name.as_str() {
            "bf16" => "bf16",
            "f16" => "f16",
            _ => "f32",
        },
        load_ms,
    };
    *lock(&state.vision) = Some(budget);
    *lock(&state.model_info) = Some(info.clone());
    Ok(info)
}

#[tauri::command]
pub fn loaded_model(state: State<'_, AppState>) -> Option<ModelInfo> {
    lock(&state.model_info).clone()
}
