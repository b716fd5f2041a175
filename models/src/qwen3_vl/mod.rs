//! Qwen3-VL and Qwen3-VL-MoE (spec: `shared/spec/qwen3-vl.md`; reference: transformers
//! `models/qwen3_vl{,_moe}/modeling_*.py`). Module and field names follow the checkpoint's
//! tensor names so that a weight key leads straight to the code that uses it.

pub mod config;
pub mod rope_index;
pub mod vision;

pub use config::{Architecture, Config, Dialect, MoeConfig, TextConfig, VisionConfig};
pub use rope_index::{decode_position, get_rope_index, RopeIndex, VisionTokenIds};
pub use vision::{VisionModel, VisionOutput};
