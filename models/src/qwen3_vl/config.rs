//! Qwen3-VL configuration, in two layers (spec §1):
//!
//! * `raw` structs mirror `config.json` as written by either dialect — the Hub's (transformers
//!   4.57: `rope_scaling` + `rope_theta`, `num_experts`) and transformers 5's `save_pretrained`
//!   (`rope_parameters`, `num_local_experts`) — with `Option`s and aliases;
//! * [`Config`] is the validated result with no `Option`s left, checked once at load so a model
//!   never starts with sizes that cannot work. No default is borrowed from another model size: a
//!   key the architecture needs and the file lacks is a [`Error::BadConfig`].

use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// Which decoder family the checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `qwen3_vl` / `Qwen3VLForConditionalGeneration`: every layer has a dense SwiGLU MLP.
    Dense,
    /// `qwen3_vl_moe` / `Qwen3VLMoeForConditionalGeneration`: sparse MoE layers (§4.5).
    Moe,
}

/// Which file dialect the config was written in (§1.5). Used only where the shapes of the expert
/// tensors cannot decide their orientation by themselves (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Hub files, written by transformers 4.57.
    Hub,
    /// Files written by transformers 5.x `save_pretrained`.
    Transformers5,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// Width of the dense MLP (dense layers; MoE models use it only for non-sparse layers).
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Rotary slots per axis (T, H, W); sums to `head_dim / 2`.
    pub mrope_section: [usize; 3],
    pub max_position_embeddings: usize,
    /// `Some` for MoE models.
    pub moe: Option<MoeConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MoeConfig {
    pub num_experts: usize,
    pub num_experts_per_tok: usize,
    pub moe_intermediate_size: usize,
    pub decoder_sparse_step: usize,
    pub mlp_only_layers: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub in_channels: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub spatial_merge_size: usize,
    /// Merger output width; equals the text `hidden_size`.
    pub out_hidden_size: usize,
    pub num_position_embeddings: usize,
    pub deepstack_visual_indexes: Vec<usize>,
    pub hidden_act: String,
    pub rope_theta: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub architecture: Architecture,
    pub dialect: Dialect,
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
    pub tie_word_embeddings: bool,
}

impl TextConfig {
    /// Whether decoder layer `layer` uses the sparse MoE block (§1.2): MoE iff
    /// `(layer + 1) % decoder_sparse_step == 0`, the layer is not in `mlp_only_layers` and E > 0.
    pub fn is_moe_layer(&self, layer: usize) -> bool {
        match &self.moe {
            None => false,
            Some(m) => {
                m.num_experts > 0
                    && !m.mlp_only_layers.contains(&layer)
                    && (layer + 1).is_multiple_of(m.decoder_sparse_step)
            }
        }
    }
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Side of the learned position-embedding table (48 for the released models).
    pub fn num_grid_per_side(&self) -> usize {
        (self.num_position_embeddings as f64).sqrt().round() as usize
    }

    /// Width of one flattened patch row of `pixel_values`: C·T·P·P.
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

impl Config {
    /// Reads and validates `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingFile {
                path: path.clone(),
                reason: "every checkpoint has a config.json".into(),
            },
            _ => Error::BadFile {
                path: path.clone(),
                reason: e.to_string(),
            },
        })?;
        Self::from_json(&text).map_err(|e| match e {
            Error::BadConfig { key, reason } => Error::BadConfig {
                key,
                reason: format!("{reason} (in {})", path.display()),
            },
            other => other,
        })
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let raw: raw::Config = serde_json::from_str(text).map_err(|e| {
            // serde's message names the key and line; keep it as the reason.
            Error::bad_config("config.json", e.to_string())
        })?;
        raw.resolve()
    }
}

/// The serde mirror of the two `config.json` dialects.
mod raw {
    use super::*;

    #[derive(Debug, Deserialize)]
    pub struct Config {
        pub architectures: Option<Vec<String>>,
        pub model_type: Option<String>,
        pub text_config: Option<TextConfig>,
        pub vision_config: Option<VisionConfig>,
        pub image_token_id: Option<u32>,
        pub video_token_id: Option<u32>,
        pub vision_start_token_id: Option<u32>,
        pub vision_end_token_id: Option<u32>,
        pub tie_word_embeddings: Option<bool>,
        pub transformers_version: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct RopeParams {
        pub rope_theta: Option<f64>,
        pub mrope_section: Option<Vec<usize>>,
    }

    #[derive(Debug, Deserialize)]
    pub struct TextConfig {
        pub vocab_size: Option<usize>,
        pub hidden_size: Option<usize>,
        pub intermediate_size: Option<usize>,
        pub num_hidden_layers: Option<usize>,
        pub num_attention_heads: Option<usize>,
        pub num_key_value_heads: Option<usize>,
        pub head_dim: Option<usize>,
        pub hidden_act: Option<String>,
        pub rms_norm_eps: Option<f64>,
        pub rope_theta: Option<f64>,
        pub rope_scaling: Option<RopeParams>,
        pub rope_parameters: Option<RopeParams>,
        pub max_position_embeddings: Option<usize>,
        pub attention_bias: Option<bool>,
        // MoE
        pub num_experts: Option<usize>,
        pub num_local_experts: Option<usize>,
        pub num_experts_per_tok: Option<usize>,
        pub moe_intermediate_size: Option<usize>,
        pub decoder_sparse_step: Option<usize>,
        pub mlp_only_layers: Option<Vec<usize>>,
    }

    #[derive(Debug, Deserialize)]
    pub struct VisionConfig {
        pub depth: Option<usize>,
        pub hidden_size: Option<usize>,
        pub hidden_act: Option<String>,
        pub intermediate_size: Option<usize>,
        pub num_heads: Option<usize>,
        pub in_channels: Option<usize>,
        pub patch_size: Option<usize>,
        pub temporal_patch_size: Option<usize>,
        pub spatial_merge_size: Option<usize>,
        pub out_hidden_size: Option<usize>,
        pub num_position_embeddings: Option<usize>,
        pub deepstack_visual_indexes: Option<Vec<usize>>,
        pub rope_parameters: Option<RopeParams>,
    }

    fn need<T>(v: Option<T>, key: &str) -> Result<T> {
        v.ok_or_else(|| Error::bad_config(key, "is missing"))
    }

    fn positive(v: Option<usize>, key: &str) -> Result<usize> {
        match need(v, key)? {
            0 => Err(Error::bad_config(key, "must be positive")),
            n => Ok(n),
        }
    }

    impl Config {
        pub fn resolve(self) -> Result<super::Config> {
            let arch_name = self
                .architectures
                .as_ref()
                .and_then(|a| a.first().cloned())
                .unwrap_or_default();
            let model_type = self.model_type.clone().unwrap_or_default();
            let architecture = match (model_type.as_str(), arch_name.as_str()) {
                ("qwen3_vl_moe", _) | (_, "Qwen3VLMoeForConditionalGeneration") => {
                    Architecture::Moe
                }
                ("qwen3_vl", _) | (_, "Qwen3VLForConditionalGeneration") => Architecture::Dense,
                _ => {
                    return Err(Error::bad_config(
                        "model_type",
                        format!(
                            "is `{model_type}` (architectures {:?}); Glimpse runs Qwen3-VL \
                             checkpoints (`qwen3_vl` or `qwen3_vl_moe`)",
                            self.architectures.unwrap_or_default()
                        ),
                    ))
                }
            };
            let t = need(self.text_config, "text_config")?;
            let v = need(self.vision_config, "vision_config")?;

            // §1.5: either dialect marker makes the file a transformers-5 one.
            let v5_version = self
                .transformers_version
                .as_deref()
                .and_then(|s| s.split('.').next())
                .and_then(|major| major.parse::<u32>().ok())
                .is_some_and(|major| major >= 5);
            let dialect =
                if t.rope_parameters.is_some() || t.num_local_experts.is_some() || v5_version {
                    Dialect::Transformers5
                } else {
                    Dialect::Hub
                };

            let text = resolve_text(t, architecture)?;
            let vision = resolve_vision(v)?;
            let tie_word_embeddings = self.tie_word_embeddings.unwrap_or(false);

            let cfg = super::Config {
                architecture,
                dialect,
                text,
                vision,
                image_token_id: need(self.image_token_id, "image_token_id")?,
                video_token_id: need(self.video_token_id, "video_token_id")?,
                vision_start_token_id: need(self.vision_start_token_id, "vision_start_token_id")?,
                vision_end_token_id: need(self.vision_end_token_id, "vision_end_token_id")?,
                tie_word_embeddings,
            };
            validate(&cfg)?;
            Ok(cfg)
        }
    }

    fn resolve_text(t: TextConfig, architecture: Architecture) -> Result<super::TextConfig> {
        if let Some(act) = &t.hidden_act {
            if act != "silu" {
                return Err(Error::bad_config(
                    "text_config.hidden_act",
                    format!("`{act}` is not supported (only `silu`)"),
                ));
            }
        }
        if t.attention_bias == Some(true) {
            return Err(Error::bad_config(
                "text_config.attention_bias",
                "true is not supported: Qwen3-VL has no attention bias",
            ));
        }
        let hidden_size = positive(t.hidden_size, "text_config.hidden_size")?;
        let num_attention_heads =
            positive(t.num_attention_heads, "text_config.num_attention_heads")?;
        let num_key_value_heads = match t.num_key_value_heads {
            Some(n) => positive(Some(n), "text_config.num_key_value_heads")?,
            None => num_attention_heads,
        };
        // §1.2: head_dim is explicit in every released file; transformers falls back to D/Hq.
        let head_dim = match t.head_dim {
            Some(h) => positive(Some(h), "text_config.head_dim")?,
            None => hidden_size / num_attention_heads,
        };

        let rope = t.rope_parameters.as_ref().or(t.rope_scaling.as_ref());
        // The v5 file keeps theta inside rope_parameters; the Hub file beside rope_scaling.
        let rope_theta = t
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_theta)
            .or(t.rope_theta)
            .ok_or_else(|| {
                Error::bad_config(
                    "text_config.rope_theta",
                    "is missing (neither `rope_parameters.rope_theta` nor `rope_theta`); \
                     transformers would silently use 500000, released models use 5000000",
                )
            })?;
        let section = rope
            .and_then(|r| r.mrope_section.clone())
            .unwrap_or_else(|| vec![24, 20, 20]);
        let mrope_section: [usize; 3] = section.as_slice().try_into().map_err(|_| {
            Error::bad_config(
                "text_config.rope_scaling.mrope_section",
                format!("must have 3 entries, has {}", section.len()),
            )
        })?;

        let moe = match architecture {
            Architecture::Dense => None,
            Architecture::Moe => {
                let num_experts = need(
                    t.num_local_experts.or(t.num_experts),
                    "text_config.num_experts",
                )?;
                let num_experts_per_tok =
                    positive(t.num_experts_per_tok, "text_config.num_experts_per_tok")?;
                if num_experts_per_tok > num_experts {
                    return Err(Error::bad_config(
                        "text_config.num_experts_per_tok",
                        format!("is {num_experts_per_tok}, more than the {num_experts} experts"),
                    ));
                }
                Some(super::MoeConfig {
                    num_experts,
                    num_experts_per_tok,
                    moe_intermediate_size: positive(
                        t.moe_intermediate_size,
                        "text_config.moe_intermediate_size",
                    )?,
                    decoder_sparse_step: positive(
                        t.decoder_sparse_step.or(Some(1)),
                        "text_config.decoder_sparse_step",
                    )?,
                    mlp_only_layers: t.mlp_only_layers.unwrap_or_default(),
                })
            }
        };
        // A dense model (or an MoE model with dense fallback layers) needs the dense MLP width.
        let num_hidden_layers = positive(t.num_hidden_layers, "text_config.num_hidden_layers")?;
        let intermediate_size = t.intermediate_size.unwrap_or(0);
        let out = super::TextConfig {
            vocab_size: positive(t.vocab_size, "text_config.vocab_size")?,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: t.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            mrope_section,
            max_position_embeddings: t.max_position_embeddings.unwrap_or(128_000),
            moe,
        };
        if intermediate_size == 0 && (0..num_hidden_layers).any(|l| !out.is_moe_layer(l)) {
            return Err(Error::bad_config(
                "text_config.intermediate_size",
                "is missing but some layers use the dense MLP",
            ));
        }
        Ok(out)
    }

    fn resolve_vision(v: VisionConfig) -> Result<super::VisionConfig> {
        let rope_theta = v
            .rope_parameters
            .as_ref()
            .and_then(|r| r.rope_theta)
            .unwrap_or(10_000.0);
        Ok(super::VisionConfig {
            depth: positive(v.depth, "vision_config.depth")?,
            hidden_size: positive(v.hidden_size, "vision_config.hidden_size")?,
            intermediate_size: positive(v.intermediate_size, "vision_config.intermediate_size")?,
            num_heads: positive(v.num_heads, "vision_config.num_heads")?,
            in_channels: positive(v.in_channels.or(Some(3)), "vision_config.in_channels")?,
            patch_size: positive(v.patch_size, "vision_config.patch_size")?,
            temporal_patch_size: positive(
                v.temporal_patch_size,
                "vision_config.temporal_patch_size",
            )?,
            spatial_merge_size: positive(v.spatial_merge_size, "vision_config.spatial_merge_size")?,
            out_hidden_size: positive(v.out_hidden_size, "vision_config.out_hidden_size")?,
            num_position_embeddings: positive(
                v.num_position_embeddings,
                "vision_config.num_position_embeddings",
            )?,
            deepstack_visual_indexes: v.deepstack_visual_indexes.unwrap_or_default(),
            hidden_act: v.hidden_act.unwrap_or_else(|| "gelu_pytorch_tanh".into()),
            rope_theta,
        })
    }

    fn validate(c: &super::Config) -> Result<()> {
        let t = &c.text;
        if !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return Err(Error::bad_config(
                "text_config.num_key_value_heads",
                format!(
                    "({}) must divide num_attention_heads ({})",
                    t.num_key_value_heads, t.num_attention_heads
                ),
            ));
        }
        if !t.head_dim.is_multiple_of(2) {
            return Err(Error::bad_config(
                "text_config.head_dim",
                "must be even for rotary embeddings",
            ));
        }
        let sum: usize = t.mrope_section.iter().sum();
        if sum != t.head_dim / 2 {
            return Err(Error::bad_config(
                "text_config.rope_scaling.mrope_section",
                format!(
                    "{:?} sums to {sum}, must equal head_dim/2 = {}",
                    t.mrope_section,
                    t.head_dim / 2
                ),
            ));
        }
        let v = &c.vision;
        if !v.hidden_size.is_multiple_of(v.num_heads) || !v.head_dim().is_multiple_of(4) {
            return Err(Error::bad_config(
                "vision_config.num_heads",
                format!(
                    "hidden_size {} / num_heads {} must be a whole multiple of 4 (2-D rotary)",
                    v.hidden_size, v.num_heads
                ),
            ));
        }
        let g = v.num_grid_per_side();
        if g * g != v.num_position_embeddings || g < 2 {
            return Err(Error::bad_config(
                "vision_config.num_position_embeddings",
                format!(
                    "{} is not the square of a side ≥ 2",
                    v.num_position_embeddings
                ),
            ));
        }
        if let Some(&bad) = v.deepstack_visual_indexes.iter().find(|&&i| i >= v.depth) {
            return Err(Error::bad_config(
                "vision_config.deepstack_visual_indexes",
                format!("index {bad} is not below depth {}", v.depth),
            ));
        }
        if v.deepstack_visual_indexes.len() > t.num_hidden_layers {
            return Err(Error::bad_config(
                "vision_config.deepstack_visual_indexes",
                format!(
                    "{} DeepStack levels but only {} decoder layers",
                    v.deepstack_visual_indexes.len(),
                    t.num_hidden_layers
                ),
            ));
        }
        if v.out_hidden_size != t.hidden_size {
            return Err(Error::bad_config(
                "vision_config.out_hidden_size",
                format!(
                    "is {} but text hidden_size is {}",
                    v.out_hidden_size, t.hidden_size
                ),
            ));
        }
        for (key, id) in [
            ("image_token_id", c.image_token_id),
            ("video_token_id", c.video_token_id),
            ("vision_start_token_id", c.vision_start_token_id),
            ("vision_end_token_id", c.vision_end_token_id),
        ] {
            if id as usize >= t.vocab_size {
                return Err(Error::bad_config(
                    key,
                    format!("{id} is outside the vocabulary ({})", t.vocab_size),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_moe() -> serde_json::Value {
        serde_json::json!({
            "architectures": ["Qwen3VLMoeForConditionalGeneration"],
            "model_type": "qwen3_vl_moe",
            "image_token_id": 7, "video_token_id": 8,
            "vision_start_token_id": 5, "vision_end_token_id": 6,
            "tie_word_embeddings": false,
            "text_config": {
                "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
                "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
                "head_dim": 24, "rms_norm_eps": 1e-6, "rope_theta": 5000000.0,
                "rope_scaling": {"rope_type": "default", "mrope_section": [4, 4, 4], "mrope_interleaved": true},
                "num_experts": 6, "num_experts_per_tok": 2, "moe_intermediate_size": 40,
                "decoder_sparse_step": 1, "mlp_only_layers": [1], "norm_topk_prob": true
            },
            "vision_config": {
                "model_type": "qwen3_vl_moe", "depth": 3, "hidden_size": 32, "intermediate_size": 48,
                "num_heads": 2, "in_channels": 3, "patch_size": 16, "temporal_patch_size": 2,
                "spatial_merge_size": 2, "out_hidden_size": 64, "num_position_embeddings": 64,
                "deepstack_visual_indexes": [0, 2], "hidden_act": "gelu_pytorch_tanh"
            }
        })
    }

    #[test]
    fn hub_dialect_moe() {
        let cfg = Config::from_json(&hub_moe().to_string()).unwrap();
        assert_eq!(cfg.architecture, Architecture::Moe);
        assert_eq!(cfg.dialect, Dialect::Hub);
        assert_eq!(cfg.text.rope_theta, 5e6);
        assert_eq!(cfg.text.mrope_section, [4, 4, 4]);
        assert_eq!(cfg.vision.num_grid_per_side(), 8);
        assert!(cfg.text.is_moe_layer(0));
        assert!(!cfg.text.is_moe_layer(1));
        assert!(cfg.text.is_moe_layer(2));
        assert_eq!(cfg.vision.rope_theta, 10_000.0);
    }

    #[test]
    fn transformers5_dialect() {
        let mut j = hub_moe();
        let t = j["text_config"].as_object_mut().unwrap();
        t.remove("rope_theta");
        t.remove("rope_scaling");
        t.remove("num_experts");
        t.insert("num_local_experts".into(), 6.into());
        t.insert(
            "rope_parameters".into(),
            serde_json::json!({"rope_type": "default", "rope_theta": 1000.0, "mrope_section": [6, 3, 3]}),
        );
        j["vision_config"]["rope_parameters"] =
            serde_json::json!({"rope_theta": 20.0, "rope_type": "axial"});
        let cfg = Config::from_json(&j.to_string()).unwrap();
        assert_eq!(cfg.dialect, Dialect::Transformers5);
        assert_eq!(cfg.text.rope_theta, 1000.0);
        assert_eq!(cfg.text.mrope_section, [6, 3, 3]);
        assert_eq!(cfg.text.moe.as_ref().unwrap().num_experts, 6);
        assert_eq!(cfg.vision.rope_theta, 20.0);
    }

    #[test]
    fn errors_name_the_key() {
        let mut j = hub_moe();
        j["text_config"]["rope_scaling"]["mrope_section"] = serde_json::json!([4, 4, 5]);
        let err = Config::from_json(&j.to_string()).unwrap_err().to_string();
        assert!(err.contains("mrope_section"), "{err}");

        let mut j = hub_moe();
        j["text_config"]
            .as_object_mut()
            .unwrap()
            .remove("rope_theta");
        let err = Config::from_json(&j.to_string()).unwrap_err().to_string();
        assert!(err.contains("rope_theta"), "{err}");

        let mut j = hub_moe();
        j["model_type"] = "llava".into();
        j["architectures"] = serde_json::json!(["LlavaForConditionalGeneration"]);
        let err = Config::from_json(&j.to_string()).unwrap_err().to_string();
        assert!(err.contains("llava"), "{err}");

        let mut j = hub_moe();
        j["vision_config"]["num_position_embeddings"] = 60.into();
        let err = Config::from_json(&j.to_string()).unwrap_err().to_string();
        assert!(err.contains("num_position_embeddings"), "{err}");
    }
}
