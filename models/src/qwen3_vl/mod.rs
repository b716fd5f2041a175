//! Qwen3-VL and Qwen3-VL-MoE (spec: `shared/spec/qwen3-vl.md`; reference: transformers
//! `models/qwen3_vl{,_moe}/modeling_*.py`). Module and field names follow the checkpoint's
//! tensor names so that a weight key leads straight to the code that uses it.

pub mod config;
pub mod moe;
pub mod text;
pub mod weights;

pub use config::{Architecture, Config, Dialect, MoeConfig, TextConfig, VisionConfig};
pub use weights::{open_var_builder, Checkpoint};
