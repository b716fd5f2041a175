//! Qwen3-VL and Qwen3-VL-MoE (spec: `shared/spec/qwen3-vl.md`; reference: transformers
//! `models/qwen3_vl{,_moe}/modeling_*.py`). Module and field names follow the checkpoint's
//! tensor names so that a weight key leads straight to the code that uses it.

pub mod bf16_gemv;
pub mod config;
pub mod cpu_attention;
pub mod cpu_mm;
pub mod cpu_ops;
pub mod kv_attention;
pub mod kv_cache;
pub mod model;
pub mod moe;
mod moe_cpu;
pub mod onednn;
pub mod q4k_packed;
pub mod q4k_quantize;
pub mod q8_acts;
pub mod q8_packed;
pub mod qgemv;
pub mod quant;
pub mod rope_index;
pub mod synthetic;
pub mod text;
pub mod vision;
pub mod weights;

pub use config::{Architecture, Config, Dialect, MoeConfig, TextConfig, VisionConfig};
pub use model::{LogitsFor, Prompt, Qwen3VLModel, VisualInput};
pub use quant::{Quant, QuantizedParameters};
pub use rope_index::{decode_position, get_rope_index, RopeIndex, VisionTokenIds};
pub use text::{NoProbe, Probe};
pub use vision::{VisionModel, VisionOutput};
pub use weights::{open_var_builder, Checkpoint};
