//! What the app keeps for its whole life, managed by Tauri and taken by the commands.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::attachments::AttachmentStore;
use crate::chat::run::{lock, Chat, GenerationSlot, SharedEngine};
use crate::chat::VisionBudget;
use crate::error::Result;
use crate::history::History;

/// The loaded model as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub path: String,
    pub name: String,
    /// `dense` or `moe`.
    pub architecture: &'static str,
    pub device: &'static str,
    pub dtype: &'static str,
    /// `none`, `q8_0` or `q4k`: how the text decoder's weights are held.
    pub quant: &'static str,
    pub load_ms: u64,
    /// Growth of the process's resident memory across the load (`None` where not measurable):
    /// the model's weights as they sit in memory (tensors are read into their own buffers, so
    /// nothing of the files stays mapped), plus what the load's allocations left behind.
    pub memory_bytes: Option<u64>,
    /// The load worked but the choice is poor (bf16 on the CPU is slow, for one).
    pub warnings: Vec<String>,
}

pub struct AppState {
    pub data_dir: PathBuf,
    pub history: Mutex<History>,
    pub store: AttachmentStore,
    pub engine: SharedEngine,
    /// What the UI last got from `load_model`; kept apart from the engine, whose lock a
    /// running answer holds.
    pub model_info: Mutex<Option<ModelInfo>>,
    /// The loaded model's image cost, for `visionTokens` while an answer holds the engine.
    pub vision: Mutex<Option<VisionBudget>>,
    /// The loaded model's video sampling settings as `video_plan` last read them (with the
    /// model's path), for plans while an answer holds the engine.
    pub video: Mutex<
        Option<(
            String,
            glimpse_models::processor::config::VideoProcessorConfig,
        )>,
    >,
    pub slot: GenerationSlot,
}

impl AppState {
    /// Opens the history (`history.sqlite3`) and the attachment folders under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|source| {
            crate::error::AppError::AttachmentIo {
                path: data_dir.to_path_buf(),
                source,
            }
        })?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            history: Mutex::new(History::open(data_dir.join("history.sqlite3"))?),
            store: AttachmentStore::new(data_dir)?,
            engine: Arc::new(Mutex::new(None)),
            model_info: Mutex::new(None),
            vision: Mutex::new(None),
            video: Mutex::new(None),
            slot: GenerationSlot::default(),
        })
    }

    pub fn chat(&self) -> Chat<'_> {
        Chat {
            history: &self.history,
            store: &self.store,
            engine: &self.engine,
            slot: &self.slot,
        }
    }

    pub fn vision_budget(&self) -> Option<VisionBudget> {
        *lock(&self.vision)
    }
}
