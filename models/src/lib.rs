//! Glimpse's engine: Qwen3-VL (dense and MoE) in candle.
//!
//! The layout follows the model: `qwen3_vl` holds the configuration, weights, vision tower and
//! text decoder; the processor (images, videos, chat template) and generation sit beside it.

pub mod engine;
pub mod error;
pub mod generation;
pub mod hub;
pub mod processor;
pub mod qwen3_vl;

pub use error::{Error, Result};
