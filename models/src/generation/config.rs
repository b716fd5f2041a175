//! Sampling settings: the checkpoint's `generation_config.json`, then the caller's overrides.

use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// `generation_config.json` as transformers writes it. `eos_token_id` is an int or a list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationConfig {
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub max_new_tokens: Option<usize>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub eos_token_id: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub bos_token_id: Option<u32>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(u32),
        Many(Vec<u32>),
        Null(()),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(x) => vec![x],
        OneOrMany::Many(v) => v,
        OneOrMany::Null(()) => vec![],
    })
}

impl GenerationConfig {
    /// Reads `dir/generation_config.json`; a checkpoint without one gets transformers' defaults
    /// (greedy), and its EOS ids must then come from elsewhere (the tokenizer).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("generation_config.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::BadFile {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::BadFile {
                path,
                reason: e.to_string(),
            }),
        }
    }
}

/// Resolved settings for one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f64,
    /// 1.0 disables nucleus filtering.
    pub top_p: f64,
    /// 0 disables top-k filtering.
    pub top_k: usize,
    /// transformers' multiplicative penalty over prompt and generated ids; 1.0 disables it.
    pub repetition_penalty: f32,
    /// OpenAI/vLLM-style additive penalty over generated ids; 0.0 disables it.
    pub presence_penalty: f32,
    pub seed: u64,
    pub max_new_tokens: usize,
    pub eos_token_ids: Vec<u32>,
}

/// What a user may override on top of the checkpoint's defaults.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub seed: Option<u64>,
    pub max_new_tokens: Option<usize>,
}

impl SamplingParams {
    /// Checkpoint defaults, then overrides. As in transformers, `do_sample: false` (or absent)
    /// means greedy unless the caller asks for a temperature.
    pub fn resolve(cfg: &GenerationConfig, o: &Overrides, extra_eos: &[u32]) -> Self {
        let sampled = cfg.do_sample.unwrap_or(false);
        let default_temp = if sampled {
            cfg.temperature.unwrap_or(1.0)
        } else {
            0.0
        };
        let mut eos_token_ids = cfg.eos_token_id.clone();
        for id in extra_eos {
            if !eos_token_ids.contains(id) {
                eos_token_ids.push(*id);
            }
        }
        Self {
            temperature: o.temperature.unwrap_or(default_temp).max(0.0),
            top_p: o.top_p.or(cfg.top_p).unwrap_or(1.0),
            top_k: o.top_k.or(cfg.top_k).unwrap_or(0),
            repetition_penalty: o
                .repetition_penalty
                .or(cfg.repetition_penalty)
                .unwrap_or(1.0),
            presence_penalty: o.presence_penalty.or(cfg.presence_penalty).unwrap_or(0.0),
            seed: o.seed.unwrap_or(0),
            max_new_tokens: o.max_new_tokens.or(cfg.max_new_tokens).unwrap_or(512),
            eos_token_ids,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature < 1e-7
    }
}
